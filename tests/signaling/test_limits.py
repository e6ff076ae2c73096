"""The token bucket and TURN REST credentials (both pure, clock passed in)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from signaling.ratelimit import TokenBucket
from signaling.turn import TurnConfig, ice_servers, turn_credential


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=40, now=0.0)
    assert sum(bucket.allow(0.0) for _ in range(100)) == 40
    assert not bucket.allow(0.0)
    # 0.5 s later: 10 more tokens.
    assert sum(bucket.allow(0.5) for _ in range(100)) == 10
    # Long idle: refills to the burst, never beyond.
    assert sum(bucket.allow(1000.0) for _ in range(100)) == 40


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)
    assert not bucket.allow(10.5)
    assert bucket.allow(11.0)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)


def test_turn_credential_matches_coturn_rest_scheme() -> None:
    username, credential = turn_credential("s3cret", "abc", now=1000.9, ttl=60)
    assert username == "1060:abc"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1060:abc", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers() -> None:
    assert ice_servers(None, "m", 0) == []
    assert ice_servers(TurnConfig(()), "m", 0) == []
    assert ice_servers(TurnConfig(("stun:example.org",)), "m", 0) == [{"urls": ["stun:example.org"]}]
    (server,) = ice_servers(TurnConfig(("turn:t:3478",), "k", ttl=10), "m", 5)
    assert server["urls"] == ["turn:t:3478"]
    assert server["username"] == "15:m"
    assert server["credential"] == turn_credential("k", "m", 5, 10)[1]
