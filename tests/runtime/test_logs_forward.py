"""Forwarding against sockets the test opens: journald's native protocol, syslog on a Unix
socket and over UDP; the Windows Event Log through a fake at the pywin32 seam (not run on
Windows here: the real API is only reachable there)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from herder.logs._forward import EventLogForwarder, JournaldForwarder, SyslogForwarder, journal_fields


def parse_journal(d: bytes) -> dict[str, bytes]:
    out, i = {}, 0
    while i < len(d):
        nl = d.index(b"\n", i)
        head = d[i:nl]
        if b"=" in head:
            k, _, v = head.partition(b"=")
            out[k.decode()] = v
            i = nl + 1
        else:
            size = struct.unpack("<Q", d[nl + 1:nl + 9])[0]
            out[head.decode()] = d[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
    return out


def dgram_server(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(10)
    return s


def test_journald_native_protocol(tmp_path: Path) -> None:
    srv = dgram_server(tmp_path / "journal.sock")
    fwd = JournaldForwarder(str(tmp_path / "journal.sock"))
    fwd.send("web", "web.1", "stderr", b"boom", 1.5)
    fwd.send("web", "web.1", "stdout", b"multi\nline \xff", 1.5)
    first, second = parse_journal(srv.recv(65536)), parse_journal(srv.recv(65536))
    assert first == {"MESSAGE": b"boom", "PRIORITY": b"3", "SYSLOG_IDENTIFIER": b"web", "HERDER_INSTANCE": b"web.1",
                     "HERDER_STREAM": b"stderr", "SYSLOG_TIMESTAMP": b"1500000"}
    assert second["MESSAGE"] == b"multi\nline \xff" and second["PRIORITY"] == b"6"
    assert fwd.sent == 2 and fwd.dropped == 0
    fwd.close()
    srv.close()


def test_journal_fields_binary_encoding() -> None:
    assert journal_fields({"A": b"x\ny"}) == b"A\n" + struct.pack("<Q", 3) + b"x\ny\n"


def test_missing_socket_is_counted_not_raised(tmp_path: Path) -> None:
    fwd = JournaldForwarder(str(tmp_path / "absent.sock"))
    fwd.send("web", "web", "stdout", b"lost", 0.0)
    assert fwd.dropped == 1 and fwd.error and "absent.sock" in fwd.error


def test_syslog_unix_socket_rfc3164(tmp_path: Path) -> None:
    srv = dgram_server(tmp_path / "log")
    fwd = SyslogForwarder(str(tmp_path / "log"))
    fwd.send("web", "web.0", "stderr", b"disk on fire", 0.0)
    msg = srv.recv(4096)
    assert msg.startswith(b"<27>") and msg.endswith(b" web.0: disk on fire")
    fwd.close()
    srv.close()


def test_syslog_udp_rfc5424() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(10)
    port = srv.getsockname()[1]
    fwd = SyslogForwarder(f"127.0.0.1:{port}")
    fwd.send("api", "api", "stdout", b"hello", 1714564800.5)
    msg = srv.recv(4096)
    assert msg.startswith(b"<30>1 2024-05-01T12:00:00.500Z ")
    assert msg.endswith(b"stdout - hello")
    fwd.close()
    srv.close()


class FakeEventLog:
    """Stands in for win32evtlogutil (the seam); the real API exists only on Windows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, list[str]]] = []

    def ReportEvent(self, app: str, event_id: int, eventType: int, strings: list[str]) -> None:
        self.calls.append((app, event_id, eventType, strings))


def test_eventlog_through_the_pywin32_seam() -> None:
    api = FakeEventLog()
    fwd = EventLogForwarder(api)
    fwd.send("web", "web.0", "stderr", b"crash \xff", 0.0)
    fwd.send("web", "web.0", "stdout", b"ok", 0.0)
    assert api.calls == [("herder-web", 1, 1, ["web.0: crash \ufffd"]), ("herder-web", 1, 4, ["web.0: ok"])]
