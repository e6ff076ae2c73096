"""TURN/STUN URLs, the ICE servers browsers get, ``--force-relay``, and the secret staying home.

The coturn side of the credentials is proven in test_turn_coturn.py; this file covers what
walkie decides on its own: which URLs it accepts, what a ``joined`` message carries, and that
the shared secret shows up in no message and no log line.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.turn import (
    IceUrl,
    TurnConfig,
    TurnUrlError,
    ice_servers,
    parse_ice_url,
    turn_credential,
)


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
