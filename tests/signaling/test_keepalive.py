"""The WebSocket keepalive (signaling/keepalive.py) against the real server and router.

A client "freezes" by no longer reading its socket (``transport.pause_reading()``): the
kernel still acknowledges TCP, as for a frozen process, but no Pong goes back. The server
must drop it within ``ping_interval + ping_timeout``, the floor must go idle at once, and
the others must see it leave once its resume grace (signaling/holding.py) has run out. A client that sends nothing but whose WebSocket answers Pings (a listener in
a background tab: the browser answers them itself) must stay.

Times are recorded, never asserted: the bounds only stop a test that would hang.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .conftest import ClientFactory, ServerFactory

#: Generous: the default keepalive drops a dead socket within 4.2 s; before it, 50 s.
GONE_WITHIN = 30.0


async def test_a_frozen_holder_leaves_and_the_floor_goes_idle(
    make_server: ServerFactory, client_factory: ClientFactory, record_property: Any
) -> None:
    # The keepalive as `walkie serve` has it; a short resume grace so that the leave follows soon.
    server = await make_server(tick_interval=0.25, resume_grace=0.5)
    ann, bob = await client_factory(server), await client_factory(server)
    await ann.join("frozen", "Ann")
    await bob.join("frozen", "Bob")
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    holder = await bob.expect("floor")
    assert holder["holder"]["name"] == "Ann"

    frozen = time.monotonic()
    ann.ws.transport.pause_reading()  # type: ignore[attr-defined]
    try:
        idle = await bob.expect("floor", timeout=GONE_WITHIN)
        gone = time.monotonic() - frozen
        assert idle == {"type": "floor", "holder": None, "queue_length": 0}  # at the drop
        left = await bob.expect("member_left", timeout=2.0)  # after the grace
        assert left["id"] == holder["holder"]["id"]
    finally:
        ann.ws.transport.abort()  # type: ignore[attr-defined]
    record_property("freeze_to_floor_idle_ms", round(gone * 1000))
    print(f"\nfrozen holder, no media: floor idle after {gone * 1000:.0f} ms")
    await bob.ping()  # Bob's session goes on


async def test_a_quiet_client_that_answers_pings_stays(
    make_server: ServerFactory, client_factory: ClientFactory
) -> None:
    server = await make_server(ping_interval=0.1, ping_timeout=0.2)
    quiet, other = await client_factory(server), await client_factory(server)
    await quiet.join("quiet", "Quiet")
    await other.join("quiet", "Other")
    await asyncio.sleep(2.0)  # ~20 pings; the quiet client never sends a message itself
    await other.ping()
    await other.nothing_more()  # no member_left
    await quiet.ping()


async def test_without_the_fast_ping_a_frozen_client_still_leaves(
    make_server: ServerFactory, client_factory: ClientFactory, monkeypatch: Any
) -> None:
    """The fallback for a websockets release without the ping bookkeeping: ``ws.ping()`` in a
    task. Same outcome: the quiet client stays, the frozen one leaves."""
    from signaling import keepalive

    monkeypatch.setattr(keepalive, "fast_ping_supported", lambda ws: False)
    server = await make_server(ping_interval=0.1, ping_timeout=0.3, resume_grace=0.2)
    frozen, quiet = await client_factory(server), await client_factory(server)
    await frozen.join("fallback", "Frozen")
    await quiet.join("fallback", "Quiet")
    frozen.ws.transport.pause_reading()  # type: ignore[attr-defined]
    try:
        left = await quiet.expect("member_left", timeout=GONE_WITHIN)
    finally:
        frozen.ws.transport.abort()  # type: ignore[attr-defined]
    assert left["type"] == "member_left"
    await asyncio.sleep(1.0)  # ~10 more Pings to the quiet one, through the fallback
    await quiet.ping()
    await quiet.nothing_more()
    assert server.keepalive is not None and server.keepalive.dropped == 1
