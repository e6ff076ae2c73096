"""Webhooks (signaling/webhooks.py): the events, and their delivery to a local HTTP receiver
on loopback: order per room, retries after 500s, the signature, bounds, a dead receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from signaling import floor as fl
from signaling.rooms import Member
from signaling.server import SignalingServer
from signaling.metrics import Metrics
from signaling.webhooks import DeliveryStats, RoomEvents, WebhookSender, url_host

from .conftest import ServerFactory, WsClient
from .hookreceiver import Receiver

SECRET = "hook-secret"


def member(mid: str, name: str, room: str = "ops") -> Member:
    return Member(mid, name, room)


# -- the events (sans-IO) -------------------------------------------------------------------------


def test_events_name_rooms_members_and_transmissions_in_order() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    now = [100.0]
    events = RoomEvents(lambda room, e: out.append((room, e)), clock=lambda: now[0],
                        wall=lambda: 1_700_000_000.0)
    ann, bob = member("a", "Ann"), member("b", "Bob")
    events.joined(ann)
    events.joined(bob)
    events.floor_effect(fl.Granted("a", 60000), 100.0)
    events.floor_effect(fl.Granted("a", 59000), 101.0)  # a repeated request: nothing new
    events.floor_effect(fl.Revoked("a", "preempted", by="b"), 102.5)
    events.floor_effect(fl.Granted("b", 60000), 102.5)
    now[0] = 104.0
    events.left("b")  # the talker leaves: its transmission ends first
    events.floor_effect(fl.Released("a"), 105.0)  # not talking: nothing
    events.left("a")
    kinds = [(e["event"], e.get("member", e.get("talker", {})).get("name"), e["seq"])
             for _, e in out]
    assert kinds == [
        ("room_started", None, 1), ("member_joined", "Ann", 2), ("member_joined", "Bob", 3),
        ("transmission_started", "Ann", 4), ("transmission_ended", "Ann", 5),
        ("transmission_started", "Bob", 6), ("transmission_ended", "Bob", 7),
        ("member_left", "Bob", 8), ("member_left", "Ann", 9), ("room_finished", None, 10),
    ]
    ended = [e for _, e in out if e["event"] == "transmission_ended"]
    assert [(e["duration_s"], e["reason"]) for e in ended] == [(2.5, "preempted"), (1.5, "left")]
    assert all(room == "ops" and e["room"] == "ops" and e["time"] == 1_700_000_000.0
               for room, e in out)


# -- delivery -----------------------------------------------------------------------------------


def check_signature(headers: dict[str, str], body: bytes) -> None:
    timestamp = headers["x-walkie-timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert headers["x-walkie-signature"] == "sha256=" + mac.hexdigest()


async def test_events_arrive_signed_and_in_order_per_room(receiver: Receiver) -> None:
    sender = WebhookSender((receiver.url,), SECRET)
    for i in range(30):
        for room in ("r1", "r2", "r3"):
            sender.submit(room, {"event": "n", "room": room, "i": i})
    got = await receiver.wait_for(90)
    for room in ("r1", "r2", "r3"):
        assert [e["i"] for e in got if e["room"] == room] == list(range(30))
    for headers, body in receiver.requests:
        check_signature(headers, body)
        assert headers[":request"] == "POST /hooks?k=1 HTTP/1.1"
        assert headers["content-type"] == "application/json"
    await sender.flush(10.0)
    assert sender.stats.delivered == 90
    await sender.close()


async def test_a_forged_body_does_not_match_the_signature(receiver: Receiver) -> None:
    sender = WebhookSender((receiver.url,), SECRET)
    sender.submit("r", {"event": "room_started"})
    await receiver.wait_for(1)
    headers, body = receiver.requests[0]
    with pytest.raises(AssertionError):
        check_signature(headers, body.replace(b"room_started", b"room_finished"))
    await sender.close()


async def test_500s_are_retried_with_backoff_and_the_order_is_kept(receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 429]
    sender = WebhookSender((receiver.url,), SECRET, first_backoff=0.01)
    for i in range(3):
        sender.submit("r", {"i": i})
    got = await receiver.wait_for(6)
    # The first event was tried four times (three refusals) before the second was sent.
    assert [e["i"] for e in got] == [0, 0, 0, 0, 1, 2]
    await sender.flush(10.0)
    assert (sender.stats.retried, sender.stats.delivered, sender.stats.given_up) == (3, 3, 0)
    await sender.close()


async def test_a_4xx_is_given_up_at_once_and_so_are_events_past_the_attempts(
        receiver: Receiver) -> None:
    receiver.statuses = [400, 500, 500]
    sender = WebhookSender((receiver.url,), SECRET, first_backoff=0.01, max_attempts=2)
    sender.submit("r", {"i": 0})
    sender.submit("r", {"i": 1})
    sender.submit("r", {"i": 2})
    got = await receiver.wait_for(4)
    assert [e["i"] for e in got] == [0, 1, 1, 2]
    await sender.flush(10.0)
    assert (sender.stats.given_up, sender.stats.delivered) == (2, 1)
    await sender.close()


async def test_the_queue_is_bounded_and_drops_are_counted(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.hang = True  # nothing is ever answered: everything stays queued
    sender = WebhookSender((receiver.url,), SECRET, max_queued=5, timeout=30)
    for i in range(12):
        sender.submit(f"room-{i % 3}", {"i": i})
    assert sender.stats.dropped == 7
    assert "queue" in caplog.text and "full" in caplog.text
    assert "/hooks" not in caplog.text and "k=1" not in caplog.text  # the host only
    # /metrics shows them per URL host (signaling/metrics.py), never the path or query.
    host = url_host(receiver.url)
    text = Metrics(lambda: {"webhooks": sender.by_host()}).exposition().decode()
    found = {(s.name, tuple(s.labels.items())): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    assert found[("walkie_webhook_dropped_total", (("host", host),))] == 7
    assert found[("walkie_webhook_queue_length", (("host", host),))] == 5
    assert found[("walkie_webhook_deliveries_total", (("host", host),))] == 0
    assert "hooks" not in text and "k=1" not in text
    await sender.close()
    assert sender.by_host() == {host: DeliveryStats(dropped=7)}  # what waited is lost


def test_a_url_s_label_is_its_host_and_port_only() -> None:
    assert url_host("https://hooks.example.org/services/T0/B0/s3cret?key=x") == "hooks.example.org"
    assert url_host("http://user:pw@127.0.0.1:8080/a") == "127.0.0.1:8080"
    assert url_host("http://[::1]:9000/") == "[::1]:9000"


async def test_urls_on_one_host_are_counted_together(receiver: Receiver) -> None:
    receiver.statuses = [500, 404]
    other = receiver.url.replace("/hooks?k=1", "/elsewhere")
    sender = WebhookSender((receiver.url, other), SECRET, first_backoff=0.01)
    sender.submit("r", {"i": 0})
    await receiver.wait_for(3)
    await sender.flush(10.0)
    # One URL failed once then delivered; the other was refused (404): given up at once.
    assert sender.by_host() == {url_host(receiver.url): DeliveryStats(
        delivered=1, failed=2, retried=1, given_up=1)}
    await sender.close()


async def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens there now: connections are refused
    sender = WebhookSender((f"http://127.0.0.1:{port}/",), SECRET, first_backoff=0.01,
                           max_attempts=3)
    sender.submit("r", {"i": 0})
    await sender.flush(10.0)
    assert (sender.stats.retried, sender.stats.given_up, sender.stats.delivered) == (2, 1, 0)


# -- through the server -----------------------------------------------------------------------------


async def talk_and_leave(server: SignalingServer, clients: Any) -> None:
    ann: WsClient = await clients(server)
    bob: WsClient = await clients(server)
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await ann.send({"type": "floor_release"})
    await ann.expect("floor_released")
    await ann.ws.close()
    await bob.expect("member_left")
    await bob.ws.close()


async def test_a_session_s_events_reach_the_receiver(
        make_server: ServerFactory, client_factory: Any, receiver: Receiver) -> None:
    server = await make_server(webhook_urls=(receiver.url,), webhook_secret=SECRET)
    await talk_and_leave(server, client_factory)
    got = await receiver.wait_for(8)
    assert [e["event"] for e in got] == [
        "room_started", "member_joined", "member_joined", "transmission_started",
        "transmission_ended", "member_left", "member_left", "room_finished"]
    assert [e["seq"] for e in got] == list(range(1, 9))
    ended = got[4]
    assert ended["talker"]["name"] == "Ann" and ended["reason"] == "released"
    assert ended["duration_s"] >= 0
    for headers, body in receiver.requests:
        check_signature(headers, body)


async def test_a_dead_receiver_never_holds_signaling_up(
        make_server: ServerFactory, client_factory: Any, receiver: Receiver) -> None:
    receiver.hang = True  # accepts connections, never answers
    server = await make_server(webhook_urls=(receiver.url,), webhook_secret=SECRET)
    for _ in range(3):  # every message is answered while every webhook hangs
        await talk_and_leave(server, client_factory)
    assert server.webhooks is not None and server.webhooks.stats.delivered == 0
