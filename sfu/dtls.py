"""Sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 5763/5764), on pyOpenSSL memory BIOs.

Bytes in, datagrams out: :class:`DtlsEndpoint` never touches a socket or a clock.  The
caller feeds each received DTLS datagram to :meth:`DtlsEndpoint.receive`, sends whatever
comes back, and calls :meth:`DtlsEndpoint.handle_timeout` when
:meth:`DtlsEndpoint.next_timeout` is due.  Once ``state == 'connected'``,
:meth:`DtlsEndpoint.srtp_keys` gives the SRTP master keys.

Trust model (RFC 8827 §6.5): certificates are self-signed; the only thing that binds the
DTLS peer to the signaling session is the ``a=fingerprint`` from its SDP.  So the chain
verdict OpenSSL gives us is ignored and the leaf certificate's digest is compared with the
SDP fingerprint(s) instead, inside the verify callback (a mismatch aborts the handshake
with a ``bad_certificate`` alert, so the peer learns of it at once) and again after the
handshake (belt and braces: keys are never released for an unchecked peer).  Our own
certificate, its OpenSSL context and that fingerprint check are ``sfu/certificate.py``;
this module is the association: handshake, retransmission timers, records, key export.

Clock caveat: OpenSSL runs its retransmission timer on the real clock, which we cannot
replace through pyOpenSSL.  We mirror it onto the caller's clock (``now +
DTLSv1_get_timeout()`` after every step), which agrees with any monotonic clock that runs
at real speed (``loop.time()``).  The handshake deadline is ours and uses ``now`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from OpenSSL import SSL

from .certificate import (
    DEFAULT_SRTP_PROFILES,
    FINGERPRINT_SIZES,
    Certificate,
    CertificateError,
    FingerprintCheck,
    srtp_profile_named,
)
from .dtlsscreen import acceptable
from .srtp import PROFILES, SrtpKeys

__all__ = ["DtlsEndpoint", "DtlsError", "SrtpKeys", "DEFAULT_SRTP_PROFILES"]

Role = Literal["client", "server"]

#: Largest datagram we emit.  1200 bytes fits any path MTU a browser will use (it is what
#: Chrome and Firefox themselves assume for DTLS/SRTP) with room for TURN's 36-byte overhead.
MTU = 1200

#: Real DTLS datagrams fit a path MTU.  Bigger input is dropped before OpenSSL sees it, so
#: its DTLS record reader (which reads at most one ~18 KiB "packet" from the memory BIO)
#: can never leave a tail behind that would be misread as the next datagram.
MAX_DATAGRAM = 16384

_RECORD_HEADER = 13  # DTLS record header: type, version, epoch, sequence number, length
_KEYING_LABEL = b"EXTRACTOR-dtls_srtp"


class DtlsError(ValueError):
    """Misuse or bad configuration of a DTLS endpoint (never raised for network input)."""


def _normalize_fingerprints(
    remote_fingerprints: Sequence[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """Keep the fingerprints we can check; reject the set if none is usable.

    Failing here (at offer time) rather than during the handshake lets signaling refuse
    the offer with a clear reason instead of a peer that silently never connects.
    """
    usable: list[tuple[str, bytes]] = []
    for algorithm, digest in remote_fingerprints:
        name = algorithm.lower()
        if name not in FINGERPRINT_SIZES:
            continue  # RFC 8122 §5: ignore hash functions we do not support
        if not isinstance(digest, bytes):
            raise DtlsError("fingerprint digests must be bytes")
        if len(digest) != FINGERPRINT_SIZES[name]:
            raise DtlsError(f"{name} fingerprint has the wrong length ({len(digest)} bytes)")
        usable.append((name, digest))
    if not usable:
        raise DtlsError("no usable certificate fingerprint (need sha-256, sha-384 or sha-512)")
    return usable


def _pack_records(data: bytes, mtu: int) -> list[bytes]:
    """Split what OpenSSL wrote into datagrams of whole records, each at most ``mtu``.

    A memory BIO keeps no datagram boundaries: one ``bio_read`` returns every record of a
    flight back to back.  OpenSSL sizes each record (handshake fragments) for the MTU, but
    it asks the memory BIO how much of the current datagram is used, gets 0, and so the
    concatenation can exceed the MTU.  Re-packing at record boundaries restores what a
    datagram BIO would have done.  A record bigger than the MTU (cannot happen with the MTU
    set) goes out alone rather than being dropped.
    """
    out: list[bytes] = []
    n = len(data)
    start = pos = 0
    while pos < n:
        if n - pos < _RECORD_HEADER:  # not record-shaped: send the rest as it is
            pos = n
            break
        end = pos + _RECORD_HEADER + ((data[pos + 11] << 8) | data[pos + 12])
        if end - start > mtu and pos > start:
            out.append(data[start:pos])
            start = pos
        pos = min(end, n)
    if pos > start:
        out.append(data[start:pos])
    return out


def _ssl_reason(exc: SSL.Error) -> str:
    """A short, human reason from pyOpenSSL's error list [(lib, func, reason), ...]."""
    details = exc.args[0] if exc.args else None
    if isinstance(details, list) and details:
        parts = [str(item[-1]) for item in details if isinstance(item, tuple) and item]
        if parts:
            return "; ".join(parts)
    text = str(exc)
    return text or type(exc).__name__


class DtlsEndpoint:
    """One DTLS association over memory BIOs. Sans-IO: bytes in, datagrams out.

    States: ``new`` -> ``handshaking`` -> ``connected`` -> ``closed``; any of the first
    three can end in ``failed`` (with :attr:`failure` saying why).  Network input never
    raises: malformed datagrams (``sfu/dtlsscreen.py`` says which) are dropped before
    OpenSSL sees them and counted in :attr:`dropped`, so they cannot fail the handshake;
    protocol errors in well-formed records fail the association (sending OpenSSL's alert,
    if it made one, so the peer fails fast).
    """

    __slots__ = (
        "role",
        "state",
        "failure",
        "dropped",
        "app_data_dropped",
        "handshake_timeout",
        "_conn",
        "_check",
        "_keys",
        "_deadline",
        "_timer",
    )

    def __init__(
        self,
        certificate: Certificate,
        role: Role,
        remote_fingerprints: Sequence[tuple[str, bytes]],
        handshake_timeout: float = 10.0,
        srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    ) -> None:
        if role not in ("client", "server"):
            raise DtlsError(f"role must be 'client' or 'server', not {role!r}")
        self.role: Role = role
        self.state = "new"
        self.failure: str | None = None
        #: datagrams dropped unread: malformed, oversized, or arriving after the end
        self.dropped = 0
        #: application-data bytes read and discarded (WebRTC audio never sends any)
        self.app_data_dropped = 0
        self.handshake_timeout = handshake_timeout
        self._check = FingerprintCheck(_normalize_fingerprints(remote_fingerprints))
        try:
            context = certificate.context(srtp_profiles)
        except CertificateError as exc:  # an unknown SRTP profile: misuse of this endpoint
            raise DtlsError(str(exc)) from None
        conn = SSL.Connection(context, None)
        conn.set_app_data(self._check)
        conn.set_ciphertext_mtu(MTU)
        if role == "client":
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn = conn
        self._keys: SrtpKeys | None = None
        self._deadline: float | None = None  # handshake deadline, on the caller's clock
        self._timer: float | None = None  # OpenSSL's retransmission timer, on our clock

    # -- public API ---------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake: a client returns its ClientHello flight, a server [] (it
        waits for one).  Starts the handshake deadline either way.  Idempotent."""
        if self.state != "new":
            return []
        self.state = "handshaking"
        self._deadline = now + self.handshake_timeout
        if self.role == "server":
            return []
        return self._handshake(now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Feed one received datagram; return the datagrams to send in answer.

        A server that has not been started is started implicitly: the first ClientHello
        is what starts it in practice.
        """
        if self.state in ("failed", "closed"):
            self.dropped += 1
            return []
        out = self.start(now) if self.state == "new" else []
        if len(data) > MAX_DATAGRAM or not acceptable(data, self.role == "server"):
            self.dropped += 1  # RFC 6347 §4.1.2.7: invalid records are silently discarded
            return out
        self._conn.bio_write(data)
        if self.state == "handshaking":
            out += self._handshake(now)
        else:
            out += self._read_application_data(now)
        return out

    def next_timeout(self) -> float | None:
        """Absolute time (caller's clock) at which :meth:`handle_timeout` is due, or None."""
        if self.state == "handshaking":
            if self._timer is None:
                return self._deadline
            if self._deadline is None:
                return self._timer
            return min(self._timer, self._deadline)
        if self.state == "connected":
            return self._timer
        return None

    def handle_timeout(self, now: float) -> list[bytes]:
        """Retransmit a lost flight if OpenSSL's timer expired; fail after the deadline."""
        if self.state == "handshaking" and self._deadline is not None and now >= self._deadline:
            self._fail("handshake timeout")
            return []
        if self.state not in ("handshaking", "connected"):
            return []
        if self._timer is None or now < self._timer:
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:  # too many retransmissions
            self._fail(f"DTLS retransmission failed: {_ssl_reason(exc)}")
            return self._drain()
        self._update_timer(now)
        return self._drain()

    @property
    def cipher(self) -> str | None:
        """The negotiated cipher suite (OpenSSL's name, sfu/certificate.py), once connected."""
        return self._conn.get_cipher_name() if self.state == "connected" else None

    def srtp_keys(self) -> SrtpKeys:
        """The SRTP keys from the handshake, local = ours by role (RFC 5764 §4.2)."""
        if self._keys is None:
            raise DtlsError(f"no SRTP keys: DTLS state is {self.state!r}")
        return self._keys

    def close(self) -> list[bytes]:
        """Say goodbye: a close_notify alert if we were connected.  Always ends the
        association (state 'closed', unless it had already failed)."""
        if self.state in ("failed", "closed"):
            return []
        was_connected = self.state == "connected"
        self.state = "closed"
        self._timer = None
        if not was_connected:
            return []
        try:
            self._conn.shutdown()
        except SSL.Error:
            return []
        return self._drain()

    # -- internals ----------------------------------------------------------------

    def _handshake(self, now: float) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._update_timer(now)
            return self._drain()
        except SSL.Error as exc:
            out = self._drain()  # OpenSSL's alert, if any: lets the peer fail fast
            if self._check.mismatch:
                self._fail("certificate fingerprint mismatch")
            elif isinstance(exc, SSL.ZeroReturnError):
                self._fail("peer closed the connection during the handshake")
            else:
                self._fail(f"DTLS handshake failed: {_ssl_reason(exc)}")
            return out
        return self._on_handshake_done(now)

    def _on_handshake_done(self, now: float) -> list[bytes]:
        out = self._drain()
        peer = self._conn.get_peer_certificate(as_cryptography=True)
        if peer is None or not self._check.matches(peer):
            return out + self._fail_connected("certificate fingerprint mismatch")
        raw = self._conn.get_selected_srtp_profile()
        profile = srtp_profile_named(raw)
        if profile is None:
            name = raw.decode(errors="replace") or "none"
            return out + self._fail_connected(f"no SRTP profile negotiated ({name})")
        key_len, salt_len = PROFILES[profile]
        material = self._conn.export_keying_material(_KEYING_LABEL, 2 * (key_len + salt_len))
        self._keys = SrtpKeys.from_keying_material(profile, material, self.role)
        self.state = "connected"
        # The same datagram may carry more records (application data, an alert) after
        # the Finished message.
        return out + self._read_application_data(now)

    def _read_application_data(self, now: float) -> list[bytes]:
        """Read (and discard) whatever OpenSSL decrypts, and let it answer retransmitted
        flights from the peer (the server re-sends its last flight this way)."""
        conn = self._conn
        try:
            while True:
                self.app_data_dropped += len(conn.recv(65536))
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:  # close_notify: answer with ours (RFC 5246 §7.2.1)
            self.state = "closed"
            self._timer = None
            try:
                conn.shutdown()
            except SSL.Error:
                pass
        except SSL.Error as exc:
            out = self._drain()
            self._fail(f"DTLS error: {_ssl_reason(exc)}")
            return out
        self._update_timer(now)
        return self._drain()

    def _update_timer(self, now: float) -> None:
        """Mirror OpenSSL's (real-clock) retransmission timer onto the caller's clock."""
        if self.state not in ("handshaking", "connected"):
            self._timer = None
            return
        remaining = self._conn.DTLSv1_get_timeout()
        self._timer = None if remaining is None else now + remaining

    def _drain(self) -> list[bytes]:
        """Everything OpenSSL has written, re-cut into datagrams of at most MTU bytes."""
        chunks: list[bytes] = []
        conn = self._conn
        try:
            while True:
                chunks.append(conn.bio_read(65536))
        except SSL.WantReadError:
            pass
        if not chunks:
            return []
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(data) <= MTU:
            return [data] if data else []
        return _pack_records(data, MTU)

    def _fail_connected(self, reason: str) -> list[bytes]:
        """Fail an association OpenSSL considers established: a close_notify tells the
        peer, which would otherwise believe it is connected and start sending media."""
        self._fail(reason)
        try:
            self._conn.shutdown()
        except SSL.Error:
            return []
        return self._drain()

    def _fail(self, reason: str) -> None:
        self.state = "failed"
        self.failure = reason
        self._timer = None
        self._keys = None
