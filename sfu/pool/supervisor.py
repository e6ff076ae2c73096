"""Keeping N media worker processes alive: start, warm spare, death, restart, back-off.

Each :class:`WorkerSlot` is a worker position with a fixed UDP port; the process serving it
may change. A process that dies (EOF on its channel, its pidfd, a channel over its bound, or
silence past ``hang_timeout``) is given up at once: the owner is told (``on_lost``: fail its
requests, reset its peers), the process is killed if need be, and once it has exited (its
port is free) the slot gets a new one, preferably the warm spare: a process that already did
its imports (~0.3 s idle, seconds on a busy machine) and binds the port in milliseconds.
The first spare starts with the workers, so that its imports are done before the pool serves;
its replacement waits ``spare_delay`` seconds, so as not to take CPU from the recovery itself
(every member of the dead worker offers again, each a DTLS handshake).
A slot whose processes keep dying before they have run ``stable_after`` seconds waits
``backoff_first`` seconds before the next start, doubling up to ``backoff_max``.

(A little over 400 lines on purpose: a worker's whole life, start to death to restart, reads
best in one place; the process itself is in process.py, the channel in channel.py.)
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
from collections.abc import Callable

from ..router import RouterConfig
from .channel import CHANNEL_EOF
from .messages import Idle, Message, Ready, Serve, Shutdown, StartFailed, StatsReport
from .process import WorkerProcess

__all__ = ["PoolTuning", "Supervisor", "WorkerSlot", "backoff_delay"]

log = logging.getLogger("walkie.sfu.pool")


@dataclasses.dataclass(frozen=True, slots=True)
class PoolTuning:
    """Timers and bounds of the pool (the defaults are the production values)."""

    request_timeout: float = 5.0  # an offer's whole wait: a restarting worker + the round trip
    start_timeout: float = 30.0  # spawn to Ready (imports on a loaded machine)
    close_timeout: float = 5.0  # Shutdown to exit, before SIGKILL
    max_buffered: int = 1 << 20  # bytes queued for one worker before it counts as failed
    stats_interval: float = 1.0  # each worker pushes its stats this often
    hang_timeout: float = 10.0  # silence after which a worker is killed and restarted
    backoff_first: float = 0.5  # delay before the 2nd start in a row of a crashing worker
    backoff_max: float = 30.0  # ... doubling up to this
    stable_after: float = 10.0  # a worker up this long has not crashed "at start"
    spare: bool = True  # keep a warm spare process
    spare_delay: float = 2.0  # after a spare became a worker, wait this long for the next one


def backoff_delay(failures: int, first: float, maximum: float) -> float:
    """No wait after a first failure; then ``first``, doubling up to ``maximum``."""
    if failures <= 1:
        return 0.0
    return min(maximum, first * 2 ** (failures - 2))


class WorkerSlot:
    """One worker position: its UDP port and the process serving it now (or being started).

    ``state``: ``starting`` (first start), ``ready``, ``restarting`` (a new process is being
    readied), ``backoff`` (it crashed repeatedly; the next start waits), ``closed``.
    """

    def __init__(self, index: int, config: RouterConfig) -> None:
        self.index = index
        self.config = config  # its port becomes the bound one at the first Ready
        self.state = "starting"
        self.process: WorkerProcess | None = None
        self.dying: WorkerProcess | None = None  # given up, waiting for its exit (port release)
        self.address: tuple[str, int] = (config.host, config.port)
        self.restarts = 0
        self.failures = 0  # deaths in a row without a stable run
        self.last_exit: str | None = None
        self.died_at: float | None = None  # first death of the current series
        self.ready_at: float | None = None
        self.last_restart_s: float | None = None  # death -> Ready, the last time
        self.next_start: float | None = None
        self.retry: asyncio.TimerHandle | None = None
        self.waiters: list[asyncio.Future[None]] = []
        self.start_error: BaseException | None = None  # why the pool's first start failed
        self.last_heard = 0.0
        self.report: StatsReport | None = None
        self.report_at = 0.0
        self.cpu_percent: float | None = None

    @property
    def alive(self) -> bool:
        return self.state == "ready"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def wake(self) -> None:
        """Let everyone waiting for this slot look at its state again."""
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def describe(self, now: float) -> dict[str, object]:
        """The supervisor's view of this worker, for ``stats()``."""
        return {
            "index": self.index,
            "pid": self.pid,
            "state": self.state,
            "alive": self.alive,
            "address": list(self.address),
            "restarts": self.restarts,
            "last_restart_ms": None if self.last_restart_s is None
            else round(self.last_restart_s * 1000, 1),
            "last_exit": self.last_exit,
            "report_age_s": round(now - self.report_at, 2) if self.report else None,
            "cpu_percent": self.cpu_percent,
        }

    def __repr__(self) -> str:
        return f"<WorkerSlot {self.index} {self.state} udp {self.address[0]}:{self.address[1]}>"


class Supervisor:
    """The worker processes of one pool.

    ``on_message(slot, message)`` gets the messages that concern the owner (replies and
    notices); ``on_lost(slot, why)`` is called once per process given up, before its
    replacement starts.
    """

    def __init__(
        self,
        configs: list[RouterConfig],
        tuning: PoolTuning,
        on_message: Callable[[WorkerSlot, Message], None],
        on_lost: Callable[[WorkerSlot, str], None],
    ) -> None:
        self.tuning = tuning
        self.workers = [WorkerSlot(i, cfg) for i, cfg in enumerate(configs)]
        self._on_owner_message = on_message
        self._on_owner_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._log_level = logging.getLogger().getEffectiveLevel()
        self.spare: WorkerProcess | None = None
        self._spare_failures = 0
        self._spare_spawning = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self.started = False
        self.closed = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and the spare; raise the first start error (the caller then
        closes). Returns once the workers serve and the spare is idle (or failed: it is only
        an optimisation)."""
        for slot in self.workers:
            self._launch(slot)
        if self.tuning.spare:
            self._spawn(None)
        deadline = self._loop.time() + self.tuning.start_timeout
        for slot in self.workers:
            if not await self.until_ready(slot, deadline):
                raise slot.start_error or RuntimeError(
                    f"media worker {slot.index} was not ready within "
                    f"{self.tuning.start_timeout:g} s"
                )
        while self._spare_spawning or (self.spare is not None and not self.spare.idle
                                       and self.spare.running):
            if self._loop.time() >= deadline:
                break
            await asyncio.sleep(0.01)
        self.started = True
        self._watchdog = self._loop.call_later(self.tuning.stats_interval, self._watch)

    async def close(self) -> None:
        """Ask every process to close its Router (DTLS goodbyes), then reap them all."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        processes = [self.spare] if self.spare is not None else []
        for slot in self.workers:
            slot.state = "closed"
            if slot.retry is not None:
                slot.retry.cancel()
            slot.wake()
            processes += [p for p in (slot.process, slot.dying) if p is not None]
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        running = [p for p in processes if p.running]
        for process in running:
            if not process.send(Shutdown()):
                process.kill()
        for _ in range(2):  # a polite wait, then SIGKILL and a wait for the reaping
            if running:
                await asyncio.wait([p.exited for p in running], timeout=self.tuning.close_timeout)
            for process in running:
                process.kill()  # a no-op for those that exited

    async def until_ready(self, slot: WorkerSlot, deadline: float) -> bool:
        """Wait until ``slot`` serves (True), or until the deadline, a start error or the
        end of the pool (False)."""
        while slot.state != "ready" or slot.process is None:
            if slot.state == "closed" or (slot.start_error is not None and not self.started):
                return False
            waiter: asyncio.Future[None] = self._loop.create_future()
            slot.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - self._loop.time()))
            except TimeoutError:
                return False
            finally:
                if waiter in slot.waiters:
                    slot.waiters.remove(waiter)
        return True

    # -- processes -----------------------------------------------------------------------

    def _launch(self, slot: WorkerSlot) -> None:
        """Give ``slot`` a process: the warm spare if there is one, else a new one."""
        slot.retry = None
        slot.next_start = None
        slot.ready_at = None
        if slot.state != "starting":
            slot.state = "restarting"
        spare, self.spare = self.spare, None
        if spare is not None and spare.running:
            spare.slot = slot.index
            slot.process = spare
            slot.last_heard = self._loop.time()
            if spare.idle:
                self._serve(slot, spare)
        else:
            self._spawn(slot)
        if self.started:
            self._loop.call_later(self.tuning.spare_delay, self._ensure_spare)

    def _spawn(self, slot: WorkerSlot | None) -> None:
        """Start a new process for ``slot`` (None: the spare), from a task: spawn awaits."""
        if slot is None:
            self._spare_spawning = True

        async def spawn() -> None:
            try:
                process = await WorkerProcess.spawn(
                    None if slot is None else slot.index,
                    self._on_message, self._on_lost, self._on_exit, self.tuning.max_buffered,
                )
            except OSError as exc:  # e.g. out of processes or file descriptors
                log.error("cannot start a media worker process: %s", exc)
                if slot is not None:
                    slot.last_exit = f"spawn failed: {exc}"
                    if self.started:
                        self._schedule_restart(slot)
                    else:
                        slot.start_error = exc
                        slot.wake()
                return
            finally:
                if slot is None:
                    self._spare_spawning = False
            if self.closed:
                process.kill()
            elif slot is None:
                self.spare = process
            else:
                slot.process = process
                slot.last_heard = self._loop.time()

        task = self._loop.create_task(spawn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_spare(self) -> None:
        if (self.tuning.spare and self.started and not self.closed and self.spare is None
                and not self._spare_spawning):
            self._spawn(None)

    def _serve(self, slot: WorkerSlot, process: WorkerProcess) -> None:
        process.send(Serve(slot.config, self._log_level, self.tuning.stats_interval))

    def _on_message(self, process: WorkerProcess, message: Message) -> None:
        if isinstance(message, Idle):
            process.idle = True
        if process.slot is None:
            return  # the spare says only Idle
        slot = self.workers[process.slot]
        if process is not slot.process:
            return  # from a process we already gave up on
        slot.last_heard = self._loop.time()
        if isinstance(message, StatsReport):
            self._take_report(slot, message)
        elif isinstance(message, Idle):
            self._serve(slot, process)
        elif isinstance(message, Ready):
            self._ready(slot, message)
        elif isinstance(message, StartFailed):
            if not self.started:
                slot.start_error = _start_error(slot.index, message)
                slot.wake()
            self.give_up(slot, f"could not start: {message.kind}: {message.message}")
        else:
            self._on_owner_message(slot, message)

    def _ready(self, slot: WorkerSlot, message: Ready) -> None:
        now = self._loop.time()
        slot.state = "ready"
        slot.address = message.address
        slot.config = dataclasses.replace(slot.config, port=message.address[1])
        slot.ready_at = now
        if slot.died_at is not None:
            slot.restarts += 1
            slot.last_restart_s = now - slot.died_at
            log.warning("media worker %d restarted in %.0f ms on udp %s:%d (pid %d; last exit: "
                        "%s)", slot.index, slot.last_restart_s * 1000, *message.address,
                        message.pid, slot.last_exit)
            slot.died_at = None
        slot.wake()

    def _take_report(self, slot: WorkerSlot, report: StatsReport) -> None:
        now = self._loop.time()
        last = slot.report
        if last is not None and last.pid == report.pid and now > slot.report_at:
            busy = (report.cpu_seconds - last.cpu_seconds) / (now - slot.report_at)
            slot.cpu_percent = round(100 * busy, 1)
        slot.report, slot.report_at = report, now

    # -- death and restart ---------------------------------------------------------------

    def give_up(self, slot: WorkerSlot, why: str) -> None:
        """Stop using ``slot``'s process: tell the owner, kill it; restart once it exited."""
        process = slot.process
        if process is None or self.closed:
            return
        slot.process, slot.dying = None, process
        slot.last_exit = why
        if slot.died_at is None:  # the restart time counts from the first of a series
            slot.died_at = self._loop.time()
        slot.state = "restarting"
        process.close_channel()
        process.kill()
        self._on_owner_lost(slot, why)

    def _on_lost(self, process: WorkerProcess, why: str) -> None:
        if process.slot is not None and process is self.workers[process.slot].process:
            self.give_up(self.workers[process.slot], why)
        else:
            process.kill()  # the spare, or one we gave up on: it must not linger

    def _on_exit(self, process: WorkerProcess) -> None:
        if process.slot is None:
            self._spare_exited(process)
            return
        slot = self.workers[process.slot]
        if process is slot.process:
            self.give_up(slot, process.exit_status or "exited")
        if process is not slot.dying:
            return
        slot.dying = None
        if slot.last_exit in (None, CHANNEL_EOF):
            slot.last_exit = process.exit_status
        elif slot.last_exit != process.exit_status:
            slot.last_exit = f"{slot.last_exit}; {process.exit_status}"
        if self.closed:
            return
        if self.started:
            self._schedule_restart(slot)
            return
        if slot.start_error is None:
            slot.start_error = RuntimeError(
                f"media worker {slot.index} exited during start ({slot.last_exit})"
            )
        slot.wake()

    def _spare_exited(self, process: WorkerProcess) -> None:
        if self.spare is process:
            self.spare = None
        self._spare_failures = 0 if process.idle else self._spare_failures + 1
        if self.started and not self.closed:
            log.error("the spare media worker exited (%s)", process.exit_status)
            delay = backoff_delay(self._spare_failures, self.tuning.backoff_first,
                                  self.tuning.backoff_max)
            self._loop.call_later(delay, self._ensure_spare)

    def _schedule_restart(self, slot: WorkerSlot) -> None:
        now = self._loop.time()
        stable = slot.ready_at is not None and now - slot.ready_at >= self.tuning.stable_after
        slot.failures = 1 if stable else slot.failures + 1
        delay = backoff_delay(slot.failures, self.tuning.backoff_first, self.tuning.backoff_max)
        if delay <= 0:
            self._launch(slot)
            return
        slot.state = "backoff"
        slot.next_start = now + delay
        log.error("media worker %d failed %d times in a row (last: %s); next start in %.1f s",
                  slot.index, slot.failures, slot.last_exit, delay)
        slot.retry = self._loop.call_later(delay, self._launch, slot)

    def _watch(self) -> None:
        """Give up a worker silent (not even its stats) for ``hang_timeout``, or one not
        ready within ``start_timeout``; either is then restarted."""
        self._watchdog = self._loop.call_later(self.tuning.stats_interval, self._watch)
        now = self._loop.time()
        for slot in self.workers:
            silent = now - slot.last_heard
            if slot.state == "ready" and silent > self.tuning.hang_timeout:
                self.give_up(slot, f"silent for {silent:.0f} s (hung)")
            elif slot.process is not None and silent > self.tuning.start_timeout:
                self.give_up(slot, f"not ready after {silent:.0f} s")


def _start_error(index: int, failed: StartFailed) -> Exception:
    """``OSError`` (e.g. the port is in use) or ``ValueError`` as Router.start raised it."""
    cls = getattr(builtins, failed.kind, None)
    if isinstance(cls, type) and issubclass(cls, (OSError, ValueError)):
        return cls(f"media worker {index}: {failed.message}")
    return RuntimeError(f"media worker {index} could not start: {failed.kind}: {failed.message}")
