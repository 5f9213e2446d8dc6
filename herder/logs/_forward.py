"""Forwarding lines to the system's log: journald, syslog, the Windows Event Log.

Each forwarder gets whole lines from the writer thread and must never block it: sockets
are non-blocking and a datagram that does not fit is counted as dropped, not retried.
journald gets its native protocol (fields, binary-safe) on /run/systemd/journal/socket;
syslog gets RFC 3164 on a local socket (what /dev/log daemons expect) and RFC 5424 over
UDP. The Windows Event Log goes through pywin32, imported only when configured; the
`api` seam lets tests pass a fake.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any, Protocol

from herder.units import stamp_ms

JOURNAL_SOCKET = "/run/systemd/journal/socket"
DEV_LOG = "/dev/log"
_FACILITY_DAEMON = 3
_RETRY = 5.0


class Forwarder(Protocol):
    sent: int
    dropped: int
    error: str | None

    def send(self, service: str, instance: str, stream: str, line: bytes, ts: float) -> None: ...
    def close(self) -> None: ...


class _Datagram:
    """A non-blocking datagram socket that reconnects at most every few seconds."""

    def __init__(self, family: int, address: Any) -> None:
        self.family, self.address = family, address
        self.sock: socket.socket | None = None
        self.sent = self.dropped = 0
        self.error: str | None = None
        self._next_try = 0.0

    def _send(self, payload: bytes) -> None:
        if self.sock is None:
            now = time.monotonic()
            if now < self._next_try:
                self.dropped += 1
                return
            self._next_try = now + _RETRY
            try:
                s = socket.socket(self.family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                s.setblocking(False)
                s.connect(self.address)
                self.sock = s
            except OSError as e:
                s.close()
                self.error = f"{self.address}: {e.strerror or e}"
                self.dropped += 1
                return
        try:
            self.sock.send(payload)
            self.sent += 1
            self.error = None
        except BlockingIOError:
            self.dropped += 1
        except OSError as e:
            self.error = f"{self.address}: {e.strerror or e}"
            self.dropped += 1
            self.sock.close()
            self.sock = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def journal_fields(fields: dict[str, bytes]) -> bytes:
    """The journal's native datagram: KEY=value lines, or KEY\\n<le64 size><value>\\n when binary."""
    out = []
    for k, v in fields.items():
        if b"\n" in v:
            out.append(k.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n")
        else:
            out.append(k.encode() + b"=" + v + b"\n")
    return b"".join(out)


class JournaldForwarder(_Datagram):
    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        super().__init__(socket.AF_UNIX, path)

    def send(self, service: str, instance: str, stream: str, line: bytes, ts: float) -> None:
        self._send(journal_fields({
            "MESSAGE": line,
            "PRIORITY": b"3" if stream == "stderr" else b"6",
            "SYSLOG_IDENTIFIER": service.encode(),
            "HERDER_INSTANCE": instance.encode(),
            "HERDER_STREAM": stream.encode(),
            "SYSLOG_TIMESTAMP": str(int(ts * 1e6)).encode(),
        }))


class SyslogForwarder(_Datagram):
    """`syslog` → /dev/log, `syslog:/PATH` → that socket, `syslog:HOST:PORT` → UDP (RFC 5424)."""

    def __init__(self, target: str = "") -> None:
        if not target or target.startswith("/"):
            super().__init__(socket.AF_UNIX, target or DEV_LOG)
            self.remote = False
        else:
            host, _, port = target.rpartition(":")
            host = host.strip("[]")
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            super().__init__(fam, (host, int(port)))
            self.remote = True
        self.hostname = socket.gethostname()

    def send(self, service: str, instance: str, stream: str, line: bytes, ts: float) -> None:
        pri = _FACILITY_DAEMON * 8 + (3 if stream == "stderr" else 6)
        if self.remote:
            stamp = stamp_ms(ts) + "Z"
            head = f"<{pri}>1 {stamp} {self.hostname} {service} {os.getpid()} {stream} - "
        else:
            head = f"<{pri}>{time.strftime('%b %d %H:%M:%S', time.localtime(ts))} {instance}: "
        self._send(head.encode() + line)


class EventLogForwarder:
    """Windows Event Log through pywin32 (win32evtlogutil); `api` is the seam for tests."""

    def __init__(self, api: Any = None) -> None:
        if api is None:
            import win32evtlog  # noqa: F401 - lazy: Windows only
            import win32evtlogutil
            api = win32evtlogutil
        self.api = api
        self.sent = self.dropped = 0
        self.error: str | None = None

    def send(self, service: str, instance: str, stream: str, line: bytes, ts: float) -> None:
        # EVENTLOG_ERROR_TYPE = 1, EVENTLOG_INFORMATION_TYPE = 4
        try:
            self.api.ReportEvent(f"herder-{service}", 1, eventType=1 if stream == "stderr" else 4,
                                 strings=[f"{instance}: {line.decode('utf-8', 'replace')}"])
            self.sent += 1
        except Exception as e:  # noqa: BLE001 - pywin32 raises pywintypes.error; never stop the writer
            self.error = str(e)
            self.dropped += 1

    def close(self) -> None:
        pass


def make_forwarder(target: str) -> Forwarder:
    kind, _, where = target.partition(":")
    if kind == "journald":
        return JournaldForwarder()
    if kind == "syslog":
        return SyslogForwarder(where)
    return EventLogForwarder()
