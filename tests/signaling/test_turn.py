"""TURN/STUN URLs, the ICE servers browsers get, ``--force-relay``, and the secret staying home.

The coturn side of the credentials is proven in test_turn_coturn.py; this file covers what
walkie decides on its own: which URLs it accepts, what a ``joined`` message carries, and that
the shared secret shows up in no message and no log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from signaling import cli
from signaling.turn import (
    IceUrl,
    TurnConfig,
    TurnUrlError,
    ice_servers,
    parse_ice_url,
    turn_credential,
)

REPO = Path(__file__).resolve().parents[2]


# -- URL parsing (RFC 7064 / RFC 7065) -----------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("turn:turn.example.org", IceUrl("turn", "turn.example.org")),
        ("turn:turn.example.org:3478", IceUrl("turn", "turn.example.org", 3478)),
        ("TURN:Turn.Example.ORG:3478?transport=UDP",
         IceUrl("turn", "turn.example.org", 3478, "udp")),
        ("turns:turn.example.org:5349?transport=tcp",
         IceUrl("turns", "turn.example.org", 5349, "tcp")),
        ("stun:203.0.113.7:3478", IceUrl("stun", "203.0.113.7", 3478)),
        ("stuns:[2001:db8::1]:5349", IceUrl("stuns", "2001:db8::1", 5349)),
        ("turn:[2001:db8::1]?transport=tcp", IceUrl("turn", "2001:db8::1", None, "tcp")),
    ],
)
def test_parse_ice_url(text: str, expected: IceUrl) -> None:
    assert parse_ice_url(text) == expected


def test_ice_url_text_is_canonical() -> None:
    assert str(parse_ice_url("TURN:Turn.Example.ORG:3478?transport=UDP")) == \
        "turn:turn.example.org:3478?transport=udp"
    assert str(parse_ice_url("stuns:[2001:db8::1]:5349")) == "stuns:[2001:db8::1]:5349"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("turn://turn.example.org:3478", "no '//'"),
        ("http:turn.example.org", "must start with"),
        ("turn.example.org:3478", "must start with"),
        ("turn:", "not a host"),
        ("turn::3478", "not a host"),
        ("turn:turn.example.org:", "port"),
        ("turn:turn.example.org:0", "port"),
        ("turn:turn.example.org:65536", "port"),
        ("turn:turn.example.org:34x", "port"),
        ("turn:turn.example.org?transport=sctp", "only query"),
        ("turn:turn.example.org?foo=bar", "only query"),
        ("stun:turn.example.org?transport=udp", "takes no query"),
        ("turn:2001:db8::1", "port"),
        ("turn:[2001:db8::1", "unclosed"),
        ("turn:[not-v6]:3478", "IPv6"),
        ("turn:[2001:db8::1]x", "after the IPv6"),
        ("turn:bad_host!:3478", "not a host"),
        ("turn:user@host", "not a host"),
    ],
)
def test_bad_ice_urls_are_explained(text: str, why: str) -> None:
    with pytest.raises(TurnUrlError, match=re.escape(why)):
        parse_ice_url(text)


@given(st.text(max_size=80))
def test_parse_ice_url_raises_only_its_own_error(text: str) -> None:
    try:
        url = parse_ice_url(text)
    except TurnUrlError:
        return
    assert parse_ice_url(str(url)) == url  # whatever is accepted survives a round trip


_hosts = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}",
                  fullmatch=True),
    st.ip_addresses().map(str),
)


@given(st.sampled_from(["stun", "stuns", "turn", "turns"]), _hosts,
       st.none() | st.integers(1, 65535), st.none() | st.sampled_from(["udp", "tcp"]))
def test_every_valid_url_parses_back(scheme: str, host: str, port: int | None,
                                     transport: str | None) -> None:
    if scheme.startswith("stun"):
        transport = None
    url = IceUrl(scheme, host, port, transport)
    assert parse_ice_url(str(url)) == url


# -- TurnConfig and ice_servers --------------------------------------------------------------

def test_turn_urls_without_a_secret_are_refused() -> None:
    # Browsers throw InvalidAccessError for a turn: URL without credentials.
    with pytest.raises(ValueError, match="need the TURN secret"):
        TurnConfig(("turn:t.example:3478",))
    with pytest.raises(ValueError, match="empty"):
        TurnConfig(("stun:t.example",), "")
    with pytest.raises(ValueError, match="lifetime"):
        TurnConfig(("turn:t.example",), "k", ttl=0)
    with pytest.raises(TurnUrlError):
        TurnConfig(("turn://t.example",), "k")


def test_stun_and_turn_go_in_separate_entries() -> None:
    config = TurnConfig(("stun:t.example:3478", "turn:t.example:3478?transport=udp",
                         "turns:t.example:5349?transport=tcp"), "k", ttl=120)
    stun, turn = ice_servers(config, "member01", now=1000)
    assert stun == {"urls": ["stun:t.example:3478"]}  # no credential sent to a STUN server
    assert turn["urls"] == ["turn:t.example:3478?transport=udp",
                            "turns:t.example:5349?transport=tcp"]
    assert (turn["username"], turn["credential"]) == turn_credential("k", "member01", 1000, 120)
    assert turn["username"] == "1120:member01"
    assert config.has_turn and not TurnConfig(("stun:t.example",)).has_turn


def test_the_secret_is_not_in_the_config_repr() -> None:
    config = TurnConfig(("turn:t.example",), "hunter2-secret")
    assert "hunter2-secret" not in repr(config)
    assert "***" in repr(config)


# -- the joined message ------------------------------------------------------------------------

SECRET = "s3cret-never-leaves-" + "x" * 12


async def test_joined_carries_servers_and_the_relay_policy(make_server, client_factory) -> None:
    config = TurnConfig(("stun:127.0.0.1:3478", "turn:127.0.0.1:3478"), SECRET, ttl=300)
    server = await make_server(turn=config, force_relay=True)
    client = await client_factory(server)
    joined = await client.join("relay-room", "Ann")
    assert joined["ice_transport_policy"] == "relay"
    stun, turn = joined["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["username"].endswith(":" + joined["you"]["id"])
    # Another member's join notice is untouched (only the joiner's own "joined" changes).
    other = await client_factory(server)
    await other.join("relay-room", "Bob")
    notice = await client.expect("member_joined")
    assert "ice_transport_policy" not in notice


async def test_joined_says_all_without_force_relay(make_server, client_factory) -> None:
    server = await make_server()
    client = await client_factory(server)
    joined = await client.join("plain-room", "Ann")
    assert joined["ice_transport_policy"] == "all"
    assert joined["ice_servers"] == []


async def test_force_relay_without_a_turn_server_is_refused(make_server) -> None:
    with pytest.raises(ValueError, match="force_relay needs a TURN server"):
        await make_server(force_relay=True)
    with pytest.raises(ValueError, match="force_relay needs a TURN server"):
        await make_server(force_relay=True, turn=TurnConfig(("stun:127.0.0.1",)))


async def test_secret_is_in_no_message_and_no_log_line(make_server, client_factory, caplog
                                                       ) -> None:
    caplog.set_level(logging.DEBUG)  # everything, websockets' frame dumps included
    server = await make_server(turn=TurnConfig(("turn:127.0.0.1:3478",), SECRET),
                               force_relay=True)
    client = await client_factory(server)
    await client.join("secret-room", "Ann")
    await client.send({"type": "offer", "sdp": "not sdp"})
    await client.expect("error")
    await client.ping()
    assert client.seen and all(SECRET not in json.dumps(m) for m in client.seen)
    assert caplog.records and SECRET not in caplog.text


# -- the command line --------------------------------------------------------------------------

def settings(*argv: str) -> dict[str, object]:
    return cli._settings(cli.build_parser().parse_args(["serve", *argv]))


def test_turn_flags() -> None:
    s = settings("--turn-url", "turn:t.example:3478", "--turn-url",
                 "turns:t.example:5349?transport=tcp", "--stun-url", "stun:t.example:3478",
                 "--turn-secret", "k", "--turn-ttl", "600", "--force-relay")
    assert s["turn_urls"] == ("turn:t.example:3478", "turns:t.example:5349?transport=tcp")
    assert s["stun_urls"] == ("stun:t.example:3478",)
    assert s["turn_secret"] == "k" and s["turn_ttl"] == 600 and s["force_relay"] is True
    assert settings()["force_relay"] is False and settings()["turn_ttl"] == 3600


def test_turn_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WALKIE_TURN_URL", "turn:t.example:3478")
    monkeypatch.setenv("WALKIE_STUN_URL", "stun:a.example, stun:b.example")
    monkeypatch.setenv("WALKIE_TURN_TTL", "900")
    monkeypatch.setenv("WALKIE_FORCE_RELAY", "1")
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("WALKIE_TURN_SECRET_FILE", str(secret_file))
    s = settings()
    assert s["stun_urls"] == ("stun:a.example", "stun:b.example")
    assert s["turn_secret"] == "from-a-file"  # the trailing newline of `echo > file` is gone
    assert s["turn_ttl"] == 900 and s["force_relay"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--turn-url", "turn://t.example"], "no '//'"),
        (["--stun-url", "turn:t.example", "--turn-secret", "k"], "--stun-url takes stun:"),
        (["--turn-secret", "k"], "needs at least one --turn-url"),
        (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-ttl", "10"], "--turn-ttl"),
        (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-ttl", "9999999"], "--turn-ttl"),
        (["--force-relay"], "--force-relay needs a turn: URL"),
        (["--force-relay", "--stun-url", "stun:t"], "--force-relay needs a turn: URL"),
        (["--turn-url", "turn:t", "--turn-secret", "k", "--turn-secret-file", "/nonexistent"],
         "exclude each other"),
        (["--turn-url", "turn:t", "--turn-secret-file", "/nonexistent/secret"], "cannot read"),
    ],
)
def test_turn_contradictions_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        settings(*argv)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        settings("--turn-url", "turn:t", "--turn-secret-file", str(empty))


def test_main_refuses_turn_urls_without_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--turn-url", "turn:t.example:3478"]) == 2
    assert "need the TURN secret" in capsys.readouterr().err


def test_serve_prints_ice_servers_but_never_the_secret(tmp_path: Path) -> None:
    """The whole process, debug logs on, a WebSocket client joining: no trace of the secret."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WALKIE_TURN_SECRET": SECRET}
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "signaling", "serve", "--port", "0", "--udp-port",
             "0", "--turn-url", "turn:127.0.0.1:3478", "--force-relay", "--log-level",
             "debug"],
            cwd=REPO, stdout=out, stderr=err, env=env,
        )
    try:
        url = _wait_for_url(out_path, proc)

        async def join() -> dict[str, object]:
            async with connect(url.replace("http://", "ws://") + "ws") as ws:
                await ws.send(json.dumps({"type": "join", "room": "r", "name": "Ann"}))
                return json.loads(await ws.recv())

        joined = asyncio.run(join())
        assert joined["type"] == "joined" and joined["ice_transport_policy"] == "relay"
        assert SECRET not in json.dumps(joined)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    output = out_path.read_text() + err_path.read_text()
    assert "ICE servers for browsers: turn:127.0.0.1:3478" in output
    assert "relay forced" in output
    assert "joined room r" in output  # the debug log did run
    assert SECRET not in output


def _wait_for_url(out_path: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"open (https?://[^/\s]+/)", out_path.read_text())
        if match:
            return match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"server did not start: {out_path.read_text()}")


def test_sample_walkie_env_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/deploy/walkie.env, as shipped (plus the commented lines), is valid for serve."""
    sample = (REPO / "docs" / "deploy" / "walkie.env").read_text()
    names = set()
    for line in sample.splitlines():
        line = line.lstrip("#")
        if re.fullmatch(r"WALKIE_[A-Z_]+=\S*", line):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
            names.add(name)
    assert {"WALKIE_TURN_URL", "WALKIE_TURN_SECRET", "WALKIE_FORCE_RELAY",
            "WALKIE_ANNOUNCED_IP", "WALKIE_ALLOWED_ORIGIN", "WALKIE_TLS_CERT"} <= names
    s = settings()
    assert s["host"] == "0.0.0.0" and s["port"] == 443 and s["udp_port"] == 40000
    assert s["tls_cert"] == "/etc/walkie/tls/fullchain.pem"
    assert s["turn_urls"] == ("turn:walkie.example.org:3478?transport=udp",
                              "turn:walkie.example.org:3478?transport=tcp",
                              "turns:walkie.example.org:5349?transport=tcp")
    assert s["force_relay"] is True and s["announced_ip"] == "203.0.113.10"
    config = cli._turn_config(**{k: s[k] for k in cli._TURN_KEYS})
    assert config is not None and config.has_turn
