"""Parsers for setting values: text in, typed value out, or ``ValueError`` with a reason.

The reason is written to follow the flag or variable the text came from, which
:mod:`walkie.config` puts in front: ``--port`` + ``70000 is out of range``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from signaling.cluster.model import check_node_id
from signaling.hosts import parse_server_name
from signaling.origin import parse_origin
from signaling.turn import parse_ice_url

__all__ = ["LOG_LEVELS", "as_is", "bind_address", "http_url", "ice_url", "interval", "ip_address",
           "key_prefix", "log_format", "log_level", "node_id", "origin", "redis_url", "seconds",
           "server_name", "switch_word", "whole"]

LOG_LEVELS = ("debug", "info", "warning", "error")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def as_is(text: str) -> str:
    """Free text (a path, a secret)."""
    return text


def bind_address(text: str) -> str:
    """An address to bind; ``localhost`` is 127.0.0.1 (what browsers treat as secure)."""
    if not text.strip():
        raise ValueError("must not be empty")
    return "127.0.0.1" if text == "localhost" else text


def ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def whole(low: int, high: int | None = None, rule: str = "{value} is out of range"
          ) -> Callable[[str], int]:
    """A parser for whole numbers in ``low..high``; ``rule`` says what was wrong."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise ValueError(rule.format(value=value))
        return value

    return parse


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a number of seconds")
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _non_negative(text: str, noun: str) -> float:
    """A finite number >= 0; the refusals name ``noun`` ("a number", "a number of days")."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {noun}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be {noun} >= 0")
    return value


def days(text: str) -> float:
    """A finite, non-negative number of days (fractions allowed)."""
    return _non_negative(text, "a number of days")


def rate(text: str) -> float:
    """A finite, non-negative number per second (0 usually turns the limit off)."""
    return _non_negative(text, "a number")


def ice_url(text: str) -> str:
    """A ``stun:``/``turn:`` URL, checked and kept as written."""
    parse_ice_url(text)  # a typo here would only show as a browser with no relay
    return text


def origin(text: str) -> str:
    """A web origin (``https://host[:port]``), checked and kept as written."""
    parse_origin(text)
    return text


def server_name(text: str) -> str:
    """A host name the server answers to (``walkie.example.org``, ``*.example.org``)."""
    return parse_server_name(text)


def log_level(text: str) -> str:
    """One of :data:`LOG_LEVELS`, any case."""
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def log_format(text: str) -> str:
    """``text`` or ``json``, any case."""
    word = text.strip().lower()
    if word not in ("text", "json"):
        raise ValueError(f"{text!r} is not text or json")
    return word


def switch_word(text: str) -> bool:
    """A switch's variable: 1/true/yes/on or 0/false/no/off (any case)."""
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"{text!r} is neither 1/true/yes/on nor 0/false/no/off")


# -- cluster (issue 10): walkie serve --redis ---------------------------------------------------
# A Redis URL may hold a password, so these messages never repeat the text they refuse.

def redis_url(text: str) -> str:
    """``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` (TLS), kept as written."""
    try:
        parts = urlsplit(text)
        port = parts.port  # a bad port raises here
    except ValueError:
        raise ValueError("is not a URL: write redis://[:password@]host[:port][/db]") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must start with redis:// or rediss:// (TLS)")
    if not parts.hostname:
        raise ValueError("names no host: write redis://[:password@]host[:port][/db]")
    if port == 0 or not re.fullmatch(r"/?[0-9]{0,5}", parts.path) or parts.fragment:
        raise ValueError("is not redis://[:password@]host[:port][/db] (db: a number)")
    return text


def node_id(text: str) -> str:
    """A cluster node id (it is part of Redis key names)."""
    return check_node_id(text)


def key_prefix(text: str) -> str:
    """The start of every Redis key of one cluster, e.g. ``walkie:`` or ``walkie-test:``."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", text):
        raise ValueError(f"{text!r:.80} is not a key prefix: 1-64 characters of A-Z, a-z, "
                         "0-9, '_', '.', ':' and '-'")
    return text


def interval(low: float, high: float) -> Callable[[str], float]:
    """A parser for a number of seconds in ``low..high`` (a period or a time-to-live)."""

    def parse(text: str) -> float:
        value = seconds(text)
        if not low <= value <= high:
            raise ValueError(f"must be {low:g}..{high:g} seconds")
        return value

    return parse


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host, kept as written (for operators)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ValueError(f"{text!r:.80} is not a URL") from None
    if (parts.scheme not in ("http", "https") or not parts.netloc or len(text) > 512
            or not re.fullmatch(r"[\x21-\x7e]+", text)):
        raise ValueError(f"{text!r:.80} is not an http:// or https:// URL")
    return text
