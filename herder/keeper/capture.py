"""The keeper's capture: the one writer of every service's log files (docs/logs.md).

This is the half of log handling that must outlive the decision process: the pipes'
read ends, the pump (a reader thread and a writer thread, herder.logs._pump), framing,
rotation, retention, forwarding, the tails (rings), ready.log matching and the live
taps. The decision process describes each stream once, at spawn (`ChannelSpec`: where
it goes and how it is framed; no config parsing here), and hears back through the
keeper's outbox: a ready.log match, a follower's lines, an exit's last stderr lines,
events (disk full, drops). Because all of this lives in the keeper, a decision process
killed between a pipe read and a file write loses nothing: it never held the bytes.

What it carries across an exec of the keeper (`herder upgrade`): each channel's fd, its
spec and its framer's unfinished line, and the tails; nothing is in flight then, because
the pump is stopped and the writer has written everything it read (`pause`).
"""

from __future__ import annotations

import base64
import functools
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herder.keeper.counters import DROPPED, UNWRITTEN, WRITTEN, Counters
from herder.keeper.fastpath import FastTurns, fast_path
from herder.keeper.trampoline import carry_in_file
from herder.logs._files import Compressor, RotatingFile
from herder.logs._forward import Forwarder, make_forwarder
from herder.logs._framing import Framer, Record
from herder.logs._pump import Channel, Pump
from herder.logs._ring import Ring, merge_tails
from herder.logs._spec import ChannelSpec, pack, unpack
from herder.logs._taps import Tap

FOLLOW_BACKLOG = 8 << 20     # bytes of lines queued for the decision process before a follower skips
_DROP_REPORT_EVERY = 5.0
ERR_TAIL = 50

Emit = Callable[[dict[str, Any]], None]   # a message for the decision process (thread-safe)


class _Mono:
    def now(self) -> float:
        return time.monotonic()


@dataclass(eq=False)
class Watch:
    """ready.log for one run: the first matching line is reported, once."""

    name: str
    run: int
    pattern: re.Pattern[str]
    done: bool = False
    line: str = ""      # the matching line, once done

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run": self.run, "pattern": self.pattern.pattern, "done": self.done,
                "line": self.line}


class Follower(Tap):
    """A follower of `herder logs -f` (or the foreground console of a remote view): its
    lines go to the decision process; past FOLLOW_BACKLOG queued bytes they are skipped."""

    def __init__(self, names: set[str] | None, fid: int, emit: Emit, backlog: Callable[[], int]) -> None:
        super().__init__(names)
        self.fid, self.emit, self.backlog = fid, emit, backlog

    def offer(self, records: list[Record]) -> None:
        if self.backlog() > FOLLOW_BACKLOG:
            self.skipped += len(records)
            return
        msg: dict[str, Any] = {"t": "rec", "id": self.fid, "r": [pack(r) for r in records]}
        if self.skipped:
            msg["skipped"], self.skipped = self.skipped, 0
        self.emit(msg)


class Capture:
    def __init__(self, emit: Emit, counters: Counters, backlog: Callable[[], int]) -> None:
        self.emit = emit
        self.counters = counters
        self.backlog = backlog
        self.clock = _Mono()
        self.compressor = Compressor()
        self.pump = Pump(self._deliver, self._on_drop, self._idle)
        self.pump.counters = counters
        self.fast = FastTurns(self)
        self.pump.raw_turn = self.fast.turn
        self.sinks: dict[str, RotatingFile] = {}
        self.rings: dict[str, Ring] = defaultdict(Ring)
        self.err_tail: dict[str, list[bytes]] = defaultdict(list)
        self.current: dict[str, list[Channel]] = {}     # instance -> its latest run's channels
        self.hooks: dict[int, tuple[str, list[Channel]]] = {}   # a running hook's channels, by the DP's key
        self.watches: dict[str, Watch] = {}             # writer thread only
        self.matched: dict[str, dict[str, Any]] = {}    # name -> its current run's match (under _lock):
                                                        # re-sent to each new decision process
        self.taps: list[Tap] = []                       # writer thread only
        self.own: RotatingFile | None = None            # herder.log
        self.seq = 0                                    # writer thread only: line numbers for followers
        self._forwarders: dict[str, Forwarder] = {}
        self._drop_reported: dict[str, float] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.pump.start()

    # ---- channels (keeper main thread) ------------------------------------------------------

    def sink(self, spec: ChannelSpec, name: str) -> RotatingFile | None:
        """The file a channel writes to, opened on first use. Writer thread: an open (and its
        mkdir) on a slow or hung disk must never stall the keeper's loop."""
        if spec.sink is None:
            return None
        got = self.sinks.get(spec.sink)     # writer thread only: no lock is held across the open
        if got is None:
            got = RotatingFile(Path(spec.sink), max_size=spec.max_size, max_files=spec.max_files,
                               rotate_every=spec.rotate_every, compress=spec.compress, clock=self.clock,
                               compressor=self.compressor, notify=self._notifier(name), label=name,
                               mode=spec.file_mode, dir_mode=spec.dir_mode)
            got.slot = self.counters.slot("s:" + spec.sink)    # allotted by `add`, in the main thread
            self.sinks[spec.sink] = got
            self.pump.wake_writer()   # a new rotation deadline
        return got

    def forwarders(self, targets: Iterable[str], name: str) -> list[Forwarder]:
        out = []
        for target in targets:
            if target not in self._forwarders:
                try:
                    self._forwarders[target] = make_forwarder(target)
                except ImportError as e:
                    self._event(name, "log_forward_error", f"herder: cannot forward logs to {target}: {e}", {})
                    continue
            out.append(self._forwarders[target])
        return out

    def add(self, name: str, run: int, specs: list[ChannelSpec], fds: list[int], watch: str | None = None,
            carry: list[bytes] | None = None, attach: bool = True, in_file: list[int] | None = None) -> list[Channel]:
        """Start reading these pipes (read ends `fds`, one per spec) for run `run` of `name`."""
        slot = self.counters.slot("i:" + name)
        chans = []
        sinks = [spec.sink for spec in specs if spec.sink is not None]
        for i, (spec, fd) in enumerate(zip(specs, fds, strict=True)):
            shared = spec.sink is not None and sinks.count(spec.sink) > 1
            framer = Framer(spec.service, name, spec.stream, timestamps=spec.timestamps, fmt=spec.format,
                            max_line=spec.max_line, marker=spec.marker.encode(), whole_lines=shared)
            if carry is not None and i < len(carry):
                framer.carry = carry[i]
                if framer.whole:        # what of it the old keeper had written (carry_in_file)
                    framer.written = in_file[i] if in_file is not None and i < len(in_file) else 0
            ch = Channel(fd, name, spec.stream, framer, None, spec.drop, spec.limit,
                         self.forwarders(spec.forward, name))
            ch.slot, ch.run, ch.spec = slot, run, spec
            ch.carried = framer.held()   # an exec's counters count it already
            if spec.sink is not None:
                self.counters.slot("s:" + spec.sink)    # allotted here: the slot table is the main thread's
            # decided from the spec: the file is opened later, in the writer (attach_run); a turn
            # that finds no open file takes the line path (herder.keeper.fastpath). Two streams
            # into one file (stderr = "merge") never do: raw bytes of two pipes would mix mid-line
            ch.fast = fast_path(spec) and not shared
            chans.append(ch)
        if attach:
            self.current[name] = chans
            with self._lock:
                self.matched.pop(name, None)
        compiled = re.compile(watch) if watch is not None else None

        def attach_run() -> None:   # writer thread, before any chunk of these pipes
            for ch in chans:
                ch.sink = self.sink(ch.spec, name)
            if attach:
                self.err_tail.pop(name, None)
            if compiled is not None:
                self.watches[name] = Watch(name, run, compiled)
            elif attach:
                self.watches.pop(name, None)

        self.pump.in_writer(attach_run)
        for ch in chans:
            self.pump.add(ch)
        return chans

    def unwatch(self, name: str) -> None:
        def drop() -> None:
            self.watches.pop(name, None)
        self.pump.in_writer(drop)

    def add_hook(self, key: int, name: str, run: int, specs: list[ChannelSpec], fds: list[int]) -> None:
        """A hook's pipes (spawned by the decision process): read like the instance's, kept
        apart from its run (the instance's drain and ready.log watch stay as they are)."""
        self.hooks[key] = (name, self.add(name, run, specs, fds, attach=False))

    def drain_hook(self, key: int, then: Callable[[str, list[str]], None]) -> None:
        """Read what the ended hook's pipes hold, write it, then `then(instance, its marked
        stderr lines)` in the writer thread."""
        name, chans = self.hooks.pop(key, ("", []))

        def done() -> None:     # writer thread: `then` is called whatever happens
            tail: list[bytes] = []
            try:
                marks = {ch.spec.marker.encode() for ch in chans if ch.spec is not None and ch.spec.marker}
                tail = [x for x in self.err_tail.get(name, []) if any(x.startswith(m) for m in marks)]
            finally:
                then(name, [x.decode("utf-8", "replace") for x in tail])

        if not chans:
            self.pump.in_writer(done)
            return
        self.pump.drain(chans, done)

    def drain(self, name: str, then: Callable[[list[str]], None]) -> None:
        """Read what the exited instance's pipes hold, write it, then call `then(stderr tail)`
        in the writer thread."""
        chans = self.current.get(name, [])

        def done() -> None:
            then([x.decode("utf-8", "replace") for x in self.err_tail.get(name, [])])

        if not chans:
            self.pump.in_writer(done)
            return
        self.pump.drain(chans, done)

    def stats(self, name: str) -> dict[str, Any]:
        paths = {ch.spec.sink for ch in self.current.get(name, []) if ch.spec is not None and ch.spec.sink}
        return {"sinks": {str(p): self.counters.slot("s:" + p) for p in paths}, "slot": self.counters.slot("i:" + name)}

    # ---- requests of the decision process -----------------------------------------------------

    def reopen(self) -> None:
        def do() -> None:
            for sink in list(self.sinks.values()):
                sink.reopen()
            if self.own is not None:
                self.own.reopen()
            self._event("", "log_reopen", f"herder: reopened {len(self.sinks)} log file(s)", {})
        self.pump.in_writer(do)

    def open_own(self, path: Path, dir_mode: int = 0o750) -> None:
        """herder.log: the decision process's events, one JSON object per line."""
        def do() -> None:
            if self.own is None or self.own.path != path:
                if self.own is not None:
                    self.own.close()
                self.own = RotatingFile(path, max_size=50 << 20, max_files=10, rotate_every=None, compress=True,
                                        clock=self.clock, compressor=self.compressor, label="herder", mode=0o640,
                                        dir_mode=dir_mode)
        self.pump.in_writer(do)

    def write_own(self, lines: list[bytes]) -> None:
        self.pump.in_writer(lambda: self.own.write(lines) if self.own is not None else None)

    def tail(self, names: Iterable[str] | None, n: int, after: int = -1) -> list[Record]:
        """Writer thread (or quiesced): the last n lines of these instances, in time order."""
        wanted = list(names) if names is not None else list(self.rings)
        recs = merge_tails([self.rings[x] for x in wanted if x in self.rings], n if after < 0 else 10 ** 9)
        if after >= 0:
            recs = [r for r in recs if r.seq > after]
        return recs

    def follow(self, fid: int, names: list[str] | None, n: int, after: int = -1) -> None:
        """Send the tail (or every kept line after `after`), then each new line, to follower `fid`."""
        tap = Follower(set(names) if names is not None else None, fid=fid, emit=self.emit, backlog=self.backlog)

        def attach() -> None:   # writer thread: snapshot and subscribe at once, so nothing falls between
            try:
                recs = self.tail(tap.names, n, after)
                self.emit({"t": "rec", "id": fid, "r": [pack(r) for r in recs], "first": 1})
            except Exception as e:  # noqa: BLE001 - the follower is told it ends, never left waiting
                self.emit({"t": "follow_end", "id": fid, "error": f"herder's keeper: {e!r}"})
                return
            self.taps.append(tap)
        self.pump.in_writer(attach)

    def unfollow(self, fid: int) -> None:
        def detach() -> None:
            self.taps = [t for t in self.taps if not (isinstance(t, Follower) and t.fid == fid)]
        self.pump.in_writer(detach)

    def unfollow_all(self) -> None:
        """The decision process is gone: so are its followers (its successor asks again)."""
        def detach() -> None:
            self.taps = [t for t in self.taps if not isinstance(t, Follower)]
        self.pump.in_writer(detach)

    def add_tap(self, tap: Tap) -> None:
        self.pump.in_writer(lambda: self.taps.append(tap))

    # ---- writer thread --------------------------------------------------------------------------

    def _deliver(self, chunk: list[tuple[Channel, float, bytes | None]]) -> None:
        writes: dict[RotatingFile, list[bytes]] = {}
        live: list[Record] = []
        taps = self.taps
        for ch, ts, data in chunk:
            fr = ch.framer
            watch = self.watches.get(ch.instance)
            if watch is not None and (watch.done or watch.run != ch.run):
                watch = None
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
                first = self.seq + 1
                self.seq += len(lines)
                if taps:
                    recs = [Record(ts, inst, stream, x, first + i) for i, x in enumerate(lines)]
                    live.extend(recs)
                    recs = recs[-64:]
                else:  # a flood: only the last lines can stay in the ring anyway
                    base = first + max(0, len(lines) - 64)
                    recs = [Record(ts, inst, stream, x, base + i) for i, x in enumerate(lines[-64:])]
                self.rings[inst].extend(recs)
                if stream == "stderr":
                    tail = self.err_tail[inst]
                    tail.extend(lines[-ERR_TAIL:])
                    del tail[:-ERR_TAIL]
                for f in ch.forward:
                    svc = fr.service
                    for x in lines:
                        f.send(svc, ch.instance, ch.stream, x, ts)
        for sink, parts in writes.items():
            before_w, before_u = sink.written, sink.unwritten
            sink.write(parts)
            self.counters.add(sink.slot, WRITTEN, sink.written - before_w)
            self.counters.add(sink.slot, UNWRITTEN, sink.unwritten - before_u)
        for ch, _, data in chunk:
            if data is None:
                ch.done.set()  # after its last bytes are in the file
        if live:
            for tap in taps:
                mine = [r for r in live if tap.wants(r.instance)]
                if mine:
                    tap.offer(mine)

    def remember(self, ch: Channel, ts: float, lines: list[bytes]) -> None:
        """Writer thread: the ring's and the stderr tail's share of a fast turn's lines
        (herder.keeper.fastpath)."""
        if not lines:
            return
        first = self.seq + 1
        self.seq += len(lines)
        base = first + max(0, len(lines) - 64)
        self.rings[ch.instance].extend(Record(ts, ch.instance, ch.stream, x, base + i)
                                       for i, x in enumerate(lines[-64:]))
        if ch.stream == "stderr":
            tail = self.err_tail[ch.instance]
            tail.extend(lines[-ERR_TAIL:])
            del tail[:-ERR_TAIL]

    def _match(self, watch: Watch, lines: list[bytes]) -> None:
        for line in lines:
            text = line.decode("utf-8", "replace")
            if watch.pattern.search(text):
                watch.done, watch.line = True, text
                msg = {"t": "matched", "name": watch.name, "run": watch.run, "line": text}
                with self._lock:     # kept for the next decision process: this one may die before stepping it
                    self.matched[watch.name] = msg
                self.emit(msg)
                return

    def _idle(self) -> float | None:
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
        self.counters.add(ch.slot, DROPPED, n)
        now = time.monotonic()
        if now - self._drop_reported.get(ch.instance, -1e9) >= _DROP_REPORT_EVERY:
            self._drop_reported[ch.instance] = now
            total = self.counters.get(ch.slot, DROPPED)
            self._event(ch.instance, "log_dropped",
                        f"{ch.instance}: output faster than the disk; dropping (on_overflow = \"drop\"), "
                        f"{total} bytes dropped so far", {"dropped_bytes": total})

    def _notifier(self, name: str) -> Callable[[str, str, dict[str, object]], None]:
        return lambda kind, msg, data: self._event(name, kind, msg, dict(data))

    def _event(self, instance: str, kind: str, message: str, data: dict[str, Any]) -> None:
        self.emit({"t": "event", "instance": instance, "kind": kind, "message": message, "data": data})

    # ---- the end, and an exec in between --------------------------------------------------------

    def pause(self, timeout: float) -> bool:
        """Stop reading, and write everything read so far (before an exec of the keeper);
        False when the writer did not finish within `timeout` (then `resume`)."""
        done = threading.Event()
        self.pump.pause_reading(done.set)
        return done.wait(timeout)

    def resume(self) -> None:
        self.pump.resume_reading()

    def close(self, wait: float = 5.0) -> None:
        """Let open pipes reach EOF (bounded), then flush and close every file."""
        deadline = time.monotonic() + wait
        for chans in list(self.current.values()):
            for ch in chans:
                ch.done.wait(max(0.0, deadline - time.monotonic()))
        self.pump.stop()
        for tap in list(self.taps):
            close = getattr(tap, "close", None)
            if close is not None:
                close()
        for sink in self.sinks.values():
            sink.close()
        if self.own is not None:
            self.own.close()
        for f in self._forwarders.values():
            f.close()
        self.compressor.join()
        self.compressor.close()

    def export(self) -> tuple[dict[str, Any], list[int]]:
        """Quiesced: every open channel with its fd, spec and unfinished line; the tails.
        The fast path's own descriptors of the files are closed (the pump is stopped; the
        capture that restores these channels, after an exec or a failed one, opens its own)."""
        chans: list[dict[str, Any]] = []
        fds: list[int] = []
        for cs in self.current.values():
            for c in cs:
                FastTurns.done(c)
        for name, cs in self.current.items():
            open_ = [c for c in cs if not c.closed]
            if not open_:
                continue
            chans.append({"name": name, "run": open_[0].run, "specs": [c.spec.as_dict() for c in open_],
                          "carry": [base64.b64encode(c.framer.carry).decode() for c in open_],
                          "in_file": [c.framer.in_file() for c in open_]})
            fds.extend(c.fd for c in open_)
        rings = {n: [pack(r) for r in ring.lines][-100:] for n, ring in self.rings.items()}
        errs = {n: [x.decode("utf-8", "surrogateescape") for x in t] for n, t in self.err_tail.items()}
        watches = [w.as_dict() for w in self.watches.values()]
        return {"channels": chans, "rings": rings, "err_tail": errs, "seq": self.seq, "watches": watches}, fds

    def restore(self, state: dict[str, Any], fds: list[int]) -> None:
        """After an exec: read the same pipes again, from where the old keeper stopped."""
        self.seq = int(state.get("seq", 0))
        for name, recs in state.get("rings", {}).items():
            self.rings[name].extend(unpack(x) for x in recs)
        for name, lines in state.get("err_tail", {}).items():
            self.err_tail[name] = [x.encode("utf-8", "surrogateescape") for x in lines]
        pos = 0
        for ch in state.get("channels", []):
            specs = [ChannelSpec.of(s) for s in ch["specs"]]
            mine = fds[pos:pos + len(specs)]
            pos += len(specs)
            carry = [base64.b64decode(c) for c in ch.get("carry", [])]
            in_file = carry_in_file(ch, carry)
            keep = self.err_tail.get(ch["name"])
            self.add(ch["name"], int(ch["run"]), specs, mine, carry=carry, in_file=in_file)
            if keep is not None:
                self.pump.in_writer(functools.partial(self.err_tail.__setitem__, ch["name"], keep))
        self.restore_watches(state.get("watches") or [])

    def restore_watches(self, raw: list[dict[str, Any]]) -> None:
        """ready.log watches of instances still starting, as a previous keeper (or the decision
        process that replaces a dead one) had them; a match already made is kept for the
        next decision process."""
        watches: list[Watch] = []
        for x in raw:
            try:
                watches.append(Watch(str(x["name"]), int(x["run"]), re.compile(str(x["pattern"])),
                                     bool(x.get("done")), str(x.get("line", ""))))
            except (KeyError, ValueError, TypeError, re.error):
                continue
        with self._lock:
            for w in watches:
                if w.done:
                    self.matched[w.name] = {"t": "matched", "name": w.name, "run": w.run, "line": w.line}

        def put() -> None:  # after the channels' attach_run (which resets a name's watch)
            for w in watches:
                self.watches[w.name] = w
        self.pump.in_writer(put)

    def matches(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.matched.values())
