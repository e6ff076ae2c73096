"""The budgets and limits of docs/PROTOCOL.md ("Limits") as a client meets them, against the
real server: joins, rooms and messages per address, the password gate, the server-wide
connection cap, the join deadline, the offer size cap and repeated unusable offers.

A second client address is a second loopback address (Linux answers all of 127/8 on lo)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from signaling.budgets import MAX_BAD_OFFERS, MAX_OFFER_BYTES, BudgetSettings
from signaling.server import SignalingServer

from .conftest import ServerFactory, WsClient

OFFER = (Path(__file__).parent / "chrome_offer.sdp").read_text()
OTHER = "127.0.0.2"  # another client address


def budgets(**changes: Any) -> BudgetSettings:
    return dataclasses.replace(BudgetSettings(), **changes)


async def join_error(client: WsClient, room: str, password: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "join", "room": room, "name": "X"}
    if password is not None:
        message["password"] = password
    await client.send(message)
    return await client.expect("error")


async def test_joins_per_address_are_budgeted(make_server: ServerFactory, client_factory) -> None:  # noqa: ANN001
    """A join sweep from one address gets its burst, then ``try_later``; others are not slowed."""
    server = await make_server(budgets=budgets(join_rate=0.5, join_burst=3))
    for i in range(3):
        c = await client_factory(server)
        await c.join(f"sweep-{i}", "Sweeper")
    c = await client_factory(server)
    error = await join_error(c, "sweep-3")
    assert error["code"] == "try_later" and error["fatal"] is False and error["retry_ms"] > 0
    await c.ping()  # non-fatal: the session goes on
    other = await client_factory(server, local_addr=(OTHER, 0))
    await other.join("sweep-3", "Someone else")


async def test_rooms_created_per_address(make_server: ServerFactory, client_factory) -> None:  # noqa: ANN001
    server = await make_server(budgets=budgets(rooms_per_address=2))
    owners = [await client_factory(server) for _ in range(2)]
    for i, owner in enumerate(owners):
        await owner.join(f"mine-{i}", "Owner")
    c = await client_factory(server)
    error = await join_error(c, "mine-2")
    assert error["code"] == "too_many_rooms" and error["fatal"] is True
    assert await c.closed() == 1008
    guest = await client_factory(server)
    await guest.join("mine-0", "Guest")  # joining a room that exists is fine
    await owners[1].ws.close()  # its room closes with it: the address may create one again
    for _ in range(250):
        if server.registry.get("mine-1") is None:
            break
        await asyncio.sleep(0.02)
    again = await client_factory(server)
    await again.join("mine-3", "Owner")


async def test_messages_per_address_are_shared_by_its_sockets(
    make_server: ServerFactory, client_factory  # noqa: ANN001
) -> None:
    server = await make_server(budgets=budgets(message_rate=1, message_burst=4))
    a, b = await client_factory(server), await client_factory(server)
    for _ in range(4):
        await a.send({"type": "ping"})
    for _ in range(4):
        await a.expect("pong")
    await b.send({"type": "ping"})  # another socket, the same address: nothing left
    error = await b.expect("error")
    assert error["code"] == "rate_limited" and error["fatal"] is False
    other = await client_factory(server, local_addr=(OTHER, 0))
    await other.ping()


async def test_server_wide_connection_cap(make_server: ServerFactory, client_factory) -> None:  # noqa: ANN001
    server = await make_server(budgets=budgets(max_connections=2))
    first = await client_factory(server)
    await client_factory(server, local_addr=(OTHER, 0))
    third = await client_factory(server, local_addr=("127.0.0.3", 0))
    error = await third.expect("error")
    assert error["code"] == "server_full" and error["fatal"] is True
    assert await third.closed() == 1008
    await first.join("still", "Fine")


async def test_a_socket_that_never_joins_is_closed(make_server: ServerFactory, client_factory) -> None:  # noqa: ANN001
    server = await make_server(budgets=budgets(join_timeout=0.3))
    idle = await client_factory(server)
    joined = await client_factory(server)
    await joined.join("room", "Ann")
    await idle.ping()  # pings do not keep a socket that never joins
    error = await idle.expect("error")
    assert error["code"] == "join_timeout" and error["fatal"] is True
    assert await idle.closed() == 1008
    await asyncio.sleep(0.4)
    await joined.ping()  # a joined member is never timed out


async def test_password_guesses_back_off_and_a_legitimate_join_goes_through(
    make_server: ServerFactory, client_factory  # noqa: ANN001
) -> None:
    server: SignalingServer = await make_server()
    owner = await client_factory(server, local_addr=(OTHER, 0))
    await owner.join("vault", "Owner", password="right")
    codes = []
    for i in range(5):  # one guesser, one socket after another (a wrong password is fatal)
        guesser = await client_factory(server)
        error = await join_error(guesser, "vault", f"guess-{i}")
        codes.append(error["code"])
        if error["code"] == "try_later":
            assert error["retry_ms"] >= 500 and "wrong passwords" in error["message"]
            await guesser.ping()  # not fatal
    assert codes == ["bad_password"] * 4 + ["try_later"]  # 3 free, the 4th makes it wait
    friend = await client_factory(server, local_addr=("127.0.0.3", 0))
    await friend.join("vault", "Friend", password="right")  # another address: no wait


async def test_one_password_check_at_a_time_per_address(
    make_server: ServerFactory, client_factory  # noqa: ANN001
) -> None:
    server = await make_server()
    owner = await client_factory(server, local_addr=(OTHER, 0))
    await owner.join("vault", "Owner", password="right")
    guessers = [await client_factory(server) for _ in range(4)]
    for i, guesser in enumerate(guessers):  # all at once, from one address
        await guesser.send({"type": "join", "room": "vault", "name": "G", "password": f"g{i}"})
    codes = sorted([(await g.expect("error"))["code"] for g in guessers])
    assert codes == ["bad_password"] + ["try_later"] * 3


async def test_an_oversize_offer_is_refused_before_parsing(new_client) -> None:  # noqa: ANN001
    c = await new_client()
    await c.join("room", "Ann")
    await c.send({"type": "offer", "sdp": OFFER + "a=x-pad:" + "x" * MAX_OFFER_BYTES + "\r\n"})
    error = await c.expect("error")
    assert error["code"] == "bad_offer" and "larger than" in error["message"]
    assert error["fatal"] is False
    await c.send({"type": "offer", "sdp": OFFER})
    await c.expect("answer")


async def test_repeated_unusable_offers_are_fatal(new_client) -> None:  # noqa: ANN001
    c = await new_client()
    other = await new_client()
    await c.join("room", "Ann")
    await other.join("room", "Ben")
    for i in range(1, MAX_BAD_OFFERS + 1):
        await c.send({"type": "offer", "sdp": "v=0\r\nnot an offer\r\n"})
        error = await c.expect("error")
        assert error["code"] == "bad_offer" and error["fatal"] is (i == MAX_BAD_OFFERS)
    assert await c.closed() == 1008
    await other.expect("member_left")
    await other.ping()
