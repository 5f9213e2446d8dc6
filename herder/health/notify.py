"""$NOTIFY_SOCKET served by herder: programs built for systemd's sd_notify work unchanged.

One AF_UNIX datagram socket per supervisor ({state_dir}/notify.sock, or an abstract
address when that path is too long for sun_path). SO_PASSCRED makes the kernel attach
the sender's credentials (SCM_CREDENTIALS) to every datagram, so the sender is known by
pid, not by what it claims. A pid is mapped to an instance by, in order: being a main
pid; its cgroup v2 path (when the instance has a cgroup); its ancestry (/proc PPid walk,
bounded); the instance cookie in its environment (a child re-parented to herder after
its parent exited). Messages from any other process are dropped with a counted warning.

Parsing is pure (herder.core.sdnotify); what each message does is in `Monitor.notified`
(herder.health.monitor), which owns the instance-facing decisions.
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

if TYPE_CHECKING:
    from herder.runtime.supervisor import Supervisor

_UCRED = struct.Struct("3i")   # pid, uid, gid
_MAX_PATH = 100
BATCH = 256                     # datagrams read per wake-up; the rest wait for the next one


class NotifyServer:
    """Receives datagrams and hands (instance name, messages) to `deliver`."""

    def __init__(self, sup: Supervisor, deliver: Callable[[str, int, list[sdnotify.Message]], None]) -> None:
        self.sup = sup
        self.deliver = deliver
        self.sock: socket.socket | None = None
        self.address = ""          # the NOTIFY_SOCKET value children get
        self._path: Path | None = None
        self.garbage = 0           # datagrams ignored: unparsable, oversized, no credentials
        self.strangers = 0         # datagrams from processes that belong to no instance
        self.received = 0

    # ---- lifetime ---------------------------------------------------------------------

    def open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        path = self.sup.config.state_dir / "notify.sock"
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
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self.sup.hooks.exited.insert(0, self._before_exit)

    def close(self) -> None:
        if self._before_exit in self.sup.hooks.exited:
            self.sup.hooks.exited.remove(self._before_exit)
        if self.sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()

    # ---- receiving ----------------------------------------------------------------------

    def _before_exit(self, inst: object, pid: int) -> None:
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
        if flags & socket.MSG_TRUNC or len(data) > sdnotify.MAX_DATAGRAM:
            self._garbage(pid, f"oversized datagram (more than {sdnotify.MAX_DATAGRAM} bytes)")
            return
        if not pid:
            self._garbage(pid, "no sender credentials")
            return
        name = self.owner(pid)
        if name is None:
            self.strangers += 1
            self._warn(f"notify socket: message from pid {pid}, which belongs to no instance; ignored "
                       f"({self.strangers} so far)", {"pid": pid, "count": self.strangers})
            return
        try:
            messages = sdnotify.parse(data)
        except sdnotify.Garbage as e:
            self._garbage(pid, str(e), name)
            return
        self.deliver(name, pid, messages)

    def _garbage(self, pid: int | None, why: str, name: str = "") -> None:
        self.garbage += 1
        self._warn(f"notify socket: ignored a datagram from pid {pid}: {why} ({self.garbage} ignored so far)",
                   {"pid": pid, "count": self.garbage}, name)

    def _warn(self, message: str, data: dict[str, object] | None = None, name: str = "") -> None:
        self.sup.events.emit(name, "notify_warning", message, dict(data or {}))

    # ---- who sent it ----------------------------------------------------------------------

    def owner(self, pid: int) -> str | None:
        """The instance `pid` belongs to: its main process or a descendant; else None."""
        mains = {inst.pid: name for name, inst in self.sup.instances.items() if inst.pid is not None}
        if pid in mains:
            return mains[pid]
        name = self._by_cgroup(pid)
        if name is not None:
            return name
        cur = pid
        for _ in range(64):
            cur = _ppid(cur) or 0
            if cur <= 1 or cur == os.getpid():
                break
            if cur in mains:
                return mains[cur]
        cookie = _cookie(pid)
        if cookie is not None:
            for name, p in self.sup.procs.items():
                if p.cookie == cookie and self.sup.instances[name].pid is not None:
                    return name
        return None

    def _by_cgroup(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                v2 = next((line[3:].strip() for line in f if line.startswith("0::")), None)
        except OSError:
            return None
        if not v2:
            return None
        for name, p in self.sup.procs.items():
            if p.cgroup is not None and str(p.cgroup.path).endswith(v2) and v2.rsplit("/", 1)[-1] == name:
                return name
        return None


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cookie(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"HERDER_INSTANCE_ID="):
                    return item.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        return None
    return None
