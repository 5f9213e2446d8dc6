"""The control component: everything the API needs, living as long as the supervisor.

Entered by the supervisor before any service starts (so the socket answers while
services come up) and exited after the last one stopped. It owns:

- the listeners (Unix socket, optional TCP with a bearer token),
- the event numbering, an in-memory ring of recent events, the SQLite journal, and the
  queues of clients following `/v1/events?follow=1`,
- the operators' intent (instances stopped by hand stay stopped across restarts),
- long operations (rolling restarts, reloads) as tasks it owns, so they outlive the
  request that started them but never the supervisor (cancelled and awaited on exit),
- SIGHUP = reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herder.config import Config, socket_too_long
from herder.control import registry
from herder.control.listener import Listener
from herder.control.server import Router
from herder.core.events import Held
from herder.errors import ConfigError, HerderError
from herder.runtime.events import LIVE_ONLY, Event
from herder.runtime.ports import Host
from herder.store.intent import Intent
from herder.store.journal import Journal, JournalUnusable

RING = 2000
FOLLOW_QUEUE = 10000


@dataclass(frozen=True)
class ControlOptions:
    socket_group: str | None = None      # overrides [herder] socket_group
    install_sighup: bool = True


def socket_path(state_dir: Path) -> Path:
    return state_dir / "herder.sock"


class Control:
    def __init__(self, sup: Host, options: ControlOptions | None = None) -> None:
        self.sup = sup
        self.options = options or ControlOptions()
        self.started = time.time()
        self.router = Router(registry.COMMANDS)
        self.listeners: list[Listener] = []
        self.ring: deque[dict[str, Any]] = deque(maxlen=RING)
        self.followers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.next_id = self.first_id = 1
        self.last_journaled = 0   # highest id handed to the journal (live-only events are not)
        self.metrics_registry: Any = None
        self.journal: Journal | None = None
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._commit_lock = threading.Lock()
        self._commit_upto = 0
        self._commit_pending = False
        self._undo_sighup: Callable[[], None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._drained: asyncio.Event | None = None
        self._unsub: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        too_long = socket_too_long(sup.config.state_dir)
        if too_long:   # refused before anything starts (`herder check` warns of it)
            raise ConfigError([f"{sup.config.path}: herder.state_dir: {too_long}"])
        # read in __aenter__, once the supervisor has checked and locked state_dir
        self.intent = Intent(sup.config.state_dir / "intent.json")
        self.problems: list[str] = []      # state that could not be trusted, for `status` (/v1/health)
        self.reloading = False
        # events from before the journal opens (start-up: run.json, leftovers) are journalled too
        self._early: list[Event] = []
        self._unsub_early = sup.events.subscribe(self._early.append)

    # ---- lifetime ----------------------------------------------------------------------

    async def __aenter__(self) -> Control:
        cfg = self.sup.config
        self._loop = asyncio.get_running_loop()
        tcp = _tcp_settings(cfg)  # raises ConfigError before anything is opened
        problems = await self._open_journal()
        self.intent.load()
        self.sup.post(Held(frozenset(self.intent.held)))   # the supervisor leaves these down at start-up
        self._unsub = self.sup.events.subscribe(self._on_event)
        self._unsub_early()
        for ev in self._early:
            self._on_event(ev)
        self._early = []
        for problem in problems + self.intent.problems:
            self.sup.events.emit("", "state_problem", f"herder: {problem}", {})
        if self.intent.problems:   # both copies again (the core has not applied Held yet: save what was read)
            await asyncio.to_thread(self.intent.save, self.intent.snapshot())
        try:
            group = self.options.socket_group or cfg.herder.socket_group
            gid = _group_id(group) if group else None
            unix = Listener(self, self.router, allow_gid=gid)
            path = socket_path(cfg.state_dir)
            try:
                await unix.open_unix(str(path), 0o660 if gid is not None else 0o600, gid)
            except OSError as e:   # the config check catches a path too long; this is the rest (EACCES …)
                raise HerderError(f"cannot serve the API on {path}: {e.strerror or e}") from None
            self.listeners.append(unix)
            if tcp is not None:
                host, port, token = tcp
                lst = Listener(self, self.router, token=token, allow_uids=set())
                await lst.open_tcp(host, port)
                self.listeners.append(lst)
        except BaseException:
            await self._close()
            raise
        if self.options.install_sighup:
            from herder.runtime import signals

            self._undo_sighup = signals.install(self._loop, signal.SIGHUP, self._on_sighup)
        return self

    async def _open_journal(self) -> list[str]:
        """Open the journal (off the loop: it checks the file); problems to report. Without a
        usable journal herder goes on: events live in the ring only (RING of them)."""
        cfg = self.sup.config
        try:
            self.journal = await asyncio.to_thread(Journal, cfg.state_dir / "journal.db", cfg.herder.journal_max_age,
                                                   cfg.herder.journal_max_rows)
        except JournalUnusable as e:
            self.journal = None
            return [str(e)]
        self.next_id = self.first_id = self.journal.last_id() + 1
        self.last_journaled = self.next_id - 1
        self.journal.on_error = self._journal_failed_threadsafe
        self.journal.start(self._committed_threadsafe)
        return list(self.journal.problems)

    def _journal_failed_threadsafe(self, message: str) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.sup.events.emit, "", "journal_error", message, {})

    async def past_events(self, *, before: int, since: float | None, instances: set[str] | None,
                          limit: int) -> list[dict[str, Any]]:
        """The latest `limit` events before id `before`: from the journal, or from the ring
        when herder runs without one (or it cannot be read now)."""
        from herder.store.journal import query

        if self.journal is not None:
            await self.synced(before - 1)
            with contextlib.suppress(JournalUnusable):
                return await asyncio.to_thread(query, self.journal.path, before=before, since=since,
                                               instances=instances, limit=limit)
        rows = [e for e in self.ring if e["id"] < before and (since is None or e["ts"] >= since)
                and (instances is None or e["instance"] in instances)]
        return rows[-limit:] if limit else []

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        undo = getattr(self, "_undo_sighup", None)
        if undo is not None:
            self._undo_sighup = None
            undo()
        for q in list(self.followers):
            q.put_nowait(None)
        if self.followers:   # let streams deliver the last events (herder's own exit) before closing
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await self._drained.wait()
        for lst in self.listeners:
            await lst.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path(self.sup.config.state_dir).unlink()
        self._closing = True
        for t in list(self._jobs):
            t.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
        self._unsub_early()
        if self._unsub is not None:
            self._unsub()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
        for _, fut in self._commit_waiters:
            if not fut.done():
                fut.set_result(None)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a long operation owned by the component (survives its request)."""
        if self._closing:
            coro.close()
            raise RuntimeError("herder is shutting down")
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print_err(f"herder: background operation failed: {task.exception()!r}")

    # ---- events ---------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        """Every event to the ring and live followers; to the journal unless LIVE_ONLY."""
        if ev.kind in ("state_problem", "journal_error") and len(self.problems) < 50:
            self.problems.append(ev.message.removeprefix("herder: "))
        d = ev.as_dict()
        d["id"] = self.next_id
        self.next_id += 1
        self.ring.append(d)
        if self.journal is not None and ev.kind not in LIVE_ONLY:
            self.journal.put(d["id"], d)
            self.last_journaled = d["id"]
        for q in list(self.followers):
            if q.qsize() >= FOLLOW_QUEUE:   # a client that stopped reading: end its stream
                self.followers.discard(q)
                q.put_nowait(None)
            else:
                q.put_nowait(d)

    def _committed_threadsafe(self, upto: int) -> None:
        # one wake-up in flight at most: the journal thread commits far more often than the
        # loop may look, and every call_soon_threadsafe costs a byte in the loop's self-pipe
        # (herder.runtime.signals says why that pipe must not fill)
        with self._commit_lock:
            self._commit_upto = max(self._commit_upto, upto)
            if self._commit_pending:
                return
            self._commit_pending = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._committed_latest)

    def _committed_latest(self) -> None:
        with self._commit_lock:
            self._commit_pending = False
            upto = self._commit_upto
        self._committed(upto)

    def _committed(self, upto: int) -> None:
        keep = []
        for want, fut in self._commit_waiters:
            if want <= upto:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((want, fut))
        self._commit_waiters = keep

    async def synced(self, upto: int, timeout: float = 10.0) -> None:
        """Wait until the journal holds every event with id ≤ upto (bounded)."""
        upto = min(upto, self.last_journaled)   # live-only events never reach it
        if self.journal is None or upto <= self.journal._written or upto <= self.journal.last_id():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit_waiters.append((upto, fut))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await fut

    def follow(self) -> asyncio.Queue[dict[str, Any] | None]:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.followers.add(q)
        return q

    def unfollow(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.followers.discard(q)
        if not self.followers and self._drained is not None:
            self._drained.set()

    def operator(self, peer: Any, action: str, targets: list[str], extra: str = "") -> None:
        who = f"uid {peer.uid}" if peer.uid is not None else "tcp client"
        what = f"{action} {' '.join(targets)}".strip()
        self.sup.events.emit("", "operator", f"{who}: {what}{extra}",
                             {"uid": peer.uid, "pid": peer.pid, "action": action, "targets": targets})

    async def save_intent(self) -> None:
        """Persist the instances held down by hand (the core's World.held) when they changed."""
        held = set(self.sup.world.held)
        if held != self.intent.held:
            self.intent.held = held
            await asyncio.to_thread(self.intent.save, self.intent.snapshot())

    def journal_failures(self) -> int:
        """Events the journal could not write (a full or broken disk): they are missing
        from `herder events` and the API's history (status, /v1/health, /metrics show it)."""
        return self.journal.failures if self.journal is not None else 0

    # ---- reload on SIGHUP -------------------------------------------------------------------

    def _on_sighup(self) -> None:
        from herder.control.reload import reload_from_signal

        with contextlib.suppress(RuntimeError):
            self.spawn(reload_from_signal(self))


def _group_id(name: str) -> int:
    import grp

    try:
        return grp.getgrnam(name).gr_gid if not name.isdigit() else int(name)
    except KeyError:
        raise ConfigError([f"socket_group: no group {name!r} on this machine; expected an existing group"]) from None


def _tcp_settings(cfg: Config) -> tuple[str, int, str] | None:
    """(host, port, token) for the TCP listener; refuses a listener without a token."""
    spec = cfg.herder.api_tcp
    if not spec:
        return None
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) < 65536):
        raise ConfigError([f"{cfg.path}: herder.api_tcp: expected \"HOST:PORT\"; got {spec!r}"])
    token = os.environ.get("HERDER_API_TOKEN", "").strip()
    if cfg.herder.api_token_file:
        path = Path(cfg.herder.api_token_file)
        if not path.is_absolute():
            path = cfg.path.resolve().parent / path
        token = _read_token(cfg.path, path)
    if len(token) < 16:
        raise ConfigError([f"{cfg.path}: herder.api_tcp is set but there is no bearer token of at least 16 "
                           "characters; expected herder.api_token_file (or $HERDER_API_TOKEN). Refusing to "
                           "serve the API on TCP without one."])
    return host.strip("[]") or "127.0.0.1", int(port), token


def _read_token(config: Path, path: Path) -> str:
    """The bearer token, from a file checked as ssh checks a private key: a regular file of
    herder's user (or root) that no one else may read or write."""
    import stat

    where = f"{config}: herder.api_token_file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ConfigError([f"{where}: cannot read {path}: {e.strerror}"]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError([f"{where}: {path} is not a regular file; expected a file holding the token"])
        me = os.geteuid() if hasattr(os, "geteuid") else st.st_uid    # Windows: the ACL decides
        if st.st_uid not in (0, me):
            raise ConfigError([f"{where}: {path} belongs to uid {st.st_uid}; expected a file of herder's user "
                               f"(uid {me}) or root"])
        if st.st_mode & 0o077 and hasattr(os, "geteuid"):
            raise ConfigError([f"{where}: {path} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                               f"anyone who reads it controls herder. Expected `chmod 600 {path}`"])
        return os.read(fd, 4096).decode(errors="replace").strip()
    finally:
        os.close(fd)


def print_err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
