"""The first code a keeper runs after it execs for `herder upgrade`: load the installed
keeper, or, when it cannot, hold everything so that no service is hurt.

Why this exists: the exec replaces the running keeper with whatever is installed on disk
now. The decision process checked that install a moment before (`--can-resume`), but a
package can be half-written, changed again in between, or unable to read the record it
is given. A keeper that dies after the exec takes every service that writes to stdout
with it (SIGPIPE) and orphans the rest. So the old keeper does not exec the new package
directly: it execs the interpreter on *this* file's text, which it read at its own
start-up and hands over in a memfd (the file on disk may be the new version's, or broken).

This file is therefore self-contained: standard library only, no import of herder at
module level. `main` imports the installed keeper and checks that it accepts the record's
version; on success it runs it. On any failure it becomes a holding keeper (`hold`): it
stays the services' parent, reads every pipe and appends the raw bytes to the logs the
record names (no timestamps or rotation: a stop-gap, said loudly on stderr), reaps, and
stops every service in order on SIGTERM/SIGINT. Nothing makes decisions (no restarts, no
API) until an operator runs `herder up` again after `herder down`, or a fixed install
and a restart of the unit.

    python -c BOOT --resume BLOB_FD [--trampoline FD]     (what the old keeper execs)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any


def carry_in_file(ch: dict[str, Any], carry: list[bytes]) -> list[int]:
    """How much of each exported carry the old keeper had written to the file already. A
    record without "in_file" comes from a keeper before whole-line framing of shared files:
    there a raw stream's carry (text, no timestamps, unmarked) was in the file, any other not."""
    got = ch.get("in_file")
    if isinstance(got, list) and len(got) == len(carry):
        return [max(0, min(int(n), len(c))) for n, c in zip(got, carry, strict=True)]
    specs = ch.get("specs") or []
    return [len(c) if i < len(specs) and not specs[i].get("timestamps", True)
            and specs[i].get("format", "text") == "text" and not specs[i].get("marker") else 0
            for i, c in enumerate(carry)]


def _signals(*names: str) -> set[int]:
    return {int(getattr(signal, n)) for n in names if hasattr(signal, n)}    # (imports on Windows too)


_STOP = _signals("SIGTERM", "SIGINT", "SIGPWR")
_HANDLED = _signals("SIGCHLD", "SIGHUP", "SIGUSR1") | _STOP     # blocked across the exec
# the `-c` program the old keeper execs: it runs the text of this file from an inherited memfd
BOOT = ("import os,sys;_f=int(sys.argv[sys.argv.index('--trampoline')+1]);"
        "exec(compile(os.pread(_f,1<<22,0),'herder-keeper-trampoline','exec'))")


def say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"herder keeper (pid {os.getpid()}): {text}", file=sys.stderr, flush=True)


def _record(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    raw: dict[str, Any] = json.loads(b"".join(parts).decode("utf-8", "surrogateescape"))
    return raw


def main(argv: list[str]) -> int:
    blob = int(argv[argv.index("--resume") + 1])
    if "--trampoline" in argv:      # this text's memfd: read; not to be inherited by the next exec
        with contextlib.suppress(OSError, ValueError):
            os.close(int(argv[argv.index("--trampoline") + 1]))
    try:
        raw = _record(blob)
    except (OSError, ValueError) as e:     # nothing to carry on with: the services are on their own
        say(f"upgrade: cannot read the resume record ({e}); the services run on unsupervised")
        return 1
    version = int(raw.get("record", {}).get("v", 0))
    try:
        from herder.keeper import resume
        from herder.keeper.__main__ import main as keeper_main

        accepts = set(getattr(resume, "ACCEPTS", {resume.VERSION}))
        if version not in accepts:
            raise ValueError(f"the installed keeper reads records {sorted(accepts)}, not {version}")
    except BaseException as e:  # noqa: BLE001 - whatever the new install does, the services come first
        hold(raw, f"upgrade: the installed herder cannot take over ({type(e).__name__}: {e})")
        return 1
    try:
        return keeper_main(["--resume", str(blob)])
    except Exception as e:
        started = getattr(sys.modules.get("herder.keeper.keeper"), "RUNNING", False)
        if started:     # it ran: its fds are its own now, the record's numbers mean nothing
            raise
        hold(raw, f"upgrade: the installed keeper failed as it started ({type(e).__name__}: {e})")
        return 1


def hold(raw: dict[str, Any], why: str) -> None:
    """Keep the services alive and logged with the standard library only, until told to stop."""
    rec, fds = raw.get("record") or {}, [int(x) for x in raw.get("fds") or []]
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    got: list[int] = []      # signal numbers, in order
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in _HANDLED:
        signal.signal(sig, lambda signum, frame: got.append(int(signum)))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)      # blocked across the exec: none was lost
    children = {int(c["pid"]): c for c in rec.get("children") or [] if int(c.get("pid", 0)) > 0}
    say(f"{why}. Holding {len(children)} service(s) without a decision process: they keep running and "
        "their output is appended to their logs as is; no restarts, probes or API. Fix the install, then "
        "`herder down` (or SIGTERM to this pid) and `herder up`.")
    sel = selectors.DefaultSelector()
    sel.register(wake_r, selectors.EVENT_READ, None)
    cap = rec.get("capture") or {}
    cap_fds = [fds[int(i)] for i in cap.get("fds", [])]
    pos = 0
    for ch in cap.get("channels", []):
        carries = [base64.b64decode(c) for c in ch.get("carry") or []]
        written = carry_in_file(ch, carries)
        for i, spec in enumerate(ch.get("specs", [])):
            fd = cap_fds[pos]
            pos += 1
            out = _open_sink(spec.get("sink"))
            if out >= 0 and i < len(carries):      # the unfinished line's bytes not in the file yet
                _write(out, carries[i][written[i]:])
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, out)
    api = (rec.get("stored") or {}).get("api")
    if api is not None:     # the API socket: every request is answered 503, saying what happened
        listener = socket.socket(fileno=fds[int(api)])
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ, "api")
    answer = (f"herder's keeper (pid {os.getpid()}) is holding the services after a failed upgrade ({why}); "
              f"no decision process runs. Fix the install; SIGTERM to pid {os.getpid()} (or POST /v1/down) "
              "stops every service")
    stopping: float | None = None
    while True:
        for key, _ in sel.select(0.5 if stopping is not None else None):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                continue
            if key.data == "api":
                with contextlib.suppress(OSError):
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, ["http", b""])
                continue
            if isinstance(key.data, list):
                if _http(sel, key.fileobj, key.data, answer):  # type: ignore[arg-type]
                    got.append(signal.SIGTERM)
                continue
            try:
                data = os.read(key.fd, 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fd)
                os.close(key.fd)
            elif key.data >= 0:
                _write(key.data, data)
        while got:
            signum = got.pop(0)
            if signum in _STOP and stopping is None:
                say("stopping every service")
                stopping = time.monotonic() + max([float(c.get("stop_timeout", 10.0)) for c in children.values()]
                                                  or [0.0])
                for c in children.values():
                    _kill(int(c["pid"]), int(c.get("stop_signal", signal.SIGTERM)))
        _reap(children)
        if stopping is not None and time.monotonic() > stopping:
            for pid in children:
                _kill(pid, signal.SIGKILL)
            stopping = time.monotonic() + 5.0
        if stopping is not None and not children:
            say("every service stopped")
            os._exit(0)


def _http(sel: selectors.BaseSelector, conn: socket.socket, state: list[Any], answer: str) -> bool:
    """Read one request (non-blocking, as it arrives) and answer it 503; True for POST /v1/down."""
    try:
        data = conn.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        data = b""
    state[1] += data
    head, sep, body = state[1].partition(b"\r\n\r\n")
    if data and not sep:
        if len(state[1]) > 65536:
            _close(sel, conn)
        return False
    want = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            want = int(value.strip())
    if data and len(body) < want:
        return False
    down = bytes(head).startswith(b"POST /v1/down ")
    text = json.dumps({"error": answer + ("; stopping every service now" if down else "")}).encode()
    with contextlib.suppress(OSError):
        conn.setblocking(True)
        conn.settimeout(1.0)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(text), text))
    _close(sel, conn)
    return down


def _close(sel: selectors.BaseSelector, conn: socket.socket) -> bool:
    with contextlib.suppress(KeyError, ValueError):
        sel.unregister(conn)
    conn.close()
    return False


def _reap(children: dict[int, Any]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()    # none left that is ours (the rest were never our children)
            return
        if pid == 0:
            return
        c = children.pop(pid, None)
        if c is not None:
            say(f"{c.get('name')} (pid {pid}) exited: {os.waitstatus_to_exitcode(status)}")


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, sig)
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def _open_sink(path: str | None) -> int:
    if not path:
        return -1
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError:
        return -1


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view):]


def source() -> bytes:
    """This file's text, as the running keeper read it at start-up (see the module docstring)."""
    with open(__file__, "rb") as f:
        return f.read()


if __name__ == "__main__":      # run from BOOT (`-c`: the exec'd text is __main__)
    sys.exit(main(sys.argv))
