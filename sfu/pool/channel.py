"""One end of a control channel: framed messages over a UNIX stream socket, never blocking.

Both the signaling process and each media worker hold one :class:`Channel` per peer process,
driven by their asyncio event loop. Writing never blocks: ``send`` appends to the
transport's buffer and returns. A reader that stops reading (a worker under SIGSTOP, a hung
parent) therefore cannot stall the writer's loop; instead the buffered bytes grow, and past
``max_buffered`` the channel reports itself broken (:meth:`Channel.send` returns False and
``on_lost`` is called once), which the owner treats as the death of the other side.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from .messages import ChannelError, FrameDecoder, Message, encode


#: Why a channel ended when the other process closed its end (usually: it exited).
CHANNEL_EOF = "the other process closed its end"


class Channel(asyncio.Protocol):
    """Framed, typed, non-blocking messages to and from one other process.

    ``on_message(message)`` is called for every decoded message, in order; ``on_lost(why)``
    once, when the stream ends (EOF, error, an undecodable frame, or too many bytes buffered
    for a reader that does not read). Open one with :meth:`connect`.
    """

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_lost: Callable[[str], None],
        max_buffered: int,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._max_buffered = max_buffered
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self.lost: str | None = None  # why the channel ended; None while it works

    @classmethod
    async def connect(
        cls,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        on_lost: Callable[[str], None],
        max_buffered: int,
    ) -> Channel:
        """Wrap a connected stream socket (one end of a socketpair) on the running loop."""
        loop = asyncio.get_running_loop()
        _, channel = await loop.connect_accepted_socket(
            lambda: cls(on_message, on_lost, max_buffered), sock
        )
        return channel

    # -- sending -------------------------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Queue ``message``; False (and nothing sent) when the channel is broken or full."""
        transport = self._transport
        if transport is None or self.lost is not None:
            return False
        transport.write(encode(message))
        buffered = transport.get_write_buffer_size()
        if buffered > self._max_buffered:
            self._lose(f"{buffered} bytes wait for a reader that does not read")
            return False
        return True

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the other process."""
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    def close(self) -> None:
        """Close at once (buffered bytes are dropped); ``on_lost`` is not called for this."""
        if self.lost is None:
            self.lost = "closed"
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's or uvloop's stream transport (uvloop's do not subclass asyncio.Transport)
        # (pause_writing is ignored: our own bound, in send, is the one that counts)
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.lost is not None:
            return
        try:
            messages = self._decoder.feed(data)
        except ChannelError as exc:
            self._lose(str(exc))
            return
        for message in messages:
            if self.lost is not None:
                return  # the owner closed us while handling an earlier message
            self._on_message(message)

    def eof_received(self) -> bool:
        self._lose(CHANNEL_EOF)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # A reset (the other process died with our bytes unread) is an end like EOF.
        if exc is None or isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            self._lose(CHANNEL_EOF)
        else:
            self._lose(f"connection lost: {exc}")

    def _lose(self, why: str) -> None:
        if self.lost is not None:
            return
        self.lost = why
        if self._transport is not None:
            self._transport.abort()
        self._on_lost(why)
