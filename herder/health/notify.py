"""$NOTIFY_SOCKET served by herder: programs built for systemd's sd_notify work unchanged.

One AF_UNIX datagram socket per supervisor ({state_dir}/notify.sock, or an abstract
address when that path is too long for sun_path). SO_PASSCRED makes the kernel attach
the sender's credentials (SCM_CREDENTIALS) to every datagram, so the sender is known by
pid, not by what it claims. A pid is mapped to an instance by, in order: being a main
pid; its cgroup v2 path (when the instance has a cgroup); its ancestry (/proc PPid walk,
bounded); the instance cookie in its environment (a child re-parented to herder after
its parent exited). Messages from any other process are dropped with a counted warning.

Parsing is pure (herder.core.sdnotify). This adapter only turns each datagram into one
typed event for the core (herder.core.events.Notified), with the facts only I/O can give
(does a MAINPID= belong to the instance, is its parent herder, what an ERRNO= is called);
what each message does, and in which state it means anything, the core decides.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from herder.core import sdnotify
from herder.core.events import (
    Event,
    Notice,
    Notified,
    NotifyErrno,
    NotifyExtend,
    NotifyMainPid,
    NotifyReady,
    NotifyReloading,
    NotifyStatus,
    NotifyStopping,
    NotifyWatchdog,
)
from herder.process import tree

if TYPE_CHECKING:
    from herder.core.world import World
    from herder.runtime.events import EventBus
    from herder.runtime.processes import Processes

_UCRED = struct.Struct("3i")   # pid, uid, gid
_MAX_PATH = 100
BATCH = 256                     # datagrams read per wake-up; the rest wait for the next one
EARLY = 64                      # datagrams kept per instance that spoke before herder knew its pid


class NotifyServer:
    """Receives datagrams, tells who sent them, and posts them to the core as Notified."""

    def __init__(self, state_dir: Path, world: World, procs: Processes, post: Callable[[Event], None],
                 events: EventBus) -> None:
        self.state_dir = state_dir
        self.world = world
        self.procs = procs
        self.post = post
        self.events = events
        self.sock: socket.socket | None = None
        self.address = ""          # the NOTIFY_SOCKET value children get
        self._path: Path | None = None
        self.garbage = 0           # datagrams ignored: unparsable, oversized, no credentials
        self.strangers = 0         # datagrams from processes that belong to no instance
        # a child whose spawn the keeper has not answered yet can speak already (a fast
        # READY=1 under load): its datagrams wait for the answer, then go in after Spawned
        self._early: dict[str, list[tuple[int, bytes, int]]] = {}   # (pid, datagram, recvmsg flags)
        self.received = 0
        self.keep = False          # the next decision process takes the socket over: leave its path
        # fds kept with the keeper (herder.runtime.supervisor): the socket outlives this
        # process, so a datagram sent while herder restarts waits in it for the next one
        self.take_stored: Callable[[str], int | None] = lambda name: None
        self.store: Callable[[str, int], None] = lambda name, fd: None

    # ---- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> NotifyServer:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close(unlink=not self.keep)

    def env(self, name: str) -> dict[str, str]:
        """What an instance's environment gets: the socket, and WATCHDOG_USEC with a watchdog."""
        out = {"NOTIFY_SOCKET": self.address}
        watchdog = self.world.instances[name].spec.health.watchdog
        if watchdog:
            out["WATCHDOG_USEC"] = str(int(watchdog * 1_000_000))
        return out

    def open(self) -> None:
        kept = self.take_stored("notify")
        if kept is not None:
            sock = socket.socket(fileno=kept)
            sock.setblocking(False)
            name = sock.getsockname()
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            if name.startswith("\0"):
                self.address = "@" + name[1:]
            else:
                self._path, self.address = Path(name), name
            self.sock = sock
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        path = self.state_dir / "notify.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(str(path))) <= _MAX_PATH:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sock.bind(str(path))
            os.chmod(path, 0o666)   # children may run as other users; the credentials decide
            self._path, self.address = path, str(path)
        else:
            name = f"herder-{os.getpid()}-{id(self):x}"
            sock.bind("\0" + name)
            self.address = "@" + name
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock = sock
        self.store("notify", sock.fileno())
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self.procs.before_exit.append(self._before_exit)
        self.procs.after_answer.append(self._answered)

    def close(self, unlink: bool = True) -> None:
        if self._before_exit in self.procs.before_exit:
            self.procs.before_exit.remove(self._before_exit)
        if self._answered in self.procs.after_answer:
            self.procs.after_answer.remove(self._answered)
        if self.sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        if self._path is not None and unlink:
            with contextlib.suppress(OSError):
                self._path.unlink()

    # ---- receiving ----------------------------------------------------------------------

    def _before_exit(self) -> None:
        """A main process exited: read what is queued on the socket first, as systemd does
        (its notify source outranks SIGCHLD). A daemon that hands over with MAINPID= and
        exits at once may be reaped before its datagram is read; read after, the hand-over
        would come too late and the instance's end would be reported instead."""
        if self.sock is not None:
            self._readable()

    def _readable(self) -> None:
        assert self.sock is not None
        for _ in range(BATCH):
            try:
                data, anc, flags, _ = self.sock.recvmsg(sdnotify.MAX_DATAGRAM + 1, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._warn(f"notify socket: receive failed: {e}")
                return
            self.received += 1
            try:
                self._one(data, anc, flags)
            except Exception as e:  # noqa: BLE001 - never let a datagram stop supervision
                self._warn(f"notify socket: datagram ignored after an internal error: {e!r}")

    def _one(self, data: bytes, anc: list[tuple[int, int, bytes]], flags: int) -> None:
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                pid = _UCRED.unpack_from(payload)[0]
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for fd in array.array("i", payload[:len(payload) - len(payload) % 4]):
                    os.close(fd)   # FDSTORE is not supported: never leak passed fds
        name = self.owner(pid) if pid else None
        if name is None and pid:
            early = self.procs.spawning(pid)
            kept = self._early.setdefault(early, []) if early is not None else None
            if kept is not None and len(kept) < EARLY:   # judged once the spawn is answered, in order
                kept.append((pid, data, flags))
                return
        self._judge(name, pid, data, flags)

    def _judge(self, name: str | None, pid: int | None, data: bytes, flags: int) -> None:
        if flags & socket.MSG_TRUNC or len(data) > sdnotify.MAX_DATAGRAM:
            self._garbage(pid, f"oversized datagram (more than {sdnotify.MAX_DATAGRAM} bytes)")
            return
        if not pid:
            self._garbage(pid, "no sender credentials")
            return
        if name is None:
            self._stranger(pid)
            return
        self._deliver(name, pid, data)

    def _stranger(self, pid: int) -> None:
        self.strangers += 1
        self._warn(f"notify socket: message from pid {pid}, which belongs to no instance; ignored "
                   f"({self.strangers} so far)", {"pid": pid, "count": self.strangers})

    def _answered(self, name: str, main: int | None) -> None:
        """The keeper answered `name`'s spawn (Spawned is posted): what its process said
        before goes in now, in order; a failed spawn's, or a process that is not the new
        main process or one of its descendants, is a stranger's."""
        for pid, data, flags in self._early.pop(name, []):
            ours = main is not None and (pid == main or main in tree.ancestors(pid))
            self._judge(name if ours else None, pid, data, flags)

    def _deliver(self, name: str, pid: int, data: bytes) -> None:
        try:
            messages = sdnotify.parse(data)
        except sdnotify.Garbage as e:
            self._garbage(pid, str(e), name)
            return
        notices = tuple(n for n in (self._notice(name, m) for m in messages) if n is not None)
        if notices:
            self.post(Notified(name, notices))

    def _notice(self, name: str, msg: sdnotify.Message) -> Notice | None:
        """One message as the core's typed notice (None: a message herder ignores, as systemd does)."""
        key, value = msg.key, msg.value
        if key == "READY" and value == "1":
            return NotifyReady()
        if key == "STATUS":
            return NotifyStatus(value)
        if key == "MAINPID":
            pid = int(value)
            return NotifyMainPid(pid, pid > 1 and self.owner(pid) == name, tree.ppid(pid) != os.getpid())
        if key == "RELOADING" and value == "1":
            return NotifyReloading()
        if key == "STOPPING" and value == "1":
            return NotifyStopping()
        if key == "WATCHDOG" and value in ("1", "trigger"):
            return NotifyWatchdog(trigger=value == "trigger")
        if key == "EXTEND_TIMEOUT_USEC":
            return NotifyExtend(int(value) / 1_000_000)
        if key == "ERRNO":
            return NotifyErrno(int(value), os.strerror(int(value)))
        return None

    def _garbage(self, pid: int | None, why: str, name: str = "") -> None:
        self.garbage += 1
        self._warn(f"notify socket: ignored a datagram from pid {pid}: {why} ({self.garbage} ignored so far)",
                   {"pid": pid, "count": self.garbage}, name)

    def _warn(self, message: str, data: dict[str, object] | None = None, name: str = "") -> None:
        self.events.emit(name, "notify_warning", message, dict(data or {}))

    # ---- who sent it ----------------------------------------------------------------------

    def owner(self, pid: int) -> str | None:
        """The instance `pid` belongs to: its main process or a descendant; else None."""
        mains = self.procs.main_pids()
        if pid in mains:
            return mains[pid]
        name = self._by_cgroup(pid)
        if name is not None:
            return name
        for up in tree.ancestors(pid):
            if up in mains:
                return mains[up]
        cookie = tree.cookie(pid)
        return self.procs.by_cookie(cookie) if cookie is not None else None

    def _by_cgroup(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                v2 = next((line[3:].strip() for line in f if line.startswith("0::")), None)
        except OSError:
            return None
        return self.procs.by_cgroup(v2) if v2 else None
