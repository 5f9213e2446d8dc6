"""The checks themselves: one HTTP request, one TCP connect, one command.

Each check is a coroutine returning (ok, why) and never raising for the probed program's
faults: a refused connection, a 500 or a timeout is a failed check with a reason the
events show ("HTTP 503 from http://127.0.0.1:8000/health"). HTTP is spoken by hand over
asyncio streams (HTTP/1.0, Connection: close; the body is read to its end — the close, or
Content-Length — or to BODY_LIMIT, 1 MiB, whichever comes first) so a probe costs no
thread and no dependency; https does not verify the certificate, as Kubernetes
probes do not (local services use self-signed ones).

Exec checks are started with herder.process.spawn and their exit comes from the
supervisor's reaper (herder.runtime.processes.Processes.watch): a second waitpid() would
race it. (`ready.log` is no check here: the log hub matches the live lines.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import subprocess
import urllib.parse
from collections.abc import Callable

from herder.config.probe_values import split_hostport
from herder.process import spawn as spawner

BODY_LIMIT = 1024 * 1024   # docs/health.md: the body match sees at most this much
Result = tuple[bool, str]


async def http_check(url: str, timeout: float, body: str | None = None) -> Result:
    u = urllib.parse.urlsplit(url)
    host = u.hostname or "127.0.0.1"
    port = u.port or (443 if u.scheme == "https" else 80)
    ctx = None
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            hosthdr = u.netloc.rpartition("@")[2]
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {hosthdr}\r\nUser-Agent: herder-probe\r\n"
                         f"Connection: close\r\n\r\n".encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                return False, f"not an HTTP response from {url}: {status_line[:60]!r}"
            code = int(parts[1])
            if not 200 <= code < 400:
                return False, f"HTTP {code} from {url}"
            if body is None:
                return True, f"HTTP {code}"
            data = await _read_body(reader)
            text = data.partition(b"\r\n\r\n")[2][:BODY_LIMIT].decode("utf-8", "replace")
            if re.search(body, text):
                return True, f"HTTP {code}, body matches"
            return False, f"HTTP {code} from {url} but the body does not match {body!r}"
    except TimeoutError:
        return False, f"no answer from {url} within {timeout:g}s"
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as e:
        return False, f"{url}: {e.strerror if isinstance(e, OSError) and e.strerror else e}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_body(reader: asyncio.StreamReader) -> bytes:
    """The rest of the answer (headers left, then the body) until the server closes
    (HTTP/1.0, Connection: close) or BODY_LIMIT bytes of body are in: one read() returns
    whatever has arrived, often only the headers of a server that sends the body later."""
    data = b"\r\n"   # the status line's end, already read: an answer with no headers is "\r\n" + body
    while True:
        body_at = data.find(b"\r\n\r\n")
        if body_at >= 0:
            m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", data[:body_at])
            want = min(int(m.group(1)), BODY_LIMIT) if m else BODY_LIMIT
            if len(data) - body_at - 4 >= want:   # a server that keeps the connection open despite `close`
                return data
        chunk = await reader.read(64 * 1024)
        if not chunk:
            return data
        data += chunk
        if body_at < 0 and len(data) > BODY_LIMIT + 64 * 1024:  # headers that never end
            return data


async def tcp_check(hostport: str, timeout: float) -> Result:
    host, port = split_hostport(hostport)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"no connection to {hostport} within {timeout:g}s"
    except OSError as e:
        return False, f"{hostport}: {e.strerror or e}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, f"connected to {hostport}"


WatchPid = Callable[[int, Callable[[int], None]], None]


async def exec_check(launch: spawner.Launch, timeout: float, watch_pid: WatchPid) -> Result:
    """Run a command in its own session; exit 0 passes. On timeout its group is killed and
    its exit still awaited (bounded), so no zombie is left behind."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    try:
        popen = spawner.spawn(launch, subprocess.DEVNULL, subprocess.DEVNULL)
    except Exception as e:  # noqa: BLE001 - SpawnError and friends: a failed check, not a crash
        return False, f"cannot run {launch.argv[0]}: {e}"

    def exited(code: int) -> None:
        if not done.done():
            done.set_result(code)

    watch_pid(popen.pid, exited)
    popen.returncode = 0  # herder's reaper owns this pid: Popen must never waitpid() it
    try:
        async with asyncio.timeout(timeout):
            code = await asyncio.shield(done)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await done
        return False, f"{launch.argv[0]} took longer than {timeout:g}s"
    if code == 0:
        return True, "exit 0"
    what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
    return False, f"{launch.argv[0]}: {what}"
