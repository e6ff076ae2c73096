"""The ``walkie`` command and its configuration, on top of the ``signaling`` and ``sfu`` libraries.

- ``config``: every ``walkie serve`` setting, defined and validated once (flags, variables,
  defaults, checks) into one frozen :class:`~walkie.config.Config`; ``parsers``: its values
- ``serve``: runs the media plane and the signaling server from a ``Config``
- ``cli``: the ``walkie`` command (``serve``, ``bench``); ``python -m walkie`` is the same
- ``addresses``: this machine's primary address, loopback test
"""

from __future__ import annotations
