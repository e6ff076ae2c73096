"""``walkie serve --record DIR``: every transmission written as an Ogg Opus file, indexed, swept.

Who writes: the signaling process, not the media worker that holds the packets. The
worker hands each finished transmission over its control channel (a ``transmission``
event, sfu/transmissions.py; one frame per turn, never per packet) and goes back to
forwarding. Here are the things a file needs and a worker does not know: the room's name and
the talker's *display* name (the worker knows peer ids), and one place for the index and
the retention sweep whatever the number of workers (one writer: no two processes append to
``index.jsonl``). And disk I/O, however slow the disk, can never delay a packet: a worker
process has no thread to spare, and the signaling loop only submits work.

How: one writer thread (:data:`WRITERS`) builds the file (sfu/ogg.py) and writes it under a
temporary name, then renames it (a reader never sees half a file) and appends its line to
the index; at most :data:`MAX_PENDING` transmissions wait for it, beyond that a
transmission is dropped, counted and logged (a disk that cannot keep up must not grow the
server's memory without bound). The sweep (:func:`recordings.expired`) runs on the same
thread at start and every :data:`SWEEP_INTERVAL`, removes recordings older than
``--record-keep-days`` and rewrites the index without them (write, then rename).

Names come from the hub as an observer (signaling/metrics.py ``Observer``): the display
name of each member as it joins, kept a while after it leaves (a talker's last turn ends
after its ``left`` when it leaves while talking).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfu.capture import Transmission
from sfu.ogg import ogg_opus

from . import floor as fl
from .recordings import INDEX, expired, file_name, index_line, iso
from .rooms import Member

__all__ = ["MAX_PENDING", "Recorder", "RecorderStats"]

log = logging.getLogger("walkie.record")

#: Transmissions waiting for the writer thread; more are dropped (and counted).
MAX_PENDING = 64
#: The writer threads: one, so that the index has one writer and files are written in order.
WRITERS = 1
#: How often old recordings are swept (and once at start).
SWEEP_INTERVAL = 3600.0
#: Display names remembered after their member left (its last turn may end after ``left``).
RECENT_NAMES = 1024


@dataclass(slots=True)
class RecorderStats:
    """What /healthz shows of the recorder."""

    written: int = 0
    dropped: int = 0  # over MAX_PENDING: the disk could not keep up
    failed: int = 0  # a write that raised (disk full, permissions): logged
    swept: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"written": self.written, "dropped": self.dropped, "failed": self.failed,
                "swept": self.swept, "pending": self.pending}


class Recorder:
    """Writes transmissions under ``directory``; an observer of the hub for the names."""

    def __init__(self, directory: Path, keep_days: float, *,
                 wall: Any = time.time, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.directory = directory
        self.keep_days = keep_days
        self.stats = RecorderStats()
        self._wall = wall
        self._sweep_interval = sweep_interval
        self._names: dict[str, str] = {}
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._executor = ThreadPoolExecutor(WRITERS, thread_name_prefix="walkie-record")
        self._sweeper: asyncio.Task[None] | None = None
        self._futures: set[asyncio.Future[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the directory (OSError if it cannot be), sweep once, then every interval."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._prepare)
        self._sweeper = asyncio.create_task(self._sweep_loop())

    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # only the service's
        probe = self.directory / ".walkie-write-test"
        probe.write_bytes(b"")  # fail at start, not at the first transmission
        probe.unlink()
        self._sweep()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop sweeping; let the writes already submitted finish (within ``timeout``)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._futures:
            await asyncio.wait(list(self._futures), timeout=timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await loop.run_in_executor(self._executor, self._sweep)
            except Exception:  # noqa: BLE001 - a failed sweep is tried again next time
                log.exception("sweeping old recordings failed")

    # -- transmissions ---------------------------------------------------------------------

    def submit(self, transmission: Transmission) -> None:
        """Queue a finished transmission for writing (never blocks; drops when too many wait)."""
        if self.stats.pending >= MAX_PENDING:
            self.stats.dropped += 1
            log.error("recording dropped (room %s): %d transmissions already wait for the "
                      "disk", transmission.room_id, MAX_PENDING)
            return
        talker = self.name_of(transmission.talker)
        self.stats.pending += 1
        future = asyncio.wrap_future(self._executor.submit(self._write, transmission, talker))
        self._futures.add(future)
        future.add_done_callback(self._written)  # on the event loop, like submit

    def _written(self, future: asyncio.Future[Any]) -> None:
        self._futures.discard(future)
        self.stats.pending -= 1
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.stats.written += 1
        else:
            self.stats.failed += 1
            log.error("writing a recording failed: %s", error)

    def _write(self, transmission: Transmission, talker: str) -> Path:
        """On the writer thread: the file, then its index line."""
        room, start = transmission.room_id, transmission.started_at
        tags = {"ROOM": room, "TALKER": talker, "DATE": iso(start)}
        serial = zlib.crc32(f"{room}\0{transmission.talker}\0{start}".encode())
        data = ogg_opus(transmission.packets, tags, serial)
        attempt = 0
        path = self.directory / file_name(room, talker, start)
        while path.exists():  # never overwrite (this thread is the directory's one writer)
            attempt += 1
            path = self.directory / file_name(room, talker, start, attempt)
        partial = path.with_name("." + path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)  # a reader sees the whole file or none
        line = index_line(path.name, room, talker, transmission.talker, start,
                          transmission.duration, len(data), transmission.truncated)
        with open(self.directory / INDEX, "a", encoding="utf-8") as index:
            index.write(line)
        return path

    def _sweep(self) -> None:
        """On the writer thread: remove expired recordings and their index lines."""
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            log.error("cannot list %s: %s", self.directory, exc)
            return
        old = expired(names, self._wall(), self.keep_days)
        if not old:
            return
        for name in old:
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass
            self.stats.swept += 1
        gone = set(old)
        index = self.directory / INDEX
        try:
            lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
        except FileNotFoundError:
            return
        kept = [line for line in lines if _file_of(line) not in gone]
        fresh = index.with_name("." + INDEX + ".new")
        fresh.write_text("".join(kept), encoding="utf-8")
        os.replace(fresh, index)
        log.info("swept %d recording(s) older than %g days", len(old), self.keep_days)

    # -- names (the hub's Observer) -----------------------------------------------------------

    def name_of(self, member_id: str) -> str:
        """A member's display name (a member long gone: its id)."""
        return self._names.get(member_id) or self._recent.get(member_id) or member_id

    def joined(self, member: Member) -> None:
        self._names[member.id] = member.name

    def left(self, member_id: str) -> None:
        name = self._names.pop(member_id, None)
        if name is not None:
            self._recent[member_id] = name
            while len(self._recent) > RECENT_NAMES:
                self._recent.popitem(last=False)

    def floor_requested(self, member_id: str, now: float) -> None: pass
    def floor_effect(self, effect: fl.Effect, now: float) -> None: pass
    def error(self, code: str) -> None: pass
    def media_event(self, kind: str) -> None: pass
    def join_time(self, seconds: float) -> None: pass


def _file_of(line: str) -> str | None:
    """The ``file`` of an index line (None for a line that is not one of ours)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("file") if isinstance(entry, dict) else None
