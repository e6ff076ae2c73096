"""walkie's signaling service: rooms, presence, floor control and the SDP exchange.

Browsers speak JSON over one WebSocket (``/ws``, see docs/PROTOCOL.md); the same port
serves the page. Modules, one concern each:

- ``messages``: validation of client messages (pure)
- ``floor``: the MCPTT-like floor state machine (pure, time passed in)
- ``rooms``: rooms, members, hashed room passwords (pure)
- ``hub``: the session logic tying them to the media plane (sync, no sockets)
- ``session``: the hub's vocabulary: clients, actions, the ``MediaPlane`` protocol
- ``ratelimit``, ``turn``, ``static``: token bucket, TURN credentials, the page's files
- ``origin``, ``tls``: the WebSocket Origin policy; certificate files or a self-signed one
- ``server``: the websockets I/O shell
- ``cluster``: many nodes behind one URL, through Redis (``walkie serve --redis``;
  docs/CLUSTER.md)

A library: the ``walkie`` package runs it (``walkie serve``) and owns the settings.
"""

from __future__ import annotations
