"""The bench's client stack (ICE, DTLS client, SRTP, accounting) against the real router,
without signaling: the router's control API stands in for the signaling server."""

from __future__ import annotations

import asyncio

import pytest

import sfu
from bench.audio import encode_loop
from bench.client import SyntheticClient
from bench.context import BenchContext
from bench.accounting import account, carve, outage_holes


async def _room(router: sfu.Router, ctx: BenchContext, n: int) -> list[SyntheticClient]:
    clients: dict[str, SyntheticClient] = {}

    def on_event(event: sfu.PeerEvent) -> None:
        if event.kind == "connected":
            clients[event.peer_id].media_connected()

    router.add_listener(on_event)
    for i in range(n):
        client = SyntheticClient(ctx, "room", f"user {i}")
        client.id = f"p{i}"
        clients[client.id] = client
        answer = router.add_peer(client.id, "room", client.make_offer())
        await client.connect_media(answer, timeout=5.0)
        await asyncio.wait_for(client._media_up, 5.0)
    return list(clients.values())


async def _talk(router: sfu.Router, talker: SyntheticClient, frames: int, tick0: int) -> tuple[int, int]:
    talker.start_talking()
    for tick in range(tick0, tick0 + 3):  # pre-roll: sent before the floor is granted
        talker.send_frame(tick)
        await asyncio.sleep(0.02)
    router.set_speaker("room", talker.id)
    first = talker.granted()
    for tick in range(tick0 + 3, tick0 + 3 + frames):
        talker.send_frame(tick)
        await asyncio.sleep(0.005)
    last = talker.stop_talking()
    await asyncio.sleep(0.1)
    return first, last


@pytest.mark.parametrize(
    ("shared_socket", "kernel_timestamps"),
    [(False, True), (True, True), (True, False)],
    ids=["socket-per-user", "shared-socket", "shared-socket-user-clock"],
)
async def test_clients_receive_every_granted_packet_verified(
    shared_socket: bool, kernel_timestamps: bool
) -> None:
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    ctx = BenchContext(encode_loop("tone", 0.4), sample_every=1, verify_rtcp=True,
                       shared_socket=shared_socket, kernel_timestamps=kernel_timestamps)
    clients: list[SyntheticClient] = []
    try:
        clients = await _room(router, ctx, 4)
        turns = []
        for k, talker in enumerate((clients[1], clients[3], clients[1])):
            first, last = await _talk(router, talker, 40, 100 * k)
            turns.append((talker, first, last))
        router.set_speaker("room", None)
    finally:
        for client in clients:
            client.detach()  # stop reading before the router says goodbye
        await router.close()
        if ctx.mux is not None:
            ctx.mux.close()
    for client in clients:
        mon = client.monitor
        assert mon is not None
        expected = [(t.ssrc, a, b) for t, a, b in turns if t is not client]
        acc = account(mon.runs, mon.late, expected)
        assert acc.expected > 0
        assert acc.missing == 0 and acc.duplicates == 0 and acc.out_of_order == 0
        assert acc.extra == 3 * len(expected)  # each turn's pre-roll, flushed on grant
        assert mon.own_audio == 0 and mon.unmatched == 0 and mon.malformed == 0
        assert mon.verified == mon.packets and not mon.failures
        assert mon.jumps_at_switch == 0 and mon.jumps_in_burst == 0
        assert mon.rtcp_bad == 0
    # listeners that never talked received all three turns
    assert clients[0].monitor.packets == 3 * 43
    assert ctx.preroll_hist.count() == 3 * 3 * 3  # 3 turns x 3 pre-roll packets x 3 listeners
    if shared_socket:
        # every user had its own loopback address on the one socket
        assert len({c.local_ip for c in clients}) == 4
        assert ctx.mux is not None and ctx.mux.datagrams > 0


async def test_shared_socket_addresses_are_distinct_loopback_addresses() -> None:
    from bench.mux import SharedSocket

    mux = SharedSocket(asyncio.get_running_loop())
    try:
        addresses = [mux.allocate() for _ in range(70_000)]
    finally:
        mux.close()
    assert len(set(addresses)) == len(addresses)
    for address in addresses[:300] + addresses[-300:]:
        parts = [int(p) for p in address.split(".")]
        assert parts[0] == 127 and parts[1] >= 1 and 1 <= parts[3] <= 254


@pytest.mark.parametrize("shared_socket", [True, False], ids=["shared-socket", "socket-per-user"])
async def test_media_reset_then_reoffer_and_talk_on(shared_socket: bool) -> None:
    """The media plane loses every session of the room (as when its worker dies): each user
    drops its session and re-offers (new address, ICE credentials and DTLS endpoint); the
    talker, still holding the floor, talks on. What was sent into the outage is outage, not
    loss; everything after it arrives, verified."""
    router = await sfu.Router.start(sfu.RouterConfig(host="127.0.0.1", port=0))
    ctx = BenchContext(encode_loop("tone", 0.4), sample_every=1, verify_rtcp=True,
                       shared_socket=shared_socket)
    clients: list[SyntheticClient] = []
    try:
        clients = await _room(router, ctx, 3)
        talker, listeners = clients[0], clients[1:]
        before = {c.name: (c.local_ip, c.session.sock, c.session.ice) for c in clients}
        talker.start_talking()
        router.set_speaker("room", talker.id)
        first = talker.granted()
        for tick in range(30):
            talker.send_frame(tick)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        for client in clients:  # the worker is gone: the server forgot every peer
            router.remove_peer(client.id)
        for tick in range(30, 35):  # sent before the reset reached the talker: lost
            talker.send_frame(tick)
        await asyncio.sleep(0.05)

        def via_router(client: SyntheticClient):
            async def offer_answer(sdp: str) -> str:
                return router.add_peer(client.id, "room", sdp)
            return offer_answer

        for client in clients:
            client.media_reset("media worker restarted", via_router(client))
        for tick in range(35, 45):  # while re-offering, nothing leaves
            talker.send_frame(tick)
        for client in clients:
            await client.wait_reoffer()
        router.set_speaker("room", talker.id)  # the holder's new session speaks at once
        for tick in range(45, 75):
            talker.send_frame(tick)
            await asyncio.sleep(0.005)
        last = talker.stop_talking()
        await asyncio.sleep(0.2)
    finally:
        for client in clients:
            client.detach()
        await router.close()
        if ctx.mux is not None:
            ctx.mux.close()
    assert talker.frames_not_sent == 10 and talker.sent_packets == 65
    assert last - first + 1 == 65  # no sequence number was used up while no session was up
    for client in clients:
        record = client.reoffers[0]
        assert record.back_at is not None and record.attempts == 1 and not record.errors
        old_ip, old_sock, old_ice = before[client.name]
        assert client.session.ice is not old_ice  # new ICE credentials, new DTLS endpoint
        if shared_socket:
            assert client.local_ip != old_ip  # a new address, as a new peer connection's port
        else:
            assert client.session.sock is not old_sock
    for listener in listeners:
        mon = listener.monitor
        assert mon is not None
        marks = [r.mark() for r in listener.reoffers]
        expected = [(talker.ssrc, first, last)]
        ordinary, inside = carve(expected, outage_holes(mon.runs, marks))
        assert account(mon.runs, mon.late, ordinary).missing == 0
        assert account(mon.runs, mon.late, inside).missing == 5  # sent into the outage
        assert account(mon.runs, mon.late, expected).received_expected == 60
        assert len(mon.restarts) == 1 and len(mon.resumed_ns) == 1
        assert mon.verified == mon.packets and not mon.failures and mon.rtcp_bad == 0
        assert mon.jumps_in_burst == 0 and mon.jumps_at_switch == 0 and mon.unmatched == 0
