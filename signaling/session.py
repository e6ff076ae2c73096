"""The hub's vocabulary: a client session, the actions it asks of the I/O layer, and the
media plane it drives (see hub.py for the logic that uses them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .rooms import Member

__all__ = ["Action", "Client", "Close", "MediaPlane", "Negotiate", "PeerEventLike", "Send"]


class MediaPlane(Protocol):
    """What signaling needs of the media plane: ``sfu.Router`` (in-process) and
    ``sfu.WorkerPool`` (worker processes) both are one.

    ``negotiate`` returns the SDP answer or raises ``ValueError`` (``sfu.OfferError``, and
    ``sfu.WorkerGone`` for a dead or slow worker) with a reason for the client; with
    ``listen_only`` the answer does not let the peer send, and its RTP is dropped.
    ``remove_peer`` and ``set_speaker`` are one-way and never block; ``stats`` is a snapshot.
    Its events include ``speaker_active`` / ``speaker_silent`` about the speaker's audio: the
    end-of-media timer (``ServerConfig.no_media_timeout``) relies on them, so a media plane
    without them must run with that timer off (None), or every holder is revoked after
    ``media_wait``.

    ``start_replay`` / ``stop_replay`` (say-again, one-way; KeyError for a peer not in the
    room) are called only when the hub runs with ``replay_seconds``: the media plane must
    then keep audio and answer with ``replay_*`` events (sfu/replay.py).
    """

    async def negotiate(self, peer_id: str, room_id: str, offer_sdp: str, *,
                        listen_only: bool = False) -> str: ...
    def remove_peer(self, peer_id: str) -> None: ...
    def set_speaker(self, room_id: str, peer_id: str | None) -> None: ...
    def start_replay(self, room_id: str, peer_id: str, transmission_id: str) -> None: ...
    def stop_replay(self, room_id: str, peer_id: str) -> None: ...
    def add_listener(self, callback: Callable[[Any], None]) -> None: ...
    def stats(self) -> dict[str, object]: ...


class PeerEventLike(Protocol):
    """``sfu.PeerEvent``: ``silent_for`` is set on ``speaker_silent`` (seconds without audio)."""

    kind: str
    peer_id: str
    room_id: str
    reason: str
    silent_for: float


@dataclass(eq=False, slots=True)
class Client:
    """One WebSocket session. ``member`` is set once joined, ``peer_id`` once an offer was
    accepted by the media plane; ``offer_pending`` names the offer being answered."""

    serial: int
    member: Member | None = None
    peer_id: str | None = None
    offer_pending: int | None = None
    media_connected: bool = False
    bad_offers: int = 0  # unusable offers so far (signaling/budgets.py MAX_BAD_OFFERS)
    closed: bool = False
    #: its socket died and its member waits for a ``resume`` (signaling/resume.py): the
    #: member, its media peer and floor stay; nothing is sent to it
    held: bool = False
    context: Any = field(default=None, repr=False)  # the transport's own per-client state


@dataclass(frozen=True, slots=True)
class Send:
    client: Client
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    client: Client
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Negotiate:
    """Have the media plane answer ``sdp`` (``await media.negotiate``), then report back
    with :meth:`Hub.offer_answered` or :meth:`Hub.offer_failed`."""

    client: Client
    offer: int  # the client's offer_pending at the time
    peer_id: str
    room_id: str
    sdp: str
    listen_only: bool = False  # the member's join token: the media plane takes no audio


Action = Send | Close | Negotiate
