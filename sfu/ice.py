"""Sans-IO ICE-lite responder for one peer (RFC 8445 §2.5, consent freshness RFC 7675).

Why ICE-lite: the SFU has one public host candidate per worker, so it never needs to gather,
pair or check anything itself. The browser (a full agent, always controlling against a lite
one) sends STUN Binding requests; we verify and answer them, and the address of a valid check
is where media goes. Everything here takes bytes and returns bytes: the worker owns the socket.

aioice's ``stun`` module is the codec (attribute decoding, FINGERPRINT check, MESSAGE-INTEGRITY
HMAC). It is lenient about framing (truncated attributes, a missing cookie, trailing bytes after
FINGERPRINT) and lets ``struct.error`` escape on short attribute values, so ``_frame`` checks
framing first and every codec error is turned into ``StunError``: the caller drops exactly one
exception class and never answers a datagram that did not pass a full check.
"""

from __future__ import annotations

import secrets
import struct
from collections import deque
from dataclasses import dataclass
from typing import Literal

from aioice import stun

__all__ = [
    "CheckResult",
    "IceLiteSession",
    "StunError",
    "binding_username",
    "credential_problem",
    "generate_pwd",
    "generate_ufrag",
]

_HEADER = struct.Struct("!HHI12s")  # type, body length, magic cookie, transaction id
_ATTR = struct.Struct("!HH")  # attribute type, value length
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_COOKIE = stun.COOKIE
_HEADER_LEN = stun.HEADER_LENGTH
_BINDING_REQUEST = int(stun.Method.BINDING) | int(stun.Class.REQUEST)  # 0x0001
_BINDING_SUCCESS = int(stun.Method.BINDING) | int(stun.Class.RESPONSE)  # 0x0101
_BINDING_ERROR = int(stun.Method.BINDING) | int(stun.Class.ERROR)  # 0x0111

_ATTR_USERNAME = 0x0006
_ATTR_MESSAGE_INTEGRITY = 0x0008
_ATTR_ERROR_CODE = 0x0009
_ATTR_UNKNOWN_ATTRIBUTES = 0x000A
_ATTR_XOR_MAPPED_ADDRESS = 0x0020
_ATTR_FINGERPRINT = 0x8028
_INTEGRITY_LEN = 20  # HMAC-SHA1
_FINGERPRINT_TAIL = _ATTR.pack(_ATTR_FINGERPRINT, 4)

# Comprehension-required attributes (type < 0x8000, RFC 8489 §14) a Binding request may
# carry that we understand. Any other one must be refused with 420 (RFC 8489 §6.3.1).
_KNOWN_REQUIRED = frozenset(t for t in stun.ATTRIBUTES_BY_TYPE if t < 0x8000)

# RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"
_ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_ICE_CHAR_SET = frozenset(_ICE_CHARS)

#: RFC 8839 §5.4 lengths, in ice-chars: ice-ufrag 4-256, ice-pwd 22-256.
CREDENTIAL_LENGTHS: dict[str, tuple[int, int]] = {"ufrag": (4, 256), "pwd": (22, 256)}


class StunError(ValueError):
    """A datagram that is not a valid ICE connectivity check for this session."""


def binding_username(data: bytes) -> str | None:
    """USERNAME of a Binding request, or None; cheap and never raises.

    The worker calls this before any verification to find which peer a check is for
    (``'<our ufrag>:<their ufrag>'``). It decodes nothing but the header and attribute
    headers, so garbage costs a few comparisons.
    """
    try:
        n = len(data)
        if n < _HEADER_LEN:
            return None
        mtype, length, cookie, _ = _HEADER.unpack_from(data, 0)
        if mtype != _BINDING_REQUEST or cookie != _COOKIE or length != n - _HEADER_LEN:
            return None
        pos = _HEADER_LEN
        while pos + 4 <= n:
            atype, alen = _ATTR.unpack_from(data, pos)
            end = pos + 4 + alen
            if end > n:
                return None
            if atype == _ATTR_USERNAME:
                return bytes(data[pos + 4 : end]).decode("utf-8")
            if atype == _ATTR_MESSAGE_INTEGRITY:
                return None  # anything after MESSAGE-INTEGRITY is unauthenticated
            pos = end + (-alen & 3)
        return None
    except (ValueError, struct.error, TypeError):
        return None


def generate_ufrag() -> str:
    """8 random ice-chars: 48 bits, unique enough to route checks by ufrag on a worker."""
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(8))


def generate_pwd() -> str:
    """24 random ice-chars (144 bits); RFC 8839 asks for at least 128 bits of randomness."""
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(24))


def credential_problem(kind: Literal["ufrag", "pwd"], value: str) -> str | None:
    """Why ``value`` is not a valid ICE ufrag or pwd (RFC 8839 §5.4), or None if it is.

    The one place this rule is written: the SDP checks (the offer's credentials in
    ``sfu/sdp/select.py``, ours in ``sfu/sdp/answer.py``) and :class:`IceLiteSession` call
    it and put the reason, e.g. ``has 21 characters; RFC 8839 requires 22-256``, into their
    own error. A value outside the rule means a broken or hostile SDP.
    """
    low, high = CREDENTIAL_LENGTHS[kind]
    if not low <= len(value) <= high:
        return f"has {len(value)} characters; RFC 8839 requires {low}-{high}"
    if not _ICE_CHAR_SET.issuperset(value):
        return "has characters outside A-Z a-z 0-9 + /"
    return None


def _check_credential(kind: Literal["ufrag", "pwd"], value: str) -> None:
    problem = credential_problem(kind, value)
    if problem is not None:
        raise ValueError(f"ICE {kind} {problem}")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one accepted request asks the caller to do."""

    response: bytes  # the datagram to send back to `addr`
    address_changed: bool  # the peer's bound address was set or moved by this check
    nominated: bool  # the check was accepted and carried USE-CANDIDATE
    #: `addr` is now this session's candidate path: a valid check came from it while another
    #: address is bound; media moves there once the peer's SRTP/SRTCP arrives from it
    candidate: bool = False


def _frame(data: bytes) -> list[int]:
    """Strict framing of a Binding request; returns unknown comprehension-required types.

    Checks what aioice does not: magic cookie, the two zero top bits, attributes that fit
    exactly, and FINGERPRINT present as the very last attribute (browsers always send it and
    RFC 8489 §14.7 puts it last). Unknown required attributes count only before
    MESSAGE-INTEGRITY, because what follows it is not authenticated and is ignored.

    No attribute may appear twice before MESSAGE-INTEGRITY: RFC 5389 §15 says only the first
    occurrence counts, but aioice keeps the last, and ``binding_username`` (the router's
    lookup) the first; refusing repeats keeps the two readings one (found by fuzzing,
    tests/fuzz). Browsers never repeat an attribute.
    """
    n = len(data)
    if n < _HEADER_LEN + 8:
        raise StunError("datagram too short for a STUN check")
    mtype, length, cookie, _ = _HEADER.unpack_from(data, 0)
    if cookie != _COOKIE:
        raise StunError("no STUN magic cookie")
    if length != n - _HEADER_LEN or length & 3:
        raise StunError("STUN length does not match the datagram")
    if mtype != _BINDING_REQUEST:
        raise StunError("not a Binding request")
    unknown: list[int] = []
    seen: set[int] = set()
    atype = 0
    seen_integrity = False
    pos = _HEADER_LEN
    while pos < n:
        atype, alen = _ATTR.unpack_from(data, pos)
        end = pos + 4 + alen
        if end > n:
            raise StunError("STUN attribute overruns the message")
        if atype == _ATTR_FINGERPRINT and end != n:
            raise StunError("FINGERPRINT is not the last attribute")
        if not seen_integrity:
            if atype in seen:
                raise StunError(f"STUN attribute 0x{atype:04x} repeated")
            seen.add(atype)
        if atype == _ATTR_MESSAGE_INTEGRITY:
            if alen != _INTEGRITY_LEN:
                raise StunError("MESSAGE-INTEGRITY has the wrong length")
            seen_integrity = True
        elif atype < 0x8000 and not seen_integrity and atype not in _KNOWN_REQUIRED:
            unknown.append(atype)
        pos = end + (-alen & 3)
    if pos != n:
        raise StunError("STUN attribute padding overruns the message")
    if atype != _ATTR_FINGERPRINT:
        raise StunError("FINGERPRINT missing")
    return unknown


def _sign(mtype: int, transaction_id: bytes, body: bytes, key: bytes) -> bytes:
    """Append MESSAGE-INTEGRITY and FINGERPRINT to `body` (RFC 8489 §14.5, §14.7).

    Done by hand with aioice's HMAC/CRC helpers so that one serialisation suffices and
    attributes aioice has no table entry for (UNKNOWN-ATTRIBUTES) can be carried.
    """
    head = _HEADER.pack(mtype, len(body), _COOKIE, transaction_id)
    data = head + body
    mac = stun.message_integrity(data, key)  # sets the length to cover MESSAGE-INTEGRITY
    data = (
        stun.set_body_length(data, len(body) + 24)
        + _ATTR.pack(_ATTR_MESSAGE_INTEGRITY, _INTEGRITY_LEN)
        + mac
    )
    crc = stun.message_fingerprint(data)  # sets the length to cover FINGERPRINT
    return stun.set_body_length(data, len(body) + 32) + _FINGERPRINT_TAIL + _U32.pack(crc)


def _attribute(atype: int, value: bytes) -> bytes:
    """One TLV, padded to 4 bytes."""
    return _ATTR.pack(atype, len(value)) + value + bytes(-len(value) & 3)


#: A bound address with no valid check for this long has gone quiet: a valid check from a
#: new address then moves media at once, nominated or not. Chromium checks its selected
#: pair every 2.5 s at most once it is stable (and every 0.9 s before), Firefox every few
#: seconds, so a live path is never this quiet; a backup pair's check (Chromium pings
#: those every 25 s, without USE-CANDIDATE) must not pull media off a live one.
QUIET_PATH_SECONDS = 4.0
#: Transactions remembered to refuse a check replayed from another address.
_RECENT_CHECKS = 8


def _error_body(code: int, reason: str) -> bytes:
    return _attribute(_ATTR_ERROR_CODE, stun.pack_error_code((code, reason)))


class IceLiteSession:
    """Our side of ICE for one peer: lite, always controlled, one host candidate.

    State is tiny on purpose: the bound address and when it last passed a check, plus at most
    one *candidate*: the latest other address a valid check came from. A lite agent keeps no
    check list; the controlling peer decides where media goes.

    Where media goes (RFC 8445 §7.3.1.5, §8.2; RFC 7675), decided here, applied by the core:

    * the first valid check binds its address;
    * a valid check with USE-CANDIDATE from another address moves media there at once (a
      nomination: Chromium, the controlling agent against a lite one, sets it on every check
      of its selected pair once that pair is writable);
    * a valid check without it from another address makes that address the candidate and
      moves nothing (a full agent checks pairs it will not use: its backups). The candidate
      becomes the bound address when the peer proves it uses it (:meth:`promote`: the
      core calls it on authenticated SRTP or SRTCP from there), or at once if the bound
      address has gone quiet (no valid check for ``QUIET_PATH_SECONDS``): a NAT that
      rebound, or a client that moved and only sends consent checks (RFC 7675 checks carry
      no USE-CANDIDATE), is followed within a check or a packet, long before its consent
      would run out;
    * a check whose transaction id was already accepted from another address is a replay
      (a copy sent from elsewhere) and is dropped: it neither moves media nor gets an
      answer. Nothing unauthenticated ever moves media.
    """

    __slots__ = (
        "local_ufrag",
        "local_pwd",
        "remote_ufrag",
        "remote_pwd",
        "consent_timeout",
        "created",
        "address",
        "last_valid_check",
        "candidate",
        "candidate_checked",
        "quiet_after",
        "_recent",
        "_username",
        "_key",
    )

    def __init__(
        self,
        remote_ufrag: str,
        remote_pwd: str,
        *,
        local_ufrag: str | None = None,
        local_pwd: str | None = None,
        consent_timeout: float = 30.0,
        created: float = 0.0,
        quiet_after: float = QUIET_PATH_SECONDS,
    ) -> None:
        # remote_pwd is kept for completeness (SDP round trips); a lite agent never sends
        # requests, so it never signs with it.
        _check_credential("ufrag", remote_ufrag)
        _check_credential("pwd", remote_pwd)
        self.local_ufrag: str = local_ufrag if local_ufrag is not None else generate_ufrag()
        self.local_pwd: str = local_pwd if local_pwd is not None else generate_pwd()
        _check_credential("ufrag", self.local_ufrag)
        _check_credential("pwd", self.local_pwd)
        self.remote_ufrag = remote_ufrag
        self.remote_pwd = remote_pwd
        self.consent_timeout = consent_timeout
        self.created = created
        self.address: tuple[str, int] | None = None
        self.last_valid_check: float | None = None
        #: the latest other address a valid check came from while `address` was bound
        self.candidate: tuple[str, int] | None = None
        self.candidate_checked = 0.0
        self.quiet_after = quiet_after
        self._recent: deque[tuple[bytes, tuple[str, int]]] = deque(maxlen=_RECENT_CHECKS)
        self._username = f"{self.local_ufrag}:{remote_ufrag}"
        self._key = self.local_pwd.encode("ascii")

    def handle(self, data: bytes, addr: tuple[str, int], now: float) -> CheckResult:
        """Verify one connectivity check from `addr` and build the answer.

        Raises StunError for anything that is not an authentic Binding request for this
        session; the caller drops it silently, so an address that never passed a check
        never gets a byte from us (no reflection, no amplification).
        """
        unknown = _frame(data)
        peer = (addr[0], addr[1])  # drop IPv6 flowinfo/scope so comparisons are stable
        try:
            msg = stun.parse_message(data)  # verifies FINGERPRINT, decodes attributes
        except (ValueError, struct.error) as exc:
            raise StunError(f"malformed STUN message: {exc}") from None
        attrs = msg.attributes
        if attrs.get("USERNAME") != self._username:
            raise StunError("USERNAME does not match this session")
        if not msg.check_message_integrity(self._key):
            raise StunError("MESSAGE-INTEGRITY missing or wrong")
        txid = msg.transaction_id
        for seen, where in self._recent:
            if seen == txid and where != peer:
                raise StunError("a check already accepted from another address (replayed)")

        # From here on the request is authentic: errors are answered, signed, not dropped.
        if unknown:
            # RFC 8489 §6.3.1: refuse comprehension-required attributes we do not know.
            listed = b"".join(_U16.pack(t) for t in unknown)
            body = _error_body(420, "Unknown Attribute") + _attribute(
                _ATTR_UNKNOWN_ATTRIBUTES, listed
            )
            return CheckResult(_sign(_BINDING_ERROR, txid, body, self._key), False, False)
        if "PRIORITY" not in attrs:
            # RFC 8445 §7.3 would answer 400; a check without PRIORITY is simply not a valid
            # check, and dropping it keeps the "only valid checks get answers" rule simple.
            raise StunError("PRIORITY missing")
        if "ICE-CONTROLLED" in attrs:
            # RFC 8445 §6.1.1 / §7.3.1.1: a lite agent is always controlled; the peer must
            # switch to controlling, which a 487 tells it to do. No binding from this check.
            body = _error_body(487, "Role Conflict")
            return CheckResult(_sign(_BINDING_ERROR, txid, body, self._key), False, False)

        self._recent.append((txid, peer))
        nominated = "USE-CANDIDATE" in attrs
        changed = candidate = False
        if peer == self.address:
            pass
        elif self.address is None or nominated or self._quiet(now):
            self.address = peer
            self.candidate = None
            changed = True
        else:
            self.candidate = peer
            self.candidate_checked = now
            candidate = True
        if peer == self.address:
            self.last_valid_check = now  # consent freshness, RFC 7675 §5.1

        xma = stun.pack_xor_address(peer, txid)
        body = _attribute(_ATTR_XOR_MAPPED_ADDRESS, xma)
        return CheckResult(
            _sign(_BINDING_SUCCESS, txid, body, self._key), changed, nominated, candidate
        )

    def _quiet(self, now: float) -> bool:
        """The bound address has passed no valid check for ``quiet_after`` seconds."""
        since = self.last_valid_check if self.last_valid_check is not None else self.created
        return now - since >= self.quiet_after

    def promote(self, addr: tuple[str, int], now: float) -> bool:
        """Authenticated media arrived from ``addr``: if it is the candidate, and its valid
        check is within the consent timeout (RFC 7675: it still has consent), it becomes
        the bound address (True); its check counts for consent."""
        if addr != self.candidate or now - self.candidate_checked >= self.consent_timeout:
            return False
        self.address = addr
        self.candidate = None
        self.last_valid_check = self.candidate_checked
        return True

    def consent_deadline(self) -> float:
        """When consent runs out unless a valid check from the bound address comes first."""
        since = self.last_valid_check if self.last_valid_check is not None else self.created
        return since + self.consent_timeout

    def forget_address(self) -> None:
        """Drop the bound address (another peer proved it owns it): the next valid check
        binds again, from wherever this peer is now. Consent keeps running meanwhile."""
        self.address = None
        self.candidate = None

    def consent_expired(self, now: float) -> bool:
        """True when consent is lost (RFC 7675 §5.1): no valid check from the bound address
        for `consent_timeout` seconds, or none at all within `consent_timeout` of creation
        (a peer that never connects must not hold a slot forever).

        Judged against :meth:`consent_deadline` itself: ``now - since >= timeout`` can be
        false at ``now == since + timeout`` in floating point, and a deadline that has come
        but not expired would make the caller's timer loop run forever."""
        return now >= self.consent_deadline()
