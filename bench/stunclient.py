"""The controlling side of ICE for one synthetic client (sans-IO, RFC 8445 §7.2, RFC 7675).

The server is ICE-lite with one host candidate, so a full ICE agent per bench client would
only add sockets and pacing (aioice paces checks at 20 ms and opens its own sockets). The
client instead sends the one check a browser would nominate: a Binding request with
USERNAME, PRIORITY, ICE-CONTROLLING and USE-CANDIDATE, signed with the server's password,
from its single UDP socket; the same request every few seconds refreshes consent (RFC 7675:
the server drops a peer after 30 s without a valid check).

aioice's ``stun`` module is the codec. Responses are verified (transaction id we sent,
MESSAGE-INTEGRITY with the server's password, FINGERPRINT); anything else raises
:class:`StunClientError` and nothing else.
"""

from __future__ import annotations

import secrets
import struct

from aioice import stun

__all__ = ["IceController", "StunClientError"]

#: RFC 8445 §5.1.2.1 priority of a host candidate, component 1, as Chrome computes it.
HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255
#: Transactions remembered for matching responses; older ones are forgotten.
MAX_OUTSTANDING = 16


class StunClientError(ValueError):
    """A datagram that is not a valid answer to one of our checks."""


class IceController:
    """Builds signed connectivity checks and verifies their answers. No sockets, no clock
    reads: times are passed in (seconds, any monotonic clock)."""

    __slots__ = (
        "_outstanding",
        "_remote_key",
        "_tie_breaker",
        "_username",
        "last_rtt",
        "local_ufrag",
        "mapped_address",
        "remote_ufrag",
        "responses",
        "succeeded",
    )

    def __init__(
        self, local_ufrag: str, remote_ufrag: str, remote_pwd: str, tie_breaker: int | None = None
    ) -> None:
        if not local_ufrag or not remote_ufrag or not remote_pwd:
            raise StunClientError("ICE credentials must not be empty")
        self.local_ufrag = local_ufrag
        self.remote_ufrag = remote_ufrag
        self._remote_key = remote_pwd.encode("utf-8")
        # RFC 8445 §7.1.1: requests to the peer carry "<peer ufrag>:<our ufrag>".
        self._username = f"{remote_ufrag}:{local_ufrag}"
        self._tie_breaker = secrets.randbits(64) if tie_breaker is None else tie_breaker
        self._outstanding: dict[bytes, float] = {}
        self.succeeded = False
        self.responses = 0
        self.last_rtt: float | None = None
        self.mapped_address: tuple[str, int] | None = None

    def request(self, now: float, nominate: bool = True) -> bytes:
        """A signed Binding request; remember its transaction for :meth:`handle`."""
        attributes: dict[str, object] = {
            "USERNAME": self._username,
            "PRIORITY": HOST_PRIORITY,
            "ICE-CONTROLLING": self._tie_breaker,
        }
        if nominate:
            attributes["USE-CANDIDATE"] = None
        msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=attributes)
        msg.add_message_integrity(self._remote_key)
        if len(self._outstanding) >= MAX_OUTSTANDING:
            oldest = min(self._outstanding, key=self._outstanding.__getitem__)
            del self._outstanding[oldest]
        self._outstanding[msg.transaction_id] = now
        return bytes(msg)

    def handle(self, data: bytes, now: float) -> bool:
        """Verify an answer. True for an authentic success response to a pending check.

        An authentic error response (e.g. 487 role conflict, 420) returns False; anything
        forged, malformed or unsolicited raises StunClientError.
        """
        try:
            msg = stun.parse_message(data)
        except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
            raise StunClientError(f"malformed STUN message: {exc}") from None
        if msg.message_method != stun.Method.BINDING:
            raise StunClientError("not a Binding message")
        sent = self._outstanding.get(msg.transaction_id)
        if sent is None:
            raise StunClientError("no check pending with this transaction id")
        if msg.message_class not in (stun.Class.RESPONSE, stun.Class.ERROR):
            raise StunClientError("not a response")
        try:
            authentic = msg.check_message_integrity(self._remote_key)
        except (KeyError, TypeError, ValueError):
            authentic = False
        if not authentic:
            raise StunClientError("MESSAGE-INTEGRITY missing or wrong")
        del self._outstanding[msg.transaction_id]
        self.responses += 1
        if msg.message_class == stun.Class.ERROR:
            return False
        self.last_rtt = max(0.0, now - sent)
        mapped = msg.attributes.get("XOR-MAPPED-ADDRESS")
        if isinstance(mapped, tuple) and len(mapped) == 2:
            self.mapped_address = (str(mapped[0]), int(mapped[1]))
        self.succeeded = True
        return True
