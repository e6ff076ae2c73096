"""Short-lived TURN credentials (the "TURN REST API" scheme coturn calls use-auth-secret).

The signaling server and coturn share a secret; the server hands each member a username
``"<unix expiry>:<member id>"`` and the password ``base64(HMAC-SHA1(secret, username))``.
coturn recomputes the HMAC, so no per-user state is shared and a leaked credential dies on
its own at the expiry. Pure: the clock is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["TurnConfig", "ice_servers", "turn_credential"]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    urls: tuple[str, ...]          # e.g. ("turn:turn.example.org:3478?transport=udp",)
    secret: str | None = None      # None: the urls are given without credentials (STUN)
    ttl: int = 3600                # seconds a credential stays valid


def turn_credential(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """The (username, credential) pair for ``user``, valid until ``now + ttl``."""
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(config: TurnConfig | None, user: str, now: float) -> list[dict[str, object]]:
    """The ``iceServers`` entry a browser's RTCPeerConnection needs (empty: none)."""
    if config is None or not config.urls:
        return []
    server: dict[str, object] = {"urls": list(config.urls)}
    if config.secret:
        username, credential = turn_credential(config.secret, user, now, config.ttl)
        server["username"] = username
        server["credential"] = credential
    return [server]
