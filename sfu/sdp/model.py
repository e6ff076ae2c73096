"""The SDP data model shared by the three steps (parse, select, answer), and their error.

:class:`Offer` and :class:`MediaSection` mirror the offer's text: interpreted attributes are
hoisted into fields, and every line is kept, so nothing the browser wrote is lost.
:class:`Fingerprint` is the ``a=fingerprint`` value; which hashes are usable is decided by
``sfu/certificate.py``, which the DTLS handshake checks against too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..certificate import FINGERPRINT_SIZES, fingerprint_digest

__all__ = ["Fingerprint", "MediaSection", "Offer", "SdpError", "TOKEN", "TOKEN_CHAR", "quote"]

# RFC 8866 section 9 token, ASCII only (Python's \d would accept Arabic digits).
TOKEN_CHAR = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]"
TOKEN = TOKEN_CHAR + "+"
_FINGERPRINT_RE = re.compile(
    rf"({TOKEN}) ([0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}})*)", re.ASCII
)


def quote(value: str, limit: int = 60) -> str:
    """Quote untrusted text for an error message, cut short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


class SdpError(ValueError):
    """An offer we cannot parse or cannot serve.

    ``str(e)`` is a clear human-readable reason, e.g. ``offer has no Opus codec in its audio
    section``: signaling forwards it to the browser, where a developer reads it.
    """


@dataclass(frozen=True)
class Fingerprint:
    """A DTLS certificate fingerprint (RFC 8122 ``a=fingerprint``).

    ``value`` holds the raw digest, not the colon-separated hex, so comparing it with the
    digest of the certificate the peer presents in the DTLS handshake is a bytes comparison.
    """

    algorithm: str  # lower-case hash name: 'sha-256' | 'sha-384' | 'sha-512' (others parse)
    value: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse an ``a=fingerprint`` value such as ``sha-256 AB:CD:...``."""
        m = _FINGERPRINT_RE.fullmatch(text.strip(" "))
        if m is None:
            raise SdpError(f"malformed a=fingerprint value {quote(text)}")
        return cls(m.group(1).lower(), bytes.fromhex(m.group(2).replace(":", "")))

    @classmethod
    def of_certificate(cls, der: bytes, algorithm: str = "sha-256") -> Fingerprint:
        """Fingerprint of a DER-encoded certificate, for our own ``a=fingerprint``."""
        if algorithm not in FINGERPRINT_SIZES:
            raise SdpError(f"unsupported fingerprint algorithm {algorithm!r}")
        return cls(algorithm, fingerprint_digest(der, algorithm))

    @property
    def usable(self) -> bool:
        """True for a hash we accept (sfu/certificate.py) with the right digest length."""
        return FINGERPRINT_SIZES.get(self.algorithm) == len(self.value)

    def to_sdp(self) -> str:
        """The attribute value: ``sha-256 AB:CD:...`` (upper-case hex, as browsers write it)."""
        return f"{self.algorithm} {self.value.hex(':').upper()}"


@dataclass
class MediaSection:
    """One ``m=`` section of an offer.

    Interpreted attributes are hoisted into fields; ``attributes`` keeps every ``a=`` line as
    ``(name, value or None)`` in order, and ``other_lines`` every non-``a=`` line after ``m=``.
    Transport attributes (ICE, DTLS) are as written at this level; session-level fallbacks are
    applied by :func:`select_audio`, not here, so the model mirrors the text.
    """

    kind: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: str | None = None
    mid: str | None = None
    direction: str = "sendrecv"  # effective: media level, else session level, else sendrecv
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_fb: dict[str, list[str]] = field(default_factory=dict)  # pt or '*' -> feedback types
    extmap: dict[int, str] = field(default_factory=dict)
    extmap_direction: dict[int, str] = field(default_factory=dict)  # only ids that had one
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: str | None = None
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    bundle_only: bool = False
    ssrcs: dict[int, dict[str, str | None]] = field(default_factory=dict)
    ssrc_groups: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    msid: list[tuple[str, str | None]] = field(default_factory=list)  # (stream, track)
    candidates: list[str] = field(default_factory=list)  # raw a=candidate values
    end_of_candidates: bool = False
    sctp_port: int | None = None

    @property
    def rejected(self) -> bool:
        """Port 0 without bundle-only means the offerer disabled this m-line (RFC 8843 §6)."""
        return self.port == 0 and not self.bundle_only


@dataclass
class Offer:
    """A parsed SDP offer: session-level fields plus the media sections in order."""

    origin: str
    session_name: str
    media: list[MediaSection]
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    connection: str | None = None
    bundle_groups: list[tuple[str, ...]] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    ice_lite: bool = False
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: str | None = None
    direction: str | None = None
    extmap_allow_mixed: bool = False

    def bundle_group_of(self, mid: str) -> tuple[str, ...] | None:
        """The BUNDLE group that contains ``mid``, if any."""
        for group in self.bundle_groups:
            if mid in group:
                return group
        return None

    def section_by_mid(self, mid: str) -> MediaSection | None:
        for section in self.media:
            if section.mid == mid:
                return section
        return None

