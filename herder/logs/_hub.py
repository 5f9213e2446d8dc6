"""LogHub: the decision process's view of service output, which the keeper owns.

The keeper (herder.keeper.capture) holds every pipe and writes every file; this side
describes each stream at spawn (`outputs`: the pipes and their ChannelSpecs, from the
config), and asks for what the API and the core need: tails (`tail`), followers
(`follow`: the kept lines, then every new one, no gap), herder.log lines (`write_own`),
reopening after logrotate (`reopen`). What the keeper reports comes back through
`on_message`: a follower's lines, an exit's last stderr lines (`exit_data`), log
events (disk full, drops). Byte counts are read from the keeper's shared counters
(`stats`), synchronously, without a message.

It keeps a copy of every pipe's read end (`keep`): while this process lives, no service
writing to stdout ever sees EPIPE, even if the keeper dies (herder.runtime.keeper_lost
hands the copies to the next keeper).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from herder.keeper.counters import DROPPED, UNWRITTEN, WRITTEN, Counters
from herder.logs._framing import Record
from herder.logs._pump import make_pipe
from herder.logs._spec import ChannelSpec, unpack
from herder.logs.paths import output_path

if TYPE_CHECKING:
    from herder.config import Config
    from herder.core.instance import Instance
    from herder.runtime.events import EventBus
    from herder.runtime.keeper_link import KeeperLink

EXIT_DRAIN_WAIT = 0.25   # the keeper waits at most this long for an exited instance's last output
FOLLOW_BACKLOG = 10000   # records a slow follower may lag before lines are skipped


@dataclass
class Outputs:
    """A spawn's streams: "inherit", "null" or a ChannelSpec record per stream, the fds to
    send (read and write end of each pipe, in order) and the read ends this side keeps."""

    out: Any
    err: Any
    fds: list[int] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)
    key: int = 0          # a hook's outputs, as the keeper knows them (LogHub.hook_started)

    def close_all(self) -> None:
        for fd in self.fds + self.keep:
            os.close(fd)
        self.fds, self.keep = [], []


class _Follow:
    def __init__(self) -> None:
        self.buf: list[Record] = []
        self.ready = asyncio.Event()
        self.skipped = 0
        self.first = False
        self.ended = ""       # the keeper ended this follow (why)


class LogHub:
    def __init__(self, config: Config, events: EventBus) -> None:
        self.config = config
        self.events = events
        self.link: KeeperLink | None = None
        self.counters: Counters | None = None
        self.console = "off"     # what the keeper writes to stdout: "view", "text", "json" (herder.logs._stdio)
        self.files = True         # False: `auto` outputs are captured without a file ([herder] log_files)
        self.early: list[dict[str, Any]] | None = []   # herder's lines for stdout before the keeper has its setup
        self.err_tail: dict[str, list[str]] = {}              # the last exit's stderr lines
        self.slots: dict[str, tuple[int, dict[str, int]]] = {}  # instance -> (slot, {file: slot})
        self.pipes: dict[str, tuple[int, list[int], list[dict[str, Any]]]] = {}   # instance -> (run, kept fds, specs)
        self._follows: dict[int, _Follow] = {}
        self._tails: dict[int, asyncio.Future[list[Record]]] = {}
        self._ids = itertools.count(1)
        self.owned: list[bytes] = []      # herder.log lines before the keeper is there
        self._drains: dict[int, Callable[[], None]] = {}   # a hook's outputs -> what runs once they are written
        self.hook_tails: dict[str, list[str]] = {}         # instance -> its last drained hook's stderr lines

    async def __aenter__(self) -> LogHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for f in self._follows.values():
            f.ready.set()

    # ---- spawn time --------------------------------------------------------------------------

    def log_path(self, inst: Instance, mode: str, stream: str) -> Path | None:
        return output_path(mode, inst.name, inst.replica, stream, log_dir=self.config.log_dir,
                           config_dir=self.config.path.resolve().parent)

    def outputs(self, inst: Instance, *, hook: str = "") -> Outputs:
        """The child's stdout and stderr for a spawn (pipes made here, so this process holds
        a read end of each before the child exists).

        `hook`: the outputs of one of the instance's hooks instead (herder.runtime.hooks): the
        same files, ring and forwarding, every line marked `[hook NAME] `; the instance's run
        (its drain on exit, its ready.log watch) is left as it is."""
        spec = inst.spec.logs
        outs = Outputs(None, None)

        def capture(stream: str, sink: str | None) -> dict[str, Any]:
            r, w = make_pipe()
            outs.fds += [r, w]
            if not hook:      # a hook's pipe is the keeper's alone (a hook is not adopted)
                outs.keep.append(os.dup(r))
                os.set_inheritable(outs.keep[-1], False)
            cs = ChannelSpec(stream, inst.service, sink, spec.max_size, spec.max_files, spec.rotate_every,
                             spec.compress, spec.timestamps, spec.format, spec.max_line,
                             spec.on_overflow == "drop", spec.buffer, tuple(spec.forward), spec.file_mode,
                             self.config.herder.log_dir_mode, f"[hook {hook}] " if hook else "").as_dict()
            outs.specs.append(cs)
            return cs

        def target(mode: str, stream: str) -> Any:
            if mode == "inherit":
                return "inherit"
            if mode == "null":
                return capture(stream, None) if stream == "stderr" else "null"
            path = self.log_path(inst, mode, stream) if mode != "auto" or self.files else None
            return capture(stream, str(path) if path is not None else None)

        try:
            outs.out = target(spec.stdout, "stdout")
            if spec.stderr == "merge":
                first = outs.specs[0]["sink"] if outs.specs else None
                outs.err = "inherit" if outs.out == "inherit" else capture("stderr", first)
            else:
                outs.err = target(spec.stderr, "stderr")
        except BaseException:
            outs.close_all()
            raise
        return outs

    def spawned(self, name: str, run: int, outs: Outputs, slot: int, sinks: dict[str, int]) -> None:
        self.release(name)
        self.pipes[name] = (run, outs.keep, outs.specs)
        self.slots[name] = (slot, dict(sinks))

    def release(self, name: str, run: int | None = None) -> None:
        """The run is over: close the kept read ends of its pipes."""
        got = self.pipes.get(name)
        if got is None or (run is not None and got[0] != run):
            return
        del self.pipes[name]
        for fd in got[1]:
            os.close(fd)

    def unwatch(self, name: str) -> None:
        if self.link is not None:
            self.link.send({"t": "unwatch", "name": name})

    def drain(self, name: str, then: Any) -> None:
        """Exits arrive drained (the keeper writes an instance's last output before it
        reports the exit): nothing to wait for."""
        then()

    # ---- hooks (herder.runtime.hooks): spawned here, captured by the keeper -------------------------

    def hook_streams(self, outs: Outputs) -> tuple[Any, Any]:
        """What a hook spawned by this process gets as stdout and stderr (write ends, DEVNULL,
        or None to inherit)."""
        streams: list[Any] = []
        pos = 0
        for mode in (outs.out, outs.err):
            if isinstance(mode, dict):
                streams.append(outs.fds[pos + 1])
                pos += 2
            else:
                streams.append(subprocess.DEVNULL if mode == "null" else None)
        return streams[0], streams[1]

    def hook_started(self, name: str, run: int, outs: Outputs) -> None:
        """The hook runs: its pipes' read ends go to the keeper (which reads and writes them),
        every end is closed here. Without a keeper its output is not captured (the pipes
        close: the hook sees EPIPE, as it would after herder's end)."""
        reads = outs.fds[0::2]
        for fd in outs.fds[1::2] + outs.keep:
            os.close(fd)
        outs.fds, outs.keep = [], []
        outs.key = next(self._ids)
        self.hook_tails.pop(name, None)
        if self.link is None or self.link.lost or not reads:
            for fd in reads:
                os.close(fd)
            return
        self.link.send({"t": "hook_out", "key": outs.key, "name": name, "run": run, "specs": outs.specs}, reads)

    def drain_outputs(self, outs: Outputs, then: Callable[[], None]) -> None:
        """`then()` once the keeper wrote what the (ended) hook wrote; its last stderr lines
        are kept for the failure event (`hook_tail`)."""
        if not outs.key or self.link is None or self.link.lost:
            then()
            return
        self._drains[outs.key] = then
        self.link.send({"t": "hook_drain", "key": outs.key})

    def hook_tail(self, inst: Instance, hook: str, n: int = 10) -> list[str]:
        """The last stderr lines a hook of the instance wrote (for its failure event)."""
        marker = f"[hook {hook}] "
        lines = [x for x in self.hook_tails.get(inst.name, []) if x.startswith(marker)][-n:]
        return [x[len(marker):] for x in lines]

    def exit_data(self, inst: Instance) -> dict[str, Any]:
        """Extra data of an instance's `exit` event: its last stderr lines."""
        if inst.spec.logs.tail_lines <= 0:
            return {}
        return {"stderr_tail": self.err_tail.get(inst.name, [])[-inst.spec.logs.tail_lines:]}

    def status_fields(self, inst: Instance) -> dict[str, Any]:
        """What the log hub adds to an instance's status record: its counters and the last
        line it wrote to stderr before its last exit (shown by `herder status` for a failed
        instance; the keeper sends it with the exit record)."""
        tail = self.err_tail.get(inst.name)
        return {"logs": self.stats(inst.name), "last_stderr": tail[-1] if tail else None}

    def stats(self, name: str) -> dict[str, Any]:
        slot, sinks = self.slots.get(name, (-1, {}))
        c = self.counters
        if c is None or slot < 0:
            return {"dropped_bytes": 0, "unwritten_bytes": 0, "written_bytes": 0, "files": sorted(sinks)}
        return {"dropped_bytes": c.get(slot, DROPPED),
                "unwritten_bytes": sum(c.get(s, UNWRITTEN) for s in sinks.values()),
                "written_bytes": sum(c.get(s, WRITTEN) for s in sinks.values()),
                "files": sorted(sinks)}

    # ---- operator actions and views ---------------------------------------------------------------

    def reopen(self) -> None:
        """SIGUSR1 / `herder logs --reopen`: the keeper reopens every file at its path."""
        if self.link is not None:
            self.link.send({"t": "reopen"})

    def write_own(self, line: bytes) -> None:
        """One line for herder.log (written by the keeper's writer thread)."""
        if self.link is None or self.link.lost:
            self.owned.append(line)
            del self.owned[:-1000]
            return
        self.link.send({"t": "own", "lines": [line.decode("utf-8", "surrogateescape")]})

    def herder_line(self, ts: float, instance: str, kind: str, message: str) -> None:
        """One of herder's own events for the keeper's stdout/stderr output (herder.logs._stdio);
        kept until the keeper knows that output (`set_up`)."""
        msg = {"t": "herder_line", "ts": ts, "instance": instance, "kind": kind, "message": message}
        if self.link is None or self.link.lost or self.early is not None:
            if self.early is not None:
                self.early.append(msg)
                del self.early[:-1000]
            return
        self.link.send(msg)

    def set_up(self) -> None:
        """The keeper has its settings (the setup message): herder's lines kept so far go out."""
        early, self.early = self.early or [], None
        for msg in early:
            if self.link is not None:
                self.link.send(msg)

    async def tail(self, names: Iterable[str] | None, n: int) -> list[Record]:
        """The last n lines across these instances (all when None), in time order."""
        if self.link is None or self.link.lost:
            return []
        rid = next(self._ids)
        fut: asyncio.Future[list[Record]] = asyncio.get_running_loop().create_future()
        self._tails[rid] = fut
        self.link.send({"t": "tail", "id": rid, "names": list(names) if names is not None else None, "n": n})
        try:
            async with asyncio.timeout(10):
                return await fut
        finally:
            self._tails.pop(rid, None)

    async def follow(self, names: Iterable[str] | None, tail: int = 10, after: int = -1) -> AsyncIterator[Record]:
        """The last `tail` lines (or every kept one after line `after`), then every new line."""
        if self.link is None or self.link.lost:
            return
        fid = next(self._ids)
        f = self._follows[fid] = _Follow()
        self.link.send({"t": "follow", "id": fid, "names": list(names) if names is not None else None,
                        "tail": tail, "after": after})
        try:
            while self.link is not None and not self.link.lost:
                await f.ready.wait()
                f.ready.clear()
                skipped, f.skipped = f.skipped, 0
                if skipped:
                    note = f"[herder: follower too slow, {skipped} lines skipped]"
                    yield Record(time.time(), "", "herder", note.encode())
                batch, f.buf = f.buf, []
                for rec in batch:
                    yield rec
                if f.ended:
                    yield Record(time.time(), "", "herder", f"[herder: the log stream ended: {f.ended}]".encode())
                    return
        finally:
            self._follows.pop(fid, None)
            if self.link is not None:
                self.link.send({"t": "unfollow", "id": fid})

    # ---- what the keeper says -------------------------------------------------------------------

    def on_message(self, msg: dict[str, Any]) -> bool:
        """A message for the hub; False when it is not one."""
        t = msg.get("t")
        if t == "rec":
            f = self._follows.get(int(msg["id"]))
            if f is not None:
                recs = [unpack(x) for x in msg["r"]]
                room = FOLLOW_BACKLOG - len(f.buf)
                if room < len(recs):
                    f.skipped += len(recs) - max(room, 0)
                    recs = recs[:max(room, 0)]
                f.buf.extend(recs)
                f.skipped += int(msg.get("skipped", 0))
                f.ready.set()
            return True
        if t == "follow_end":       # the keeper could not follow: the stream ends, said
            f = self._follows.get(int(msg["id"]))
            if f is not None:
                f.ended = str(msg.get("error") or "the keeper ended it")
                f.ready.set()
            return True
        if t == "tailed":
            fut = self._tails.get(int(msg["id"]))
            if fut is not None and not fut.done():
                fut.set_result([unpack(x) for x in msg["r"]])
            return True
        if t == "hook_drained":
            then = self._drains.pop(int(msg["key"]), None)
            self.hook_tails[str(msg.get("name", ""))] = [str(x) for x in msg.get("tail", [])]
            if then is not None:
                then()
            return True
        if t == "event":
            self.events.emit(str(msg.get("instance", "")), str(msg["kind"]), str(msg["message"]),
                             dict(msg.get("data") or {}))
            return True
        return False

    def attach(self, link: KeeperLink, counters: Counters) -> None:
        self.link, self.counters = link, counters
        owned, self.owned = self.owned, []
        if owned:
            link.send({"t": "own", "lines": [x.decode("utf-8", "surrogateescape") for x in owned]})

    def kept(self) -> dict[str, tuple[int, list[int], list[dict[str, Any]]]]:
        return self.pipes

