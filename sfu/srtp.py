"""SRTP keying material and per-peer SRTP/SRTCP sessions.

Two parts, both sans-IO:

* :class:`SrtpKeys` is what a DTLS-SRTP handshake produces (RFC 5764 §4.2): the negotiated
  protection profile plus a master key and salt for each direction.  It lives here, not in
  ``sfu.dtls``, so that this module does not need OpenSSL and ``dtls`` can import it (the
  import graph stays ``dtls -> srtp``, acyclic).
* :class:`SrtpSession` wraps pylibsrtp with one inbound and one outbound libsrtp context.
  It is on the hot path (one ``protect`` per packet per listener), so the methods are as thin
  as Python allows: one frame over pylibsrtp's own, errors translated to :class:`SrtpError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pylibsrtp
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as _lib

__all__ = [
    "SRTP_OK",
    "srtp_ffi",
    "srtp_protect_in_place",
    "PROFILE_AEAD_AES_128_GCM",
    "PROFILE_AES_CM_128_HMAC_SHA1_80",
    "PROFILES",
    "SrtpError",
    "SrtpKeys",
    "SrtpSession",
]

#: libsrtp's ``srtp_protect(ctx, packet, &length)``: protects ``length`` bytes at ``packet``
#: in place and writes the new length (tag included) back. The fan-out calls it on slots of
#: the transmit arena (sfu/transmit.py) with :attr:`SrtpSession.protect_context`. pylibsrtp's
#: compiled binding is the one way to reach libsrtp; its module is private but has kept this
#: shape since pylibsrtp 0.10 (the declared minimum).
srtp_protect_in_place = _lib.srtp_protect
SRTP_OK: int = _lib.srtp_err_status_ok

#: RFC 7714 name; preferred (one AES pass, 16-byte tag, cheaper than CM + HMAC).
PROFILE_AEAD_AES_128_GCM = "AEAD_AES_128_GCM"
#: RFC 5764 name; the profile every WebRTC browser must support.
PROFILE_AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"

#: profile name -> (master key length, master salt length), RFC 5764 §4.1.2 / RFC 7714 §12.
#: Ordered by preference: the DTLS endpoint offers them in this order.
PROFILES: dict[str, tuple[int, int]] = {
    PROFILE_AEAD_AES_128_GCM: (16, 12),
    PROFILE_AES_CM_128_HMAC_SHA1_80: (16, 14),
}

_LIBSRTP_PROFILES: dict[str, int] = {
    PROFILE_AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    PROFILE_AES_CM_128_HMAC_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}


class SrtpError(ValueError):
    """A packet failed authentication or replay checks, or is malformed / too long.

    Subclasses ValueError so callers that treat "bad packet from the network" generically
    can catch one type.  The hot path should catch this and count a drop, never log.
    """


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """SRTP master keys and salts for one DTLS-SRTP association, from our point of view.

    ``local_*`` protect what we send; ``remote_*`` verify what the peer sends.  Frozen so
    keys can be shared safely between the DTLS endpoint and the session that uses them.
    """

    profile: str
    local_key: bytes
    local_salt: bytes
    remote_key: bytes
    remote_salt: bytes

    def __post_init__(self) -> None:
        lengths = PROFILES.get(self.profile)
        if lengths is None:
            raise SrtpError(f"unsupported SRTP profile {self.profile!r}")
        key_len, salt_len = lengths
        if len(self.local_key) != key_len or len(self.remote_key) != key_len:
            raise SrtpError(f"{self.profile} needs {key_len}-byte master keys")
        if len(self.local_salt) != salt_len or len(self.remote_salt) != salt_len:
            raise SrtpError(f"{self.profile} needs {salt_len}-byte master salts")

    @classmethod
    def from_keying_material(
        cls, profile: str, material: bytes, role: Literal["client", "server"]
    ) -> SrtpKeys:
        """Split exported keying material as RFC 5764 §4.2 lays it out.

        ``material`` is ``EXTRACTOR-dtls_srtp`` output of ``2 * (key_len + salt_len)``
        bytes: client key | server key | client salt | server salt.  The DTLS client
        protects with the client half, so "local" depends on our role.
        """
        lengths = PROFILES.get(profile)
        if lengths is None:
            raise SrtpError(f"unsupported SRTP profile {profile!r}")
        key_len, salt_len = lengths
        if len(material) != 2 * (key_len + salt_len):
            raise SrtpError(
                f"{profile} needs {2 * (key_len + salt_len)} bytes of keying material, "
                f"got {len(material)}"
            )
        client_key = material[:key_len]
        server_key = material[key_len : 2 * key_len]
        client_salt = material[2 * key_len : 2 * key_len + salt_len]
        server_salt = material[2 * key_len + salt_len :]
        if role == "client":
            return cls(profile, client_key, client_salt, server_key, server_salt)
        if role == "server":
            return cls(profile, server_key, server_salt, client_key, client_salt)
        raise SrtpError(f"role must be 'client' or 'server', not {role!r}")

    def mirrored(self) -> SrtpKeys:
        """The same keys as the peer sees them (local and remote swapped); handy in tests
        and for loopback peers."""
        return SrtpKeys(
            self.profile, self.remote_key, self.remote_salt, self.local_key, self.local_salt
        )


class SrtpSession:
    """One peer's SRTP state: an inbound context (peer's keys) and an outbound one (ours).

    Two libsrtp sessions rather than one with two streams: each wildcard template
    (``SSRC_ANY_INBOUND`` / ``SSRC_ANY_OUTBOUND``) then instantiates a stream per SSRC on
    first use, so the SFU needs no SSRC bookkeeping here.  Not thread-safe (libsrtp
    sessions are not); one event loop owns it.
    """

    __slots__ = (
        "profile",
        "protect",
        "protect_context",
        "unprotect",
        "_protect_rtcp",
        "_unprotect_rtcp",
        "_keep",
    )

    #: Encrypt and authenticate one RTP packet with our (local) keys, into a new ``bytes``
    #: (test and bench peers; the forwarder protects in place, see ``protect_context``).
    protect: Callable[[bytes], bytes]
    #: Verify and decrypt one SRTP packet from the peer; SrtpError if it is forged, replayed,
    #: too old for the replay window, or not SRTP at all. HOT PATH (once per uplink packet):
    #: a plain attribute holding the fastest callable available (see :func:`_direct`).
    unprotect: Callable[[bytes], bytes]

    def __init__(self, keys: SrtpKeys) -> None:
        profile = _LIBSRTP_PROFILES.get(keys.profile)
        if profile is None:
            raise SrtpError(f"unsupported SRTP profile {keys.profile!r}")
        self.profile = keys.profile
        try:
            # window_size stays 0, which libsrtp reads as its default replay window
            # (128 packets): wider than any reordering a jitter buffer copes with.
            outbound = pylibsrtp.Policy(
                key=keys.local_key + keys.local_salt,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=profile,
            )
            # The SFU never resends a sequence number, but a retransmitted packet (same
            # seq, same payload) must not be refused by our own sender.
            outbound.allow_repeat_tx = True
            inbound = pylibsrtp.Policy(
                key=keys.remote_key + keys.remote_salt,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=profile,
            )
            tx = pylibsrtp.Session(policy=outbound)
            rx = pylibsrtp.Session(policy=inbound)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"cannot create SRTP session: {exc}") from None
        # Bound methods looked up once: each call below is then a single attribute load
        # plus pylibsrtp's own frame.
        self._keep = (tx, rx)  # the direct callables borrow these sessions' libsrtp contexts
        #: the outbound libsrtp context, for :data:`srtp_protect_in_place`
        self.protect_context = tx._srtp[0]  # type: ignore[attr-defined]
        self.protect = _direct(tx, "srtp_protect", _RTP_TRAILER)
        self.unprotect = _direct(rx, "srtp_unprotect", 0)
        self._protect_rtcp = tx.protect_rtcp
        self._unprotect_rtcp = rx.unprotect_rtcp

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Encrypt and authenticate one (compound) RTCP packet with our keys."""
        try:
            return self._protect_rtcp(rtcp)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTCP protect failed: {exc}") from None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Verify and decrypt one SRTCP packet from the peer."""
        try:
            return self._unprotect_rtcp(srtcp)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(f"SRTCP unprotect failed: {exc}") from None


#: libsrtp's worst-case SRTP trailer (tag + MKI), as pylibsrtp reserves it.
_RTP_TRAILER = 16 + 128


def _direct(session: pylibsrtp.Session, function: str, trailer: int) -> Callable[[bytes], bytes]:
    """libsrtp's ``function`` on ``session``'s context, without pylibsrtp's per-call costs.

    pylibsrtp allocates an ``int *`` with cffi, type-checks and calls a Python error helper
    on every packet; this does the same work with the length cell allocated once (measured:
    1.03 -> 0.64 us for a 92-byte GCM protect). It reuses pylibsrtp's own buffer and context
    handle, private attributes that pylibsrtp has kept from 0.10 (the declared minimum, where
    tests/test_dependencies.py checks them) to 1.0.
    """
    context, cdata, buffer = session._srtp[0], session._cdata, session._buffer  # type: ignore[attr-defined]
    func = getattr(_lib, function)
    capacity = len(cdata) - trailer
    length = srtp_ffi.new("int *")

    def call(packet: bytes | bytearray) -> bytes:
        n = len(packet)
        if n > capacity:
            raise SrtpError(f"packet of {n} bytes is too long for SRTP")
        buffer[0:n] = packet
        length[0] = n
        rc = func(context, cdata, length)
        if rc != SRTP_OK:
            raise SrtpError(f"{function} failed: libsrtp error {rc}")
        return buffer[0 : length[0]]  # type: ignore[no-any-return]

    # ``context`` belongs to ``session`` (freed with it): whoever holds this callable keeps
    # the session alive, even after dropping the SrtpSession that made it.
    call.session = session  # type: ignore[attr-defined]
    return call
