"""The signaling protocol end to end: websockets clients against the real server and the
real media plane (sfu.Router), both in-process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signaling.server import SignalingServer

from .conftest import ServerFactory, WsClient, get, http

NewClient = Callable[[], Awaitable[WsClient]]
ClientOf = Callable[[SignalingServer], Awaitable[WsClient]]


async def test_join_and_presence(new_client: NewClient) -> None:
    ann = await new_client()
    joined = await ann.join("ops", "Ann")
    assert joined["room"] == "ops"
    assert joined["members"] == [joined["you"]]
    assert joined["max_users"] == 15 and joined["max_talk_ms"] == 60000
    assert joined["floor"] == {"holder": None, "queue_length": 0}
    assert joined["ice_servers"] == []

    bob = await new_client()
    bob_joined = await bob.join("ops", "  Bob  ")
    assert bob_joined["you"]["name"] == "Bob"
    assert bob_joined["members"] == [joined["you"], bob_joined["you"]]
    assert (await ann.expect("member_joined"))["member"] == bob_joined["you"]

    # Another room sees none of this.
    cy = await new_client()
    assert [m["name"] for m in (await cy.join("elsewhere", "Cy"))["members"]] == ["Cy"]

    await bob.ws.close()
    assert (await ann.expect("member_left"))["id"] == bob_joined["you"]["id"]
    await cy.ping()
    await cy.nothing_more()


async def test_sixteenth_joiner_gets_room_full(new_client: NewClient) -> None:
    members = []
    for i in range(15):
        c = await new_client()
        await c.join("full", f"m{i}")
        members.append(c)
    late = await new_client()
    await late.send({"type": "join", "room": "full", "name": "late"})
    error = await late.expect("error")
    assert error["code"] == "room_full" and error["fatal"] is True
    assert await late.closed() == 1008
    # The fifteen are unaffected: nobody saw the sixteenth, everyone still works.
    for c in members:
        await c.ping()
    first = members[0]
    assert sum(m["type"] == "member_joined" for m in first.seen) == 14
    assert all(m["type"] in ("joined", "member_joined", "pong") for m in first.seen)
    # When one leaves, there is room again.
    await members[-1].ws.close()
    await first.expect("member_left")
    again = await new_client()
    assert len((await again.join("full", "late"))["members"]) == 15


async def test_password_protected_room(new_client: NewClient) -> None:
    owner = await new_client()
    joined = await owner.join("private", "Owner", password="hunter2")
    assert joined["password_protected"] is True
    friend = await new_client()
    await friend.join("private", "Friend", password="hunter2")
    for attempt in ("wrong", None):
        intruder = await new_client()
        message = {"type": "join", "room": "private", "name": "X"}
        if attempt is not None:
            message["password"] = attempt
        await intruder.send(message)
        error = await intruder.expect("error")
        assert error["code"] == "bad_password" and error["fatal"] is True
        assert await intruder.closed() == 1008
    await owner.ping()
    assert sum(m["type"] == "member_joined" for m in owner.seen) == 1


@pytest.mark.parametrize(
    "frame,code",
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type":"teleport"}', "bad_message"),
        ('{"no":"type"}', "bad_message"),
        ('{"type":"join","room":"ok"}', "bad_message"),
        ('{"type":"join","room":"ok","name":7}', "bad_message"),
        ('{"type":"offer","sdp":"v=0"}', "not_joined"),
        ('{"type":"floor_request"}', "not_joined"),
    ],
)
async def test_bad_input_gets_an_error_and_the_session_goes_on(
    new_client: NewClient, frame: str, code: str
) -> None:
    c = await new_client()
    other = await new_client()
    await other.join("room", "Other")
    await c.send_raw(frame)
    error = await c.expect("error")
    assert error == {"type": "error", "code": code, "message": error["message"], "fatal": False}
    assert error["message"]
    # The same socket can still join and work; the other client noticed nothing but the join.
    await c.join("room", "Me")
    await c.ping()
    await other.expect("member_joined")
    await other.ping()
    await other.nothing_more()


async def test_errors_after_joining(new_client: NewClient) -> None:
    c = await new_client()
    await c.join("room", "Me")
    await c.send({"type": "join", "room": "room", "name": "Again"})
    assert (await c.expect("error"))["code"] == "already_joined"
    await c.send({"type": "offer", "sdp": "v=0\r\nnot an offer\r\n"})
    error = await c.expect("error")
    assert error["code"] == "bad_offer" and error["fatal"] is False
    await c.send_raw(b"\x00binary")
    assert (await c.expect("error"))["code"] == "bad_message"
    await c.ping()


@pytest.mark.parametrize(
    "join,code",
    [
        ({"room": "Bad Room!", "name": "n"}, "bad_room"),
        ({"room": "ok", "name": "bell\u0007"}, "bad_name"),
        ({"room": "ok", "name": "x" * 33}, "bad_name"),
    ],
)
async def test_bad_join_is_fatal_for_that_client_only(
    new_client: NewClient, join: dict[str, str], code: str
) -> None:
    other = await new_client()
    await other.join("ok", "Other")
    c = await new_client()
    await c.send({"type": "join", **join})
    error = await c.expect("error")
    assert error["code"] == code and error["fatal"] is True
    assert await c.closed() == 1008
    await other.ping()
    await other.nothing_more()


async def test_oversize_frames(new_client: NewClient) -> None:
    other = await new_client()
    await other.join("r", "Other")
    c = await new_client()
    await c.join("r", "Big")
    await other.expect("member_joined")
    # Over the 64 KiB protocol limit: a clear error, then close 1009 for this client only.
    await c.send({"type": "offer", "sdp": "a" * 70_000})
    error = await c.expect("error")
    assert error["code"] == "too_large" and error["fatal"] is True
    assert await c.closed() == 1009
    assert (await other.expect("member_left"))["type"] == "member_left"
    # Far over the limit: websockets refuses the frame itself (still 1009).
    huge = await new_client()
    await huge.send_raw("x" * 300_000)
    assert await huge.closed() == 1009
    await other.ping()


async def test_rate_limit(new_client: NewClient) -> None:
    c = await new_client()
    other = await new_client()
    for _ in range(100):
        await c.send({"type": "ping"})
    pongs = errors = 0
    while pongs + errors < 100:
        try:
            message = await c.recv(timeout=0.5)
        except asyncio.TimeoutError:
            break
        if message["type"] == "pong":
            pongs += 1
        else:
            assert message["type"] == "error" and message["code"] == "rate_limited"
            assert message["fatal"] is False
            errors += 1
    assert 40 <= pongs < 100
    assert errors >= 1
    # Not every dropped message is answered: the error is rate limited too.
    assert errors < 100 - pongs
    await other.ping()  # others are not limited by c's flood
    await asyncio.sleep(0.2)  # tokens come back
    await c.ping()


async def test_floor_request_grant_queue_release_idle(new_client: NewClient) -> None:
    ann, bob, cy = await new_client(), await new_client(), await new_client()
    a = (await ann.join("f", "Ann"))["you"]
    b = (await bob.join("f", "Bob"))["you"]
    await cy.join("f", "Cy")

    await ann.send({"type": "floor_request"})
    assert (await ann.expect("floor_granted"))["max_ms"] == 60000
    for c in (ann, bob, cy):
        await c.expect("floor", holder=a, queue_length=0)

    await bob.send({"type": "floor_request"})
    await bob.expect("floor_queued", position=1)
    for c in (ann, bob, cy):
        await c.expect("floor", holder=a, queue_length=1)

    await ann.send({"type": "floor_release"})
    await ann.expect("floor_released")
    await bob.expect("floor_granted")
    for c in (ann, bob, cy):
        await c.expect("floor", holder=b, queue_length=0)

    await bob.send({"type": "floor_release"})
    await bob.expect("floor_released")
    for c in (ann, bob, cy):
        await c.expect("floor", holder=None, queue_length=0)
    # A late joiner sees the current floor in its joined message.
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    dee = await new_client()
    assert (await dee.join("f", "Dee"))["floor"] == {"holder": a, "queue_length": 0}


async def test_floor_denied_when_queueing_is_off(
    make_server: ServerFactory, client_factory: ClientOf
) -> None:
    server = await make_server(queue=False)
    ann, bob = await client_factory(server), await client_factory(server)
    a = (await ann.join("f", "Ann"))["you"]
    assert (await bob.join("f", "Bob"))["queue"] is False
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.expect("floor", holder=a, queue_length=0)
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_denied", reason="busy", holder=a)
    await bob.ping()
    await bob.nothing_more()  # a denial changes nothing: no broadcast


async def test_floor_revoked_after_max_talk_time(
    make_server: ServerFactory, client_factory: ClientOf
) -> None:
    server = await make_server(max_talk_time=0.3)
    ann, bob = await client_factory(server), await client_factory(server)
    a = (await ann.join("f", "Ann"))["you"]
    assert (await bob.join("f", "Bob"))["max_talk_ms"] == 300
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted", max_ms=300)
    await ann.expect("floor", holder=a, queue_length=0)
    await ann.expect("floor_revoked", reason="max_talk_time")
    await ann.expect("floor", holder=None, queue_length=0)
    await bob.expect("floor", holder=a, queue_length=0)
    await bob.expect("floor", holder=None, queue_length=0)


async def test_holder_disconnect_releases_the_floor_at_once(new_client: NewClient) -> None:
    ann, bob = await new_client(), await new_client()
    await ann.join("f", "Ann")
    b = (await bob.join("f", "Bob"))["you"]
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_queued")
    await bob.expect("floor", queue_length=0)
    await bob.expect("floor", queue_length=1)
    await ann.ws.close()
    await bob.expect("floor_granted")
    await bob.expect("floor", holder=b, queue_length=0)
    await bob.expect("member_left")


async def test_static_files_and_health(server: SignalingServer) -> None:
    status, headers, body = await http(server, get("/r/some-room"))
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache" and headers["etag"]
    assert int(headers["content-length"]) == len(body) > 0
    status, headers2, _ = await http(server, get("/r/some-room", extra=f"If-None-Match: {headers['etag']}\r\n"))
    assert status == 304
    status, headers, body = await http(server, get("/static/signaling.js"))
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    status, headers, body = await http(server, get("/static/signaling.js", method="HEAD"))
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    for path in ("/nope", "/static/nope.js", "/static/../pyproject.toml",
                 "/static/%2e%2e/signaling/server.py", "/static/__init__.py", "/r/../../etc/passwd"):
        status, _, body = await http(server, get(path))
        assert status == 404, path
    status, headers, body = await http(server, get("/healthz"))
    assert status == 200 and headers["content-type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok" and health["rooms"] == 0 and health["media"]["peers"] == 0
    status, _, _ = await http(server, get("/", method="POST"))
    assert status == 405


async def test_websocket_origin_is_checked(server: SignalingServer, client_factory: ClientOf) -> None:
    host, port = server.address
    with pytest.raises(InvalidStatus) as info:
        await client_factory(server, origin="http://evil.example")
    assert info.value.response.status_code == 403
    ok = await client_factory(server, origin=f"http://{host}:{port}")
    await ok.ping()


async def test_a_crashing_handler_answers_server_error_and_the_server_lives(
    new_client: NewClient, server: SignalingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await new_client()
    await c.join("r", "Me")

    async def broken(*args: object) -> str:
        raise RuntimeError("media plane exploded")

    # A fault inside the media plane's negotiate, not an OfferError: an internal error.
    monkeypatch.setattr(server.hub.media, "negotiate", broken)
    await c.send({"type": "offer", "sdp": "v=0\r\n"})
    error = await c.expect("error")
    assert error["code"] == "server_error" and error["fatal"] is False
    await c.ping()
    other = await new_client()
    await other.join("r", "Other")


async def test_server_close_disconnects_clients(make_server: ServerFactory, client_factory: ClientOf) -> None:
    server = await make_server()
    c = await client_factory(server)
    await c.join("r", "Me")
    await server.close()
    assert await c.closed() == 1001
    with pytest.raises((OSError, ConnectionClosed, InvalidStatus)):
        await client_factory(server)


async def test_too_many_connections_from_one_address_are_refused(
    make_server, client_factory  # noqa: ANN001 - fixtures from conftest
) -> None:
    """One address cannot hold more than its share of sockets; the others keep working."""
    server = await make_server(max_connections_per_ip=2)
    first = await client_factory(server)
    second = await client_factory(server)
    await first.join("limits", "Ann")
    third = await client_factory(server)
    error = await third.expect("error")
    assert error["code"] == "too_many_connections" and error["fatal"] is True
    assert await third.closed() == 1008
    await second.join("limits", "Ben")  # the first two are unaffected
    await first.ping()
    await first.ws.close()
    for _ in range(250):  # the server notices the close and frees the slot
        if server.budgets.open_connections("127.0.0.1") < 2:
            break
        await asyncio.sleep(0.02)
    fourth = await client_factory(server)
    await fourth.join("limits", "Cy")
