"""The typed control protocol between the signaling process and its media workers.

Every message is a small frozen dataclass; a frame on the wire is a 4-byte big-endian length
followed by the message pickled (protocol 5). Why pickle: both ends are our own code (the
parent spawned the child over a private socketpair), the messages carry dataclasses of
``sfu.sdp`` (``AudioSelection``, ``LocalParams``) that pickle as they are, and pickle is the
fastest codec the standard library has. Decoding is still strict: :class:`_Unpickler` resolves
only the classes listed in :data:`WIRE_TYPES`, so a frame can only ever become one of these
messages (or builtin values inside them), never run arbitrary code; anything else is a
:class:`ChannelError` and the channel is dropped.

Parent -> worker: :class:`Serve` (once, turns an idle spare into a worker), :class:`OpenPeer`
(a request, answered by :class:`PeerOpened` or :class:`Failed`), :class:`RemovePeer` and
:class:`SetSpeaker` (one-way; the channel keeps order, so a later request is a barrier),
:class:`StartReplay` and :class:`StopReplay` (say-again, one-way: the answer is an event), and
:class:`Shutdown`.

Worker -> parent: :class:`Idle` (imports done, waiting for :class:`Serve`), :class:`Ready` or
:class:`StartFailed`, replies, :class:`Notice` (a Router event) and :class:`StatsReport`
(pushed every second).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass

from ..capture import CapturedPacket, Transmission
from ..core import PeerEvent
from ..replay import ReplayEvent, ReplayItem
from ..router import RouterConfig
from ..sdp import AudioSelection, Fingerprint, LocalParams

__all__ = [
    "ChannelError",
    "Failed",
    "FrameDecoder",
    "Idle",
    "Message",
    "Notice",
    "OpenPeer",
    "PEER_GONE",
    "PeerOpened",
    "Ready",
    "RemovePeer",
    "Serve",
    "SetSpeaker",
    "Shutdown",
    "StartReplay",
    "StopReplay",
    "StartFailed",
    "StatsReport",
    "encode",
]

#: Largest frame either side accepts. Real messages are under 2 KiB (a stats report is the
#: biggest); a larger length prefix means a corrupt stream, not a big message.
MAX_FRAME = 1 << 20

_LENGTH = struct.Struct("!I")

#: Router event kinds after which the Router has already forgotten the peer.
PEER_GONE = frozenset({"consent_lost", "dtls_failed", "closed"})


class ChannelError(Exception):
    """The byte stream from the other process is not a sequence of valid frames."""


# ------------------------------------------------------------------------- parent -> worker


@dataclass(frozen=True, slots=True)
class Serve:
    """Become a media worker: start a Router with ``config`` and answer :class:`Ready`."""

    config: RouterConfig
    log_level: int
    stats_interval: float  # seconds between two StatsReports


@dataclass(frozen=True, slots=True)
class OpenPeer:
    """``Router.open_peer(peer_id, room_id, selection)``; ``request`` keys the reply.

    ``request`` also names this incarnation of ``peer_id``: the worker tags the peer's events
    with it, so that an event of an earlier peer of the same id is recognised as stale.
    """

    request: int
    peer_id: str
    room_id: str
    selection: AudioSelection


@dataclass(frozen=True, slots=True)
class RemovePeer:
    peer_id: str


@dataclass(frozen=True, slots=True)
class SetSpeaker:
    room_id: str
    peer_id: str | None


@dataclass(frozen=True, slots=True)
class StartReplay:
    """``Router.start_replay``: play a kept transmission to one peer (say-again)."""

    room_id: str
    peer_id: str
    transmission_id: str


@dataclass(frozen=True, slots=True)
class StopReplay:
    room_id: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Close the Router (DTLS goodbyes to connected peers) and exit."""


# ------------------------------------------------------------------------- worker -> parent


@dataclass(frozen=True, slots=True)
class Idle:
    """A freshly spawned process finished its imports: it can :class:`Serve` in milliseconds."""

    pid: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The Router listens on ``address`` (the UDP port browsers send media to)."""

    address: tuple[str, int]
    pid: int


@dataclass(frozen=True, slots=True)
class StartFailed:
    """``Router.start`` raised: ``kind`` is the exception's class name (e.g. ``OSError``)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class PeerOpened:
    request: int
    local: LocalParams


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed. ``kind``: ``offer`` (OfferError), ``value`` (ValueError, e.g. the
    peer id is in use) or ``internal`` (a bug in the worker; the message says which)."""

    request: int
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A Router event about a peer opened by request ``opened_by`` (a room's list of kept
    transmissions, about no peer: 0).

    A ``transmission`` event (recording on: ``RouterConfig.record``) carries the talker's
    packets; its ``opened_by`` is 0, since its talker may have left meanwhile (the
    recording is kept all the same)."""

    event: PeerEvent | ReplayEvent
    opened_by: int


@dataclass(frozen=True, slots=True)
class StatsReport:
    """The worker's ``Router.stats()`` and its own CPU time, pushed periodically."""

    pid: int
    cpu_seconds: float
    router: dict[str, object]


Message = (
    Serve | OpenPeer | RemovePeer | SetSpeaker | StartReplay | StopReplay | Shutdown
    | Idle | Ready | StartFailed | PeerOpened | Failed | Notice | StatsReport
)

#: Every class a frame may contain (messages and the values they carry). Nothing else is
#: ever constructed while decoding.
_MESSAGE_TYPES: tuple[type, ...] = (
    Serve, OpenPeer, RemovePeer, SetSpeaker, StartReplay, StopReplay, Shutdown,
    Idle, Ready, StartFailed, PeerOpened, Failed, Notice, StatsReport,
)
WIRE_TYPES: tuple[type, ...] = _MESSAGE_TYPES + (
    RouterConfig, PeerEvent, ReplayEvent, ReplayItem, AudioSelection, Fingerprint, LocalParams,
    Transmission, CapturedPacket,
)
_BY_NAME = {(cls.__module__, cls.__qualname__): cls for cls in WIRE_TYPES}
_MESSAGES = _MESSAGE_TYPES


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        cls = _BY_NAME.get((module, name))
        if cls is None:
            raise ChannelError(f"refusing to decode {module}.{name}: not a control message")
        return cls


def encode(message: Message) -> bytes:
    """One frame: length prefix + pickled message."""
    body = pickle.dumps(message, protocol=5)
    if len(body) > MAX_FRAME:
        raise ChannelError(f"{type(message).__name__} is {len(body)} bytes, over {MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> Message:
    """The message in one frame's body; ChannelError for anything that is not one."""
    try:
        message = _Unpickler(io.BytesIO(body)).load()
    except ChannelError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt: all mean a broken stream
        raise ChannelError(f"undecodable frame: {exc}") from None
    if not isinstance(message, _MESSAGES):
        raise ChannelError(f"a frame holds {type(message).__name__}, not a control message")
    return message


class FrameDecoder:
    """Sans-IO frame splitter: feed it bytes as they arrive, get whole messages back."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > MAX_FRAME:
                raise ChannelError(f"frame of {length} bytes announced, over {MAX_FRAME}")
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            messages.append(decode(bytes(buffer[start + _LENGTH.size:end])))
            start = end
        del buffer[:start]
        return messages
