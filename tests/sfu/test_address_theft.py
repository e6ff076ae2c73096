"""Issue 9, finding 6: an address taken by another peer's valid check is won back by its
owner's next valid check, and audio flows again in both directions.

The scenario: peer b talks and listens from address X. A valid ICE check of another peer
arrives from X (a NAT that rebinds and hands X to someone else, or a spoofed datagram that
copies a valid check). The media plane gives X to the peer that just proved it, which is
right; but b must not lose its audio for good: its own next valid check, even a plain
consent check from the same X, binds it again.

The first test runs over real UDP through ``sfu.Router`` and uses only what every version
of the router and of tests/sfu/peerclient.py offer, so the same file reproduces the bug on
the tree before the fix (there, b's checks kept being answered but its audio never came
back). The second checks the same rule in the sans-IO core, on the in-memory network.
"""

from __future__ import annotations

import sfu

from .peerclient import PeerClient

ROOM = "r"


async def test_a_stolen_address_comes_back_on_the_owners_next_check_over_udp() -> None:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    a, b, thief = PeerClient("a"), PeerClient("b"), PeerClient("thief")
    try:
        for client in (a, b):
            await client.join(router, ROOM)
            await client.connect()
        await thief.join(router, ROOM)  # its offer was accepted; its checks are valid
        router.set_speaker(ROOM, "a")
        first = a.send_audio()
        assert [p.payload for p in await b.drain()] == [first]

        # The thief's valid, nominated check arrives from b's address.
        assert b.transport is not None
        b.transport.sendto(thief.binding_request(use_candidate=True), b.server)
        assert (await b.recv())[0] < 4  # the answer to that check: goes to the address it came from
        a.send_audio()
        assert await b.drain() == []  # X is the thief's now: b hears nothing meanwhile

        # b's next valid check: a plain consent check, from the same address, as browsers
        # send every few seconds. Audio comes back, down ...
        response = await b.check(use_candidate=False)
        assert response.message_class.name == "RESPONSE"
        down = a.send_audio()
        assert [p.payload for p in await b.drain()] == [down]
        # ... and up.
        router.set_speaker(ROOM, "b")
        up = b.send_audio()
        assert [p.payload for p in await a.drain()] == [up]
    finally:
        for client in (a, b, thief):
            client.close()
        await router.close()


def test_a_stolen_address_comes_back_on_the_owners_next_check_from_the_same_address() -> None:
    # Imported here: the tree before the fix had no sans-IO core, and the test above must
    # still be collectable there.
    from .memnet import Net
    from .test_core import make_core, room_of

    net = Net(make_core())
    a, b, thief = room_of(net, "a", "b", "thief")
    net.core.set_speaker(ROOM, "a", net.now)
    net.send(thief, thief.binding_request(), source=b.address)  # the thief checks from X
    net.pump()
    a.audio()
    net.pump()
    assert b.take_received() == []
    assert net.core.peer_stats("b")["address"] is None  # type: ignore[index]
    assert net.core.peer_stats("thief")["address"] == list(b.address)  # type: ignore[index]

    net.send(b, b.binding_request(use_candidate=False))  # b's own consent check, from X
    down = a.audio()
    net.pump()
    assert [p.payload for p in b.take_received()] == [down]
    assert net.core.peer_stats("b")["address"] == list(b.address)  # type: ignore[index]
    assert net.core.peer_stats("thief")["address"] is None  # type: ignore[index]

    net.send(thief, thief.binding_request(use_candidate=False))  # from where it really is
    net.core.set_speaker(ROOM, "b", net.now)
    up = b.audio()
    net.pump()
    assert [p.payload for p in a.take_received()] == [up]
    assert [p.payload for p in thief.take_received()] == [up]  # the thief too, at its own address
    connected = [e.peer_id for e in net.events if e.kind == "connected"]
    assert sorted(connected) == ["a", "b", "thief"]
    assert not [e for e in net.events if e.kind in ("consent_lost", "dtls_failed", "closed")]
