"""What the keeper does for its decision process: one method per message (`_m_<t>`).

Spawns (the write-ahead: the keeper's spawn is the record), adoption of processes it did
not fork, the state snapshot, stored fds, tails and followers of the capture, a hook's
pipes, acknowledgements of exit records, sd_notify relays, the upgrade's hand-over.
Runs on the keeper's loop thread (herder.keeper.keeper); nothing here blocks.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from herder.errors import SpawnError
from herder.keeper import wire
from herder.keeper.children import Child
from herder.keeper.stopper import tiers_of
from herder.logs._spec import ChannelSpec
from herder.process.spawn import Launch

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper


class Messages:
    def __init__(self, keeper: Keeper) -> None:
        self.k = keeper

    def _m_hello(self, msg: dict[str, Any], fds: list[int]) -> None:
        k = self.k
        dp = k.dp
        assert dp is not None
        dp.hello = dp.last_ping = time.monotonic()
        pending = []
        for what in k.pending:       # kept until acknowledged, like a signal forwarded live
            sid = next(k.sig_ids)
            k.forwarded[sid] = what
            pending.append([sid, what])
        with k._exit_lock:    # an exit reported meanwhile comes after the welcome (or in it)
            welcome: dict[str, Any] = {
                "t": "welcome", "pid": os.getpid(), "gen": dp.gen, "why": k.why,
                "snapshot": {"world": k.snap_world, "instances": k.snap_inst} if k.snap_world is not None
                else None,
                "config": k.config_text, "stored": list(k.stored), "children": k.children.records(),
                "exits": [k.exits[s] for s in sorted(k.exits)], "pending": pending, "notes": k.notes,
                "lost": k.lost, "slots": k.counters.slots, "orphans_reaped": k.children.orphans_reaped,
                "init": k.init, "matched": k.capture.matches(),
            }
            k.pending, k.notes, k.lost = [], [], {}
            # copies: a `store` handled before the outbox is flushed closes the stored fd it replaces
            k._emit(welcome, [os.dup(fd) for fd in (k.counters.fd, *k.stored.values())])
        wanted = {id(ch) for chans in k.capture.current.values() for ch in chans}

        def send_pipes(open_: list[tuple[Any, int]]) -> None:     # reader thread: copies of live fds
            pipes: list[dict[str, Any]] = []
            pipe_fds: list[int] = []
            for ch, fd in open_:
                if id(ch) not in wanted:
                    os.close(fd)
                    continue
                pipes.append({"name": ch.instance, "run": ch.run, "stream": ch.stream, "spec": ch.spec.as_dict()})
                pipe_fds.append(fd)
                if len(pipe_fds) == wire.MAX_FDS - 2:
                    k._emit({"t": "pipes", "pipes": pipes}, pipe_fds)
                    pipes, pipe_fds = [], []
            k._emit({"t": "pipes", "pipes": pipes, "last": 1}, pipe_fds)
        k.capture.pump.dup_open(send_pipes)   # never the reader's live fds: it may close one at any time
        k.why = "restart"

    def _m_setup(self, msg: dict[str, Any], fds: list[int]) -> None:
        """The decision process's settings, once its config is known (after the welcome)."""
        if msg.get("state_dir") and self.k.state_dir != str(msg["state_dir"]):
            self.k.state_dir = str(msg["state_dir"])
        if msg.get("herder_log"):
            from pathlib import Path

            self.k.capture.open_own(Path(msg["herder_log"]))
        if msg.get("console") is not None:
            self.k.opts.console = str(msg["console"])
        if msg.get("names"):
            self._console(list(msg["names"]))

    def _m_herder_line(self, msg: dict[str, Any], fds: list[int]) -> None:
        """One of herder's own events among the services' lines on stderr (a container's logs),
        written by the writer thread like theirs, so that no line cuts another."""
        tap = self.k.console
        if tap is None or not hasattr(tap, "herder_line"):
            return
        data = tap.herder_line(float(msg.get("ts", 0.0)), str(msg.get("instance", "")), str(msg.get("kind", "")),
                               str(msg.get("message", "")))
        self.k.capture.pump.in_writer(lambda: tap.raw("stderr", data))

    def _m_store(self, msg: dict[str, Any], fds: list[int]) -> None:
        name = str(msg["name"])
        old = self.k.stored.pop(name, None)
        if old is not None:
            os.close(old)
        if fds:
            self.k.stored[name] = fds[0]
            wire.close_fds(fds[1:])
            fds.clear()

    def _m_state(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "world" in msg:
            self.k.snap_world = msg["world"]
        for name, blob in (msg.get("inst") or {}).items():
            if blob is None:
                self.k.snap_inst.pop(name, None)
            else:
                self.k.snap_inst[name] = blob

    def _m_config(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.config_text = str(msg["text"])
        if "tiers" in msg:
            self.k.tiers = tiers_of(msg["tiers"])

    def _m_signal_ack(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.forwarded.pop(int(msg["id"]), None)

    def _m_spawn(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Fork and exec an instance; always answered: `spawn_failed` while no child exists,
        `spawned` once one does (whatever fails after the fork is said in the answer: the
        child is in the keeper's table and the decision process records it)."""
        import subprocess

        name, run, rid = str(msg["name"]), int(msg["run"]), msg.get("id")
        streams: list[Any] = []
        specs: list[ChannelSpec] = []
        reads: list[int] = []
        close: list[int] = []
        pos = 0
        try:
            for mode in (msg["out"], msg["err"]):
                if isinstance(mode, dict):
                    r, w = fds[pos], fds[pos + 1]
                    pos += 2
                    specs.append(ChannelSpec.of(mode))
                    reads.append(r)
                    streams.append(w)
                    close.append(w)
                elif mode == "null":
                    streams.append(subprocess.DEVNULL)
                else:
                    streams.append(None)
            launch = Launch.from_wire(msg["launch"])
            child = self.k.children.spawn(name, run, launch, streams[0], streams[1], msg.get("cgroup"),
                                          str(msg.get("cookie", "")), int(msg.get("stop_signal", signal.SIGTERM)),
                                          float(msg.get("stop_timeout", 10.0)))
        except Exception as e:  # noqa: BLE001 - no child exists: the answer says why, whatever it is
            wire.close_fds(fds)
            fds.clear()
            self.k._emit({"t": "spawn_failed", "id": rid, "name": name, "run": run,
                          "error": str(e) if isinstance(e, (SpawnError, OSError)) else f"herder's keeper: {e!r}"})
            return
        # the child exists: from here on it is answered as spawned, whatever fails
        fds.clear()
        wire.close_fds(close)
        answer: dict[str, Any] = {"t": "spawned", "id": rid, "name": name, "run": run, "pid": child.pid,
                                  "start_time": child.start_time, "cgroup": child.cgroup}
        try:
            taken = self.k.capture.add(name, run, specs, reads, watch=msg.get("watch"))
        except Exception as e:  # noqa: BLE001 - the child runs: its output is lost, and said, never its answer
            taken = []
            answer["problem"] = f"its output is not captured: {e}"
        held = {ch.fd for ch in taken}
        wire.close_fds([fd for fd in reads if fd not in held])   # the decision process keeps its copies
        try:
            answer.update(self.k.capture.stats(name))
        except Exception as e:  # noqa: BLE001 - counters are extra: the answer goes without them
            answer.setdefault("problem", f"no byte counters: {e}")
        self.k._emit(answer)

    def _m_move(self, msg: dict[str, Any], fds: list[int]) -> None:
        old = self.k.children.by_pid.get(int(msg["old"]))
        if old is not None:
            self.k._unregister_pidfd(old)
        child = self.k.children.move(str(msg["name"]), int(msg["old"]), int(msg["new"]))
        if child is None or child.own:
            return
        if child.pidfd >= 0:
            self.k.sel.register(child.pidfd, selectors.EVENT_READ, ("pidfd", child.pid))
        else:        # it ended already (or no pidfd here): its end is reported now, status unknown
            pid = child.pid
            self.k.later(0.0, lambda: self.k._foreign_gone(pid))

    def _m_adopt(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Processes the decision process found alive that the keeper did not fork (left by a
        keeper that was killed): follow them by pidfd, and read the pipes it reopened."""
        for raw in msg.get("children", []):
            child = Child.of(raw)
            if child.pid not in self.k.children.by_pid:
                self.k.follow_foreign(child)
        pos = 0
        taken: set[int] = set()
        try:
            for ch in msg.get("pipes", []):
                specs = [ChannelSpec.of(s) for s in ch["specs"]]
                mine = fds[pos:pos + len(specs)]
                pos += len(specs)
                self.k.capture.add(ch["name"], int(ch["run"]), specs, mine)
                taken.update(mine)
        finally:
            fds[:] = [fd for fd in fds if fd not in taken]     # the capture's now; a failure closes the rest

    def _m_hook_out(self, msg: dict[str, Any], fds: list[int]) -> None:
        """The pipes of a hook the decision process spawned: read and write them."""
        try:
            specs = [ChannelSpec.of(x) for x in msg["specs"]]
            if len(specs) != len(fds):
                raise ValueError(f"{len(specs)} stream(s), {len(fds)} fd(s)")
        except (KeyError, ValueError, TypeError) as e:
            wire.close_fds(fds)
            self.k._emit({"t": "event", "instance": str(msg.get("name", "")), "kind": "bug",
                        "message": f"herder: a hook's output cannot be captured ({e})"})
            return
        self.k.capture.add_hook(int(msg["key"]), str(msg["name"]), int(msg["run"]), specs, fds)
        fds.clear()     # the capture's now

    def _m_hook_drain(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Answer once the ended hook's output is written (with its last stderr lines)."""
        key = int(msg["key"])

        def answer(name: str, tail: list[str]) -> None:
            self.k._emit({"t": "hook_drained", "key": key, "name": name, "tail": tail})
        self.k.capture.drain_hook(key, answer)

    def _m_unwatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.capture.unwatch(str(msg["name"]))

    def _m_follow(self, msg: dict[str, Any], fds: list[int]) -> None:
        names = msg.get("names")
        self.k.capture.follow(int(msg["id"]), list(names) if names is not None else None, int(msg.get("tail", 0)),
                            int(msg.get("after", -1)))

    def _m_unfollow(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.capture.unfollow(int(msg["id"]))

    def _m_tail(self, msg: dict[str, Any], fds: list[int]) -> None:
        from herder.logs._spec import pack

        names, n, rid = msg.get("names"), int(msg.get("n", 10)), msg["id"]

        def answer() -> None:   # writer thread: answered whatever happens
            packed: list[Any] = []
            try:
                packed = [pack(r) for r in self.k.capture.tail(list(names) if names is not None else None, n)]
            finally:
                self.k._emit({"t": "tailed", "id": rid, "r": packed})
        self.k.capture.pump.in_writer(answer)

    def _m_reopen(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.capture.reopen()

    def _m_own(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.capture.write_own([str(x).encode("utf-8", "surrogateescape") for x in msg.get("lines", [])])

    def _m_ack(self, msg: dict[str, Any], fds: list[int]) -> None:
        with self.k._exit_lock:
            for seq in msg.get("seqs", []):
                self.k.exits.pop(int(seq), None)
                self.k._acked.add(int(seq))
            if len(self.k._acked) > 4096:     # late timers only ever look at recent ones
                self.k._acked = set(sorted(self.k._acked)[-1024:])

    def _m_notify(self, msg: dict[str, Any], fds: list[int]) -> None:
        text = str(msg.get("text", ""))
        if self.k.dp is not None and "WATCHDOG=1" in text.split("\n"):
            self.k.dp.last_ping = time.monotonic()
            if self.k.watchdog:
                return      # the keeper pings its manager itself (see _ping_manager)
        self.k._manager(text)

    def _m_console(self, msg: dict[str, Any], fds: list[int]) -> None:
        self._console(list(msg.get("names", [])))

    def _m_upgrade(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.k.upgrade = [str(x) for x in msg.get("argv", [])]
        if self.k.dp is not None:
            self.k.dp.handover = True

    def _m_up(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self.k.dp is not None:
            self.k.dp.up = True
        self.k.failures.clear()      # start-up failures are counted in a row
        self.k.ever_up = True
        if self.k._ready_hold >= 0:
            os.close(self.k._ready_hold)
            self.k._ready_hold = -1

    def _m_bye(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self.k.dp is not None:
            self.k.dp.bye = int(msg.get("code", 0))
            self.k.dp.handover = bool(msg.get("handover", False))

    def handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Carry out one message; never raises. A handler removes from `fds` what it takes;
        on a failure the rest is closed, a request is answered (the decision process would
        wait for it) and the failure is an event (`bug`) in herder's journal."""
        t = msg.get("t")
        try:
            handler = getattr(self, f"_m_{t}", None)
            if handler is None:
                raise ValueError(f"unknown message {t!r}")
            handler(msg, fds)
        except Exception as e:  # noqa: BLE001 - a bad message must never take the keeper down, nor go unanswered
            wire.close_fds(fds)
            fds.clear()
            answer = failure_answer(msg, e)
            if answer is not None:
                self.k._emit(answer)
            self.k._emit({"t": "event", "instance": str(msg.get("name") or ""), "kind": "bug",
                          "message": f"herder: the keeper could not carry out {t!r}: {e!r}", "data": {}})
            print(f"herder keeper: message {t!r} failed: {e!r}", file=sys.stderr, flush=True)

    def _console(self, names: list[str]) -> None:
        """The tap that writes to stdout, as opts.console says (made once; later only renamed)."""
        if self.k.console is not None:
            if hasattr(self.k.console, "set_names"):
                self.k.console.set_names(names)
            return
        if self.k.opts.console == "view":
            from herder.logs._console import ConsoleTap

            self.k.console = ConsoleTap(names)
        elif self.k.opts.console in ("text", "json"):
            from herder.logs._stdio import StdioTap

            self.k.console = StdioTap(names, self.k.opts.console)
        else:
            return
        self.k.capture.add_tap(self.k.console)


def failure_answer(msg: dict[str, Any], error: BaseException) -> dict[str, Any] | None:
    """What a request that failed is answered with (None: nothing waits for this message).
    `hello` is not here: without its welcome the decision process's handshake ends (30 s)
    and the keeper starts another one."""
    t = msg.get("t")
    if t == "spawn":
        return {"t": "spawn_failed", "id": msg.get("id"), "name": str(msg.get("name") or ""), "run": msg.get("run"),
                "error": f"herder's keeper: {error!r}"}
    if t == "tail":
        return {"t": "tailed", "id": msg.get("id"), "r": []}
    if t == "hook_drain":
        return {"t": "hook_drained", "key": msg.get("key"), "name": "", "tail": []}
    if t == "follow":
        return {"t": "follow_end", "id": msg.get("id"), "error": f"herder's keeper: {error!r}"}
    return None
