"""/metrics (signaling/metrics.py) against the real server and router: off by default, a
bearer token when configured, and every counter equal to what the test itself did."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from signaling.server import SignalingServer

from .conftest import ClientFactory, ServerFactory
from .hookreceiver import Receiver


async def http_get(server: SignalingServer, path: str,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one plain HTTP/1.1 GET."""
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
                 "Connection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


Found = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: SignalingServer) -> Found:
    status, _, body = await http_get(server, "/metrics")
    assert status == 200, body
    return samples(body)


def value(found: Found, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def test_metrics_are_off_unless_asked(make_server: ServerFactory) -> None:
    server = await make_server()
    status, _, _ = await http_get(server, "/metrics")
    assert status == 404


async def test_a_token_is_required_when_set(make_server: ServerFactory) -> None:
    server = await make_server(metrics=True, metrics_token="s3cret")
    status, fields, _ = await http_get(server, "/metrics")
    assert status == 401 and fields["www-authenticate"].startswith("Bearer")
    status, _, _ = await http_get(server, "/metrics", {"Authorization": "Bearer wrong"})
    assert status == 401
    status, fields, body = await http_get(server, "/metrics", {"Authorization": "Bearer s3cret"})
    assert status == 200 and fields["content-type"].startswith("text/plain; version=0.0.4")
    assert "walkie_rooms 0.0" in body


async def test_floor_and_membership_counters_follow_what_happened(
    make_server: ServerFactory, client_factory: ClientFactory
) -> None:
    server = await make_server(metrics=True)
    ann, bob, cy = [await client_factory(server) for _ in range(3)]
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    await cy.join("ops", "Cy")
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.send({"type": "floor_request"})
    await bob.expect("floor_queued")
    await cy.send({"type": "floor_request"})
    await cy.expect("floor_queued")
    found = await scrape(server)
    assert value(found, "walkie_floor_queue_length") == 2
    assert value(found, "walkie_floor_busy_rooms") == 1
    await ann.send({"type": "floor_release"})  # Bob next, from the queue
    await bob.expect("floor_granted")
    await cy.send({"type": "floor_release"})  # Cy gives up its place
    await cy.expect("floor_released")
    await bob.send({"type": "floor_release"})
    await bob.expect("floor_released")
    await cy.send({"type": "bogus"})
    await cy.expect("error")
    await cy.ws.close()
    await ann.expect("member_left")

    found = await scrape(server)
    assert value(found, "walkie_joins_total") == 3
    assert value(found, "walkie_leaves_total") == 1
    assert value(found, "walkie_members") == 2 and value(found, "walkie_rooms") == 1
    assert value(found, "walkie_floor_requests_total") == 3
    assert value(found, "walkie_floor_grants_total", queued="false") == 1
    assert value(found, "walkie_floor_grants_total", queued="true") == 1
    assert value(found, "walkie_floor_queued_total") == 2
    assert value(found, "walkie_floor_releases_total") == 2  # Cy's leaving the queue is not one
    assert value(found, "walkie_floor_access_seconds_count", queued="false") == 1
    assert value(found, "walkie_floor_access_seconds_count", queued="true") == 1
    assert value(found, "walkie_join_seconds_count") == 3
    assert value(found, "walkie_errors_total", code="bad_message") == 1
    assert value(found, "walkie_floor_queue_length") == 0
    assert value(found, "walkie_media_peers", worker="0", state="connected") == 0


async def test_denials_and_revocations_are_counted_by_reason(
    make_server: ServerFactory, client_factory: ClientFactory
) -> None:
    server = await make_server(metrics=True, queue=False, max_talk_time=0.3)
    ann, bob = await client_factory(server), await client_factory(server)
    await ann.join("ops", "Ann")
    await bob.join("ops", "Bob")
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await bob.send({"type": "floor_request"})
    denied = await bob.expect("floor_denied")
    await ann.expect("floor_revoked", timeout=10, reason="max_talk_time")
    found = await scrape(server)
    assert value(found, "walkie_floor_denials_total", reason=denied["reason"]) == 1
    assert value(found, "walkie_floor_revocations_total", reason="max_talk_time") == 1


async def test_webhook_deliveries_are_counted_per_host_of_the_url(
    make_server: ServerFactory, client_factory: ClientFactory, receiver: Receiver
) -> None:
    """The label is the URL's host and port: the path and query (here ``/hooks?k=1``) may
    carry the receiver's secret and never appear in /metrics."""
    receiver.statuses = [500]  # the first event is refused once, then delivered
    server = await make_server(metrics=True, webhook_urls=(receiver.url,),
                               webhook_secret="hook-secret")
    ann = await client_factory(server)
    await ann.join("ops", "Ann")
    await ann.ws.close()
    # room_started (twice: refused once), member_joined, member_left, room_finished; the
    # last one is counted once its answer is read: flush
    await receiver.wait_for(5)
    assert server.webhooks is not None
    await server.webhooks.flush(10.0)
    status, _, body = await http_get(server, "/metrics")
    assert status == 200 and "hooks" not in body and "k=1" not in body
    found = samples(body)
    host = f"127.0.0.1:{receiver.url.split(':')[2].split('/')[0]}"
    events = len(receiver.requests) - 1  # every event once, the first one twice
    assert events == 4  # room_started, member_joined, member_left, room_finished
    assert value(found, "walkie_webhook_deliveries_total", host=host) == events
    assert value(found, "walkie_webhook_failed_attempts_total", host=host) == 1
    assert value(found, "walkie_webhook_retries_total", host=host) == 1
    assert value(found, "walkie_webhook_given_up_total", host=host) == 0
    assert value(found, "walkie_webhook_dropped_total", host=host) == 0
    assert value(found, "walkie_webhook_queue_length", host=host) == 0


async def test_the_sample_dashboard_asks_only_for_metrics_the_server_has(
    make_server: ServerFactory, client_factory: ClientFactory, receiver: Receiver
) -> None:
    """docs/grafana-walkie.json must not chart a metric that does not exist (a typo there
    would show an empty panel, silently)."""
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                            "grafana-walkie.json").read_text())
    wanted = {name for panel in dashboard["panels"] for target in panel["targets"]
              for name in re.findall(r"\bwalkie_[a-z_]+", target["expr"])}
    # With a webhook URL, so that the webhook panel's metrics exist too.
    server = await make_server(metrics=True, webhook_urls=(receiver.url,),
                               webhook_secret="hook-secret")
    ann = await client_factory(server)
    await ann.join("ops", "Ann")
    await ann.send({"type": "bogus"})  # error codes are open-ended: one must have happened
    await ann.expect("error")
    found = {name for name, _ in await scrape(server)}
    assert wanted and wanted <= found, sorted(wanted - found)
