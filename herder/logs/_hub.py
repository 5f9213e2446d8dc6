"""LogHub: the one owner of service output, owned by the supervisor's runtime.

It gives every instance its pipes at spawn (`outputs`), frames, rings, forwards and
writes what comes out of them (in the pump's writer thread), reopens files (SIGUSR1),
drains an instance's pipes when it exits so the exit event carries its last stderr
lines (`drain`, then `exit_data`), and serves tails and followers to the API and the
foreground console. `ready.log` is matched here, on the live lines of the run it was
asked for (`outputs(..., watch=)`), from the first byte on: no file is re-read, so the
path (replicas, relative paths) and rotation cannot make it miss the line. Counters
(written, dropped, unwritten) feed status and metrics.

Nothing here blocks the loop: a drain is a request to the reader thread whose answer
comes back as a callback on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
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
from herder.logs._taps import FollowTap, LineWatch, Outputs, Tap, _Fd
from herder.logs.paths import output_path
from herder.runtime.clock import MonotonicClock, Now

if TYPE_CHECKING:
    from herder.config import Config
    from herder.core.instance import Instance
    from herder.runtime.events import EventBus

EXIT_DRAIN_WAIT = 0.25   # longest an exit event waits for the instance's last output
_DROP_REPORT_EVERY = 5.0


class LogHub:
    """The capture component. `install(supervisor)` wires it in; it is entered before services start."""

    def __init__(self, config: Config, events: EventBus, *, clock: Now | None = None) -> None:
        self.config = config
        self.events = events
        self.clock = clock or MonotonicClock()   # rotation deadlines, read in the writer thread
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
        self._calls_lock = threading.Lock()
        self._calls: list[Callable[[], object]] = []
        self._calls_pending = False
        self.watches: dict[Channel, LineWatch] = {}   # writer thread only
        self.console: Any = None  # the foreground view (a Tap with close()), if any
        self.stdio: Any = None    # every line on herder's stdout/stderr (a container's logs), if any
        self.files = True         # False: `auto` outputs are captured without a file ([herder] log_files)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._lock = threading.Lock()

    # -- lifetime (the supervisor enters the hub before the first spawn) -------------------------

    async def __aenter__(self) -> LogHub:
        self._loop = asyncio.get_running_loop()
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
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

    def log_path(self, inst: Instance, mode: str, stream: str) -> Path | None:
        return output_path(mode, inst.name, inst.replica, stream, log_dir=self.config.log_dir,
                           config_dir=self.config.path.resolve().parent)

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

    def outputs(self, inst: Instance, watch: LineWatch | None = None, *, hook: str = "") -> Outputs:
        """The child's stdout and stderr for a spawn; `watch` sees this run's lines (ready.log).

        `hook`: the outputs of one of the instance's hooks instead: the same files, ring and
        forwarding, every line marked `[hook NAME] `, and the instance's run (its drain on
        exit, its stats, its ready.log watch) left as it is."""
        spec = inst.spec.logs
        marker = f"[hook {hook}] ".encode() if hook else b""
        fwd = self._forwarders_for(spec)
        outs = Outputs(None, None)
        chans: list[Channel] = []

        def capture(stream: str, sink: RotatingFile | None) -> int:
            r, w = make_pipe()
            outs.close.append(_Fd(w))
            framer = Framer(inst.service, inst.name, stream, timestamps=spec.timestamps, fmt=spec.format,
                            max_line=spec.max_line, marker=marker)
            chans.append(Channel(r, inst.name, stream, framer, sink, spec.on_overflow == "drop",
                                 spec.buffer, fwd))
            return w

        def target(mode: str, stream: str) -> int | None:
            if mode == "inherit":
                return None
            if mode == "null":
                return capture(stream, None) if stream == "stderr" else subprocess.DEVNULL
            path = self.log_path(inst, mode, stream) if mode != "auto" or self.files else None
            return capture(stream, self._sink(inst, path) if path is not None else None)

        try:
            outs.stdout = target(spec.stdout, "stdout")
            if spec.stderr == "merge":
                outs.stderr = None if outs.stdout is None else capture("stderr", chans[0].sink if chans else None)
            else:
                outs.stderr = target(spec.stderr, "stderr")
        except BaseException:
            outs.close_all()
            for ch in chans:
                os.close(ch.fd)
            raise
        outs.channels = chans
        if hook:
            for ch in chans:
                self.pump.add(ch)
            return outs
        self.current[inst.name] = chans
        name = inst.name

        def attach() -> None:   # writer thread, before any chunk of these pipes
            self.err_tail.pop(name, None)   # after the last run's output
            for old in [c for c, w in self.watches.items() if c.instance == name]:
                del self.watches[old]
            if watch is not None:
                for ch in chans:
                    self.watches[ch] = watch

        self.pump.in_writer(attach)
        for ch in chans:
            self.pump.add(ch)
        return outs

    def unwatch(self, name: str) -> None:
        """The run's ready.log watch is over (ready, or the run ended)."""
        def detach() -> None:
            for ch in [c for c in self.watches if c.instance == name]:
                del self.watches[ch]
        self.pump.in_writer(detach)

    # -- exits (loop thread) ----------------------------------------------------------------------

    def drain(self, name: str, then: Callable[[], None]) -> None:
        """Pull what the exited instance wrote into the ring (for its exit event), then call
        `then` on the loop. Never waits: the reader and writer threads do the work."""
        chans = self.current.get(name, [])
        if not chans:
            then()
            return
        self.pump.drain(chans, lambda: self._call_on_loop(then))

    def drain_outputs(self, outs: Outputs, then: Callable[[], None]) -> None:
        """`drain` for the outputs of a hook (herder.runtime.hooks)."""
        if not outs.channels:
            then()
            return
        self.pump.drain(outs.channels, lambda: self._call_on_loop(then))

    def hook_tail(self, inst: Instance, hook: str, n: int = 10) -> list[str]:
        """The last stderr lines a hook of the instance wrote (for its failure event)."""
        marker = f"[hook {hook}] ".encode()
        lines = [x for x in self.err_tail.get(inst.name, []) if x.startswith(marker)][-n:]
        return [x[len(marker):].decode("utf-8", "replace") for x in lines]

    def exit_data(self, inst: Instance) -> dict[str, Any]:
        """Extra data of an instance's `exit` event: its last stderr lines."""
        if inst.spec.logs.tail_lines <= 0:
            return {}
        lines = self.err_tail.get(inst.name, [])[-inst.spec.logs.tail_lines:]
        return {"stderr_tail": [x.decode("utf-8", "replace") for x in lines]}

    def status_fields(self, inst: Instance) -> dict[str, Any]:
        """What the log hub adds to an instance's status record: its counters and the last
        line it wrote to stderr (shown by `herder status` for a failed instance)."""
        tail = self.err_tail.get(inst.name)
        return {"logs": self.stats(inst.name),
                "last_stderr": tail[-1].decode("utf-8", "replace") if tail else None}

    def stats(self, name: str) -> dict[str, Any]:
        sinks = {ch.sink for ch in self.current.get(name, []) if ch.sink is not None}
        return {"dropped_bytes": self.dropped.get(name, 0),
                "unwritten_bytes": sum(s.unwritten for s in sinks),
                "written_bytes": sum(s.written for s in sinks),
                "files": sorted(str(s.path) for s in sinks)}

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
                    note = f"[herder: follower too slow, {skipped} lines skipped]"
                    yield Record(time.time(), "", "herder", note.encode())
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
            watch = self.watches.get(ch)
            if data is None:
                last, lines = fr.flush(ts)
                out = [last] if last else []
            else:
                want = bool(ch.forward or taps or ch.stream == "stderr" or watch is not None)
                out, lines = fr.feed(data, ts, want)
            if watch is not None and lines:
                self._match(watch, lines)
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

    def _match(self, watch: LineWatch, lines: list[bytes]) -> None:
        """Writer thread: the first matching line of a watched run goes to the loop, once."""
        if watch.done:
            return
        for line in lines:
            text = line.decode("utf-8", "replace")
            if watch.pattern.search(text):
                watch.done = True
                self._call_on_loop(functools.partial(watch.on_match, text))
                return

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
        """An event from the pump or writer thread, published on the loop."""
        if self._loop is None:
            self.events.emit(instance, kind, message, data)
            return
        self._call_on_loop(lambda: self.events.emit(instance, kind, message, data))

    def _call_on_loop(self, fn: Callable[[], object]) -> None:
        """Run fn on the loop, in order. At most one wake-up is in flight
        (herder.runtime.signals: a burst of them fills the loop's self-pipe)."""
        loop = self._loop
        if loop is None:
            fn()
            return
        with self._calls_lock:
            self._calls.append(fn)
            if self._calls_pending:
                return
            self._calls_pending = True
        with contextlib.suppress(RuntimeError):   # the loop is closed
            loop.call_soon_threadsafe(self._run_calls)

    def _run_calls(self) -> None:
        with self._calls_lock:
            batch, self._calls = self._calls, []
            self._calls_pending = False
        for fn in batch:
            fn()
