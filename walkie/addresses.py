"""Facts about this machine's addresses that the settings and the start-up lines need."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["WILDCARDS", "is_loopback", "primary_address"]

#: Bind addresses that mean "every interface": nobody can send to them.
WILDCARDS = ("0.0.0.0", "::")


def primary_address() -> str | None:
    """This machine's address on its default route, or None when it has no route.

    ``connect()`` on a UDP socket only consults the routing table; no packet is sent.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never actually contacted
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("0.") else address


def is_loopback(host: str) -> bool:
    """True for a loopback address (browsers treat it as a secure context)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume other devices reach it
