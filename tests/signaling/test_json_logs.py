"""JSON logs (--log-format json): one object per line with the connection id, and no secret,
password or join token in any line logged during a scenario that uses them all."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from sfu.logs import LOG_FORMAT_ENV, JsonFormatter, configure
from signaling.logcontext import ConnectionFilter, connection_id
from signaling.tokens import Grant, issue
from signaling.turn import TurnConfig

from .conftest import ClientFactory, ServerFactory
from .test_metrics import http_get

TOKEN_SECRET = "token-secret-" + "q" * 40
TURN_SECRET = "turn-secret-Zx81"
METRICS_TOKEN = "metrics-token-Pq72"
PASSWORD = "correct-horse-77"
WRONG_PASSWORD = "wrong-horse-88"


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """Everything any logger writes at DEBUG, as the JSON lines walkie serve writes."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ConnectionFilter())
    root = logging.getLogger()
    level, ws_level = root.level, logging.getLogger("websockets").level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # as walkie.serve.setup_logging
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("websockets").setLevel(ws_level)


def test_a_record_is_one_json_line_with_its_connection() -> None:
    record = logging.LogRecord("walkie.signaling", logging.INFO, __file__, 1,
                               "member %s joined\nroom %s", ("k3J9", "ops"), None)
    token = connection_id.set("c7")
    try:
        ConnectionFilter().filter(record)
    finally:
        connection_id.reset(token)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "member k3J9 joined\nroom ops" and entry["conn"] == "c7"
    assert (entry["level"], entry["logger"]) == ("info", "walkie.signaling")
    assert entry["time"].endswith("Z")


def test_a_media_worker_takes_the_format_from_its_environment() -> None:
    script = ("import logging; from sfu.logs import configure; "
              "configure(logging.WARNING); logging.getLogger('walkie.sfu').warning('hi')")
    env = {**os.environ, LOG_FORMAT_ENV: "json"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=30, check=True)
    assert json.loads(result.stderr.strip())["message"] == "hi"
    env[LOG_FORMAT_ENV] = "text"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=30, check=True)
    assert result.stderr.strip().endswith("walkie.sfu: hi")
    assert configure  # the worker's own entry point calls it (sfu/pool/worker.py main)


async def test_no_secret_password_or_token_is_ever_logged(
        make_server: ServerFactory, client_factory: ClientFactory,
        logged: io.StringIO) -> None:
    good = issue(TOKEN_SECRET, Grant("ops", "Ann", time.time() + 600, priority=3))
    expired = issue(TOKEN_SECRET, Grant("ops", "Eve", time.time() - 600))
    turn = TurnConfig(("turn:127.0.0.1:3478",), TURN_SECRET, 600)
    tokens = await make_server(token_secret=TOKEN_SECRET, turn=turn, metrics=True,
                               metrics_token=METRICS_TOKEN)
    ann = await client_factory(tokens)
    await ann.send({"type": "join", "room": "ops", "token": good, "password": PASSWORD})
    await ann.expect("error", code="bad_message")
    await ann.send({"type": "join", "room": "ops", "token": good})
    joined = await ann.expect("joined")
    credential = joined["ice_servers"][0]["credential"]
    await ann.send({"type": "floor_request"})
    await ann.expect("floor_granted")
    await ann.send({"type": "offer", "sdp": "v=0\r\nnot an offer " + good})
    await ann.expect("error", code="bad_offer")
    for bad in (expired, good[:-4] + "AAAA", good + "." + TOKEN_SECRET):
        eve = await client_factory(tokens)
        await eve.send({"type": "join", "room": "ops", "token": bad})
        await eve.closed()
    for auth in (f"Bearer {METRICS_TOKEN}", "Bearer wrong-" + METRICS_TOKEN):
        await http_get(tokens, "/metrics", {"Authorization": auth})
    await ann.ws.close()

    passwords = await make_server()
    bob, mal = await client_factory(passwords), await client_factory(passwords)
    await bob.join("lab", "Bob", password=PASSWORD)
    await mal.send({"type": "join", "room": "lab", "name": "Mal", "password": WRONG_PASSWORD})
    await mal.closed()
    await bob.ws.close()
    await tokens.close()
    await passwords.close()

    text = logged.getvalue()
    entries = [json.loads(line) for line in text.splitlines()]
    assert any(e.get("conn") and "joined room ops" in e["message"] for e in entries), text
    for secret in (TOKEN_SECRET, TURN_SECRET, METRICS_TOKEN, PASSWORD, WRONG_PASSWORD, good,
                   expired, good.split(".")[2], credential):
        assert secret not in text
