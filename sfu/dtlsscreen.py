"""Which DTLS datagrams may reach OpenSSL: a structural screen of the unprotected records.

Why: OpenSSL treats a malformed record in the clear (epoch 0) during the handshake as a
fatal protocol error: one spoofed or corrupted datagram from a peer's validated address
("bad change cipher spec", "bad length", "invalid alert", "unexpected record") would fail
the peer's whole handshake, and OpenSSL's state cannot be rolled back. RFC 6347 §4.1.2.7
says invalid records should be silently discarded, so we discard them before OpenSSL sees
them: the peer's genuine flight (or its retransmission) completes the handshake.

What passes, record by record (a datagram passes only if every record does):

* epoch 0, ChangeCipherSpec: exactly the one byte 1;
* epoch 0, Alert: two bytes, level warning or fatal, a description RFC 5246 defines (a
  well-formed alert is the peer's word and is honoured);
* epoch 0, Handshake: a chain of whole fragments (RFC 6347 §4.2.2 header), each within its
  message, of a message type the peer's role sends before Finished, of a sane length;
* epoch 1: anything of types 20-23. These are encrypted and authenticated: OpenSSL drops a
  forged one silently by itself (RFC 6347 §4.1.2.7).

Everything else is dropped: application data in the clear, heartbeat (24) and tls12_cid
(25) records (we negotiate neither), epochs above 1 (we never renegotiate).

Still honoured, because it is not malformed: a well-formed alert, or a well-formed message
of the right type with wrong contents. Forging those needs the peer's address and port and
the moment of its handshake; the handshake deadline (10 s) bounds what such a spoofer gets
to a re-offer. After the handshake, every record that matters is authenticated.
"""

from __future__ import annotations

__all__ = ["acceptable"]

_RECORD_HEADER = 13
_FRAGMENT_HEADER = 12
#: Handshake message types each side sends in the clear (RFC 5246 §7.4, RFC 6347 §4.2.1).
_FROM_CLIENT = frozenset({1, 11, 15, 16})  # ClientHello, Certificate, CertVerify, CKE
_FROM_SERVER = frozenset({2, 3, 11, 12, 13, 14})  # ServerHello, HelloVerifyRequest, ...
#: Alert descriptions of RFC 5246 §7.2 (plus no_application_protocol, RFC 7301).
_ALERTS = frozenset({0, 10, 20, 21, 22, 30, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
                     60, 70, 71, 80, 86, 90, 100, 109, 110, 111, 112, 113, 114, 115, 116, 120})
#: Longest handshake message we let OpenSSL reassemble: a certificate chain of a browser is
#: well under 4 KiB; OpenSSL's own limit for a certificate list is 100 KiB.
MAX_HANDSHAKE_MESSAGE = 1 << 16


def acceptable(data: bytes, peer_is_client: bool) -> bool:
    """True if ``data`` is a chain of whole DTLS records (version major 0xFE), each
    well-formed enough to give to OpenSSL; ``peer_is_client``: the peer's role.

    One walk over the records: RFC 7983 routed the datagram here by its first byte
    (20..63), but only this check makes it a DTLS datagram.
    """
    allowed = _FROM_CLIENT if peer_is_client else _FROM_SERVER
    n = len(data)
    if n < _RECORD_HEADER:
        return False
    pos = 0
    while pos < n:
        if n - pos < _RECORD_HEADER or data[pos + 1] != 0xFE:
            return False
        content_type = data[pos]
        epoch = (data[pos + 3] << 8) | data[pos + 4]
        end = pos + _RECORD_HEADER + ((data[pos + 11] << 8) | data[pos + 12])
        if end > n:
            return False  # the last record is cut short
        body = data[pos + _RECORD_HEADER : end]
        if epoch == 1:
            if not 20 <= content_type <= 23:
                return False
        elif epoch != 0:
            return False
        elif content_type == 22:
            if not _handshake_fragments_ok(body, allowed):
                return False
        elif content_type == 20:
            if body != b"\x01":
                return False
        elif content_type == 21:
            if len(body) != 2 or body[0] not in (1, 2) or body[1] not in _ALERTS:
                return False
        else:  # application data in the clear, heartbeat, tls12_cid
            return False
        pos = end
    return True


def _handshake_fragments_ok(body: bytes, allowed: frozenset[int]) -> bool:
    """The body of an epoch-0 handshake record: one or more whole, consistent fragments."""
    n = len(body)
    if n < _FRAGMENT_HEADER:
        return False
    pos = 0
    while pos < n:
        if n - pos < _FRAGMENT_HEADER or body[pos] not in allowed:
            return False
        length = int.from_bytes(body[pos + 1 : pos + 4], "big")
        offset = int.from_bytes(body[pos + 6 : pos + 9], "big")
        fragment = int.from_bytes(body[pos + 9 : pos + 12], "big")
        if length > MAX_HANDSHAKE_MESSAGE or offset + fragment > length:
            return False
        if fragment == 0 and length != 0:
            return False  # an empty fragment of a non-empty message carries nothing
        pos += _FRAGMENT_HEADER + fragment
    return pos == n
