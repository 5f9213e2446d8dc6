"""LogHub: the one owner of service output, plugged into the supervisor's seams.

It gives every instance its pipes (`Hooks.outputs`), frames, rings, forwards and writes
what comes out of them (in the pump's writer thread), reopens files on SIGUSR1, drains an
instance's pipes when it exits so the exit event carries its last stderr lines
(`Hooks.exited` + `Hooks.event_data`), and serves tails and followers to the API and the
foreground console. Counters (written, dropped, unwritten) feed status and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herder.config.model import Logs
from herder.logs._files import Compressor, RotatingFile
from herder.logs._forward import Forwarder, make_forwarder
from herder.logs._framing import Framer, Record
from herder.logs._pump import Channel, Pump, make_pipe
from herder.logs._ring import Ring, merge_tails
from herder.runtime.clock import Clock, MonotonicClock

if TYPE_CHECKING:
    from herder.config import Config
    from herder.core.machine import Instance
    from herder.runtime.events import EventBus

EXIT_DRAIN_WAIT = 0.25   # longest the loop waits for an exited instance's last output
FOLLOW_BACKLOG = 10000   # records a slow follower may lag before lines are skipped
_DROP_REPORT_EVERY = 5.0


class _Fd:
    """A write end given to the child; closed in the parent right after the spawn."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        import os
        os.close(self.fd)


class Tap:
    """A live consumer of records (a follower or the console). offer() runs in the writer thread."""

    def __init__(self, names: set[str] | None) -> None:
        self.names = names
        self.skipped = 0

    def wants(self, instance: str) -> bool:
        return self.names is None or instance in self.names

    def offer(self, records: list[Record]) -> None:
        raise NotImplementedError


class FollowTap(Tap):
    """Hands records to an asyncio consumer; lines beyond FOLLOW_BACKLOG are skipped and counted."""

    def __init__(self, names: set[str] | None, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(names)
        self.loop = loop
        self.buf: list[Record] = []
        self.lock = threading.Lock()
        self.ready = asyncio.Event()
        self._flagged = False

    def offer(self, records: list[Record]) -> None:
        with self.lock:
            room = FOLLOW_BACKLOG - len(self.buf)
            if room < len(records):
                self.skipped += len(records) - max(room, 0)
                records = records[:max(room, 0)]
            self.buf.extend(records)
            flag = not self._flagged
            self._flagged = True
        if flag:
            with contextlib.suppress(RuntimeError):  # loop closed
                self.loop.call_soon_threadsafe(self.ready.set)

    def take(self) -> list[Record]:
        with self.lock:
            out, self.buf = self.buf, []
            self._flagged = False
            self.ready.clear()
        return out


class _Stream:
    """Per (instance, stream) settings shared by successive runs."""

    def __init__(self, sink: RotatingFile | None, spec: Logs, forwarders: list[Forwarder]) -> None:
        self.sink, self.spec, self.forwarders = sink, spec, forwarders


class LogHub:
    """The capture component. `install(supervisor)` wires it in; it is entered before services start."""

    def __init__(self, config: Config, events: EventBus, *, clock: Clock | None = None,
                 signals: bool = True) -> None:
        self.config = config
        self.events = events
        self.clock = clock or MonotonicClock()
        self.signals = signals
        self.compressor = Compressor()
        self.pump = Pump(self._deliver, self._on_drop, self._idle)
        self.sinks: dict[Path, RotatingFile] = {}
        self.rings: dict[str, Ring] = defaultdict(Ring)
        self.err_tail: dict[str, list[bytes]] = defaultdict(list)
        self.current: dict[str, list[Channel]] = {}
        self.dropped: dict[str, int] = defaultdict(int)
        self.taps: list[Tap] = []
        self._forwarders: dict[str, Forwarder] = {}
        self._drop_reported: dict[str, float] = {}
        self._emit_lock = threading.Lock()
        self._emit_queue: list[tuple[str, str, str, dict[str, Any]]] = []
        self._emit_pending = False
        self.console: Any = None  # the foreground view (a Tap with close()), if any
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._lock = threading.Lock()

    # -- wiring ---------------------------------------------------------------------------------

    def install(self, sup: Any) -> LogHub:
        sup.components.append(self)
        sup.hooks.outputs.append(self.outputs)
        sup.hooks.exited.append(self.exited)
        if hasattr(sup.hooks, "event_data"):
            sup.hooks.event_data.append(self.event_data)
        if hasattr(sup.hooks, "status"):
            sup.hooks.status.append(self.status)
        return self

    async def __aenter__(self) -> LogHub:
        self._loop = asyncio.get_running_loop()
        self.start()
        if self.signals:
            from herder.runtime import signals

            self._undo_usr1 = signals.install(self._loop, signal.SIGUSR1, self.reopen)
        return self

    async def __aexit__(self, *exc: object) -> None:
        undo, self._undo_usr1 = getattr(self, "_undo_usr1", None), None
        if undo is not None:
            undo()
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.pump.start()

    def close(self, wait: float = 5.0) -> None:
        """Let open pipes reach EOF (bounded), then flush and close every file."""
        deadline = time.monotonic() + wait
        for chans in list(self.current.values()):
            for ch in chans:
                ch.done.wait(max(0.0, deadline - time.monotonic()))
        self.pump.stop()
        if self.console is not None:
            self.console.close()
        for sink in self.sinks.values():
            sink.close()
        for f in self._forwarders.values():
            f.close()
        self.compressor.join()
        self.compressor.close()

    # -- spawn-time hook (loop thread) ------------------------------------------------------------

    def log_path(self, inst: Instance, mode: str, auto_suffix: str) -> Path:
        if mode == "auto":
            return self.config.log_dir / f"{inst.name}{auto_suffix}"
        path = Path(mode.replace("{replica}", str(inst.replica if inst.replica is not None else 0)))
        if not path.is_absolute():
            path = self.config.path.resolve().parent / path
        if inst.replica is not None and "{replica}" not in mode:  # replicas never share a file
            path = path.with_name(f"{path.stem}.{inst.replica}{path.suffix}")
        return path

    def _sink(self, inst: Instance, path: Path) -> RotatingFile:
        with self._lock:
            sink = self.sinks.get(path)
            if sink is None:
                spec = inst.spec.logs
                sink = RotatingFile(path, max_size=spec.max_size, max_files=spec.max_files,
                                    rotate_every=spec.rotate_every, compress=spec.compress, clock=self.clock,
                                    compressor=self.compressor, notify=self._notifier(inst.name), label=inst.name,
                                    mode=spec.file_mode, dir_mode=self.config.herder.log_dir_mode)
                self.sinks[path] = sink
                self.pump.wake_writer()  # a new rotation deadline
            return sink

    def _forwarders_for(self, spec: Logs) -> list[Forwarder]:
        out = []
        for target in spec.forward:
            if target not in self._forwarders:
                try:
                    self._forwarders[target] = make_forwarder(target)
                except ImportError as e:
                    self.events.emit("", "log_forward_error", f"herder: cannot forward logs to {target}: {e}")
                    continue
            out.append(self._forwarders[target])
        return out

    def outputs(self, inst: Instance) -> tuple[Any, Any, list[Any], Callable[[int], None]]:
        """(stdout, stderr, files to close, after_spawn) for Supervisor._spawn."""
        spec = inst.spec.logs
        fwd = self._forwarders_for(spec)
        closers: list[Any] = []
        chans: list[Channel] = []

        def capture(stream: str, sink: RotatingFile | None) -> int:
            r, w = make_pipe()
            closers.append(_Fd(w))
            framer = Framer(inst.service, inst.name, stream, timestamps=spec.timestamps, fmt=spec.format,
                            max_line=spec.max_line)
            chans.append(Channel(r, inst.name, stream, framer, sink, spec.on_overflow == "drop",
                                 spec.buffer, fwd))
            return w

        def target(mode: str, stream: str, suffix: str) -> Any:
            if mode == "inherit":
                return None
            if mode == "null":
                return capture(stream, None) if stream == "stderr" else subprocess.DEVNULL
            return capture(stream, self._sink(inst, self.log_path(inst, mode, suffix)))

        out = target(spec.stdout, "stdout", ".log")
        if spec.stderr == "merge":
            if out is None:
                err: Any = None
            else:
                sink = chans[0].sink if chans else None
                err = capture("stderr", sink)
        else:
            err = target(spec.stderr, "stderr", ".err.log")
        self.current[inst.name] = chans
        name = inst.name
        self.pump.in_writer(lambda: self.err_tail.pop(name, None))  # after the last run's output
        for ch in chans:
            self.pump.add(ch)
        return out, err, closers, lambda pid: None

    # -- exit hook (loop thread) ------------------------------------------------------------------

    def exited(self, inst: Instance, pid: int) -> None:
        """Pull what the instance wrote before it died into the ring, so the exit event has it."""
        chans = self.current.get(inst.name, [])
        if not chans:
            return
        done = threading.Event()
        self.pump.drain(chans, done.set)
        done.wait(EXIT_DRAIN_WAIT)

    def event_data(self, inst: Instance, kind: str) -> dict[str, Any]:
        if kind != "exit" or inst.spec.logs.tail_lines <= 0:
            return {}
        lines = self.err_tail.get(inst.name, [])[-inst.spec.logs.tail_lines:]
        return {"stderr_tail": [x.decode("utf-8", "replace") for x in lines]}

    def status(self, inst: Instance) -> dict[str, Any]:
        return {"logs": self.stats(inst.name)}

    def stats(self, name: str) -> dict[str, Any]:
        sinks = {ch.sink for ch in self.current.get(name, []) if ch.sink is not None}
        return {"dropped_bytes": self.dropped.get(name, 0),
                "unwritten_bytes": sum(s.unwritten for s in sinks),
                "written_bytes": sum(s.written for s in sinks),
                "files": sorted(str(s.path) for s in sinks)}

    def metrics(self) -> list[str]:
        """Prometheus text lines for GET /metrics."""
        out = ["# TYPE herder_log_dropped_bytes_total counter",
               "# TYPE herder_log_unwritten_bytes_total counter",
               "# TYPE herder_log_written_bytes_total counter"]
        for name in sorted(self.current):
            s = self.stats(name)
            for key in ("dropped", "unwritten", "written"):
                out.append(f'herder_log_{key}_bytes_total{{instance="{name}"}} {s[key + "_bytes"]}')
        return out

    # -- operator actions -------------------------------------------------------------------------

    def reopen(self) -> None:
        """SIGUSR1 / `herder logs --reopen`: reopen every file at its path (after logrotate)."""
        def do() -> None:
            for sink in list(self.sinks.values()):
                sink.reopen()
            self._emit("", "log_reopen", f"herder: reopened {len(self.sinks)} log file(s)", {})
        self.pump.in_writer(do)

    def tail(self, names: Iterable[str] | None, n: int) -> list[Record]:
        """The last n lines across these instances (all when None), in time order."""
        wanted = list(names) if names is not None else list(self.rings)
        return merge_tails([self.rings[x] for x in wanted if x in self.rings], n)

    async def follow(self, names: Iterable[str] | None, tail: int = 10) -> AsyncIterator[Record]:
        """The last `tail` lines, then every new line as it is written; no polling, no gap."""
        loop = asyncio.get_running_loop()
        tap = FollowTap(set(names) if names is not None else None, loop)
        first: asyncio.Future[list[Record]] = loop.create_future()

        def attach() -> None:  # in the writer thread: snapshot and subscribe atomically
            snap = self.tail(tap.names, tail)
            self.taps.append(tap)
            loop.call_soon_threadsafe(first.set_result, snap)

        self.pump.in_writer(attach)
        try:
            for rec in await first:
                yield rec
            while True:
                await tap.ready.wait()
                skipped, tap.skipped = tap.skipped, 0
                if skipped:
                    yield Record(time.time(), "", "herder", f"[herder: follower too slow, {skipped} lines skipped]".encode())
                for rec in tap.take():
                    yield rec
        finally:
            self.pump.in_writer(lambda: self.taps.remove(tap) if tap in self.taps else None)

    def add_tap(self, tap: Tap) -> None:
        self.pump.in_writer(lambda: self.taps.append(tap))

    # -- writer thread ----------------------------------------------------------------------------

    def _deliver(self, chunk: list[tuple[Channel, float, bytes | None]]) -> None:
        writes: dict[RotatingFile, list[bytes]] = {}
        live: list[Record] = []
        taps = self.taps
        for ch, ts, data in chunk:
            fr = ch.framer
            if data is None:
                last, lines = fr.flush(ts)
                out = [last] if last else []
            else:
                want = bool(ch.forward or taps or ch.stream == "stderr")
                out, lines = fr.feed(data, ts, want)
            if out and ch.sink is not None:
                writes.setdefault(ch.sink, []).extend(out)
            if lines:
                inst, stream = ch.instance, ch.stream
                if taps:
                    recs = [Record(ts, inst, stream, x) for x in lines]
                    live.extend(recs)
                    recs = recs[-64:]
                else:  # a flood: only the last lines can stay in the ring anyway
                    recs = [Record(ts, inst, stream, x) for x in lines[-64:]]
                self.rings[inst].extend(recs)
                if stream == "stderr":
                    tail = self.err_tail[inst]
                    tail.extend(lines[-50:])
                    del tail[:-50]
                for f in ch.forward:
                    svc = fr.service
                    for x in lines:
                        f.send(svc, ch.instance, ch.stream, x, ts)
        for sink, parts in writes.items():
            sink.write(parts)
        for ch, _, data in chunk:
            if data is None:
                ch.done.set()  # after its last bytes are in the file
        if live:
            for tap in taps:
                mine = [r for r in live if tap.wants(r.instance)]
                if mine:
                    tap.offer(mine)

    def _idle(self) -> float | None:
        """Writer thread: run due time rotations; seconds until the next one (None: no timer)."""
        nxt = None
        now = self.clock.now()
        for sink in list(self.sinks.values()):
            sink.tick()
            d = sink.due()
            if d is not None:
                nxt = d - now if nxt is None else min(nxt, d - now)
        return None if nxt is None else max(0.05, nxt)

    def _on_drop(self, ch: Channel, n: int) -> None:
        """Reader thread: count, and report at most every few seconds per instance."""
        self.dropped[ch.instance] += n
        now = time.monotonic()
        if now - self._drop_reported.get(ch.instance, -1e9) >= _DROP_REPORT_EVERY:
            self._drop_reported[ch.instance] = now
            total = self.dropped[ch.instance]
            self._emit(ch.instance, "log_dropped",
                       f"{ch.instance}: output faster than the disk; dropping (on_overflow = \"drop\"), "
                       f"{total} bytes dropped so far", {"dropped_bytes": total})

    def _notifier(self, name: str) -> Callable[[str, str, dict[str, object]], None]:
        return lambda kind, msg, data: self._emit(name, kind, msg, dict(data))

    def _emit(self, instance: str, kind: str, message: str, data: dict[str, Any]) -> None:
        """An event from the pump or writer thread, handed to the loop. At most one wake-up
        is in flight (herder.runtime.signals: a full self-pipe would drop signals)."""
        loop = self._loop
        if loop is None:
            self.events.emit(instance, kind, message, data)
            return
        with self._emit_lock:
            self._emit_queue.append((instance, kind, message, data))
            if self._emit_pending:
                return
            self._emit_pending = True
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._emit_flush)

    def _emit_flush(self) -> None:
        with self._emit_lock:
            batch, self._emit_queue = self._emit_queue, []
            self._emit_pending = False
        for instance, kind, message, data in batch:
            self.events.emit(instance, kind, message, data)
