"""The API's deadlines with a real supervisor, its real control component and real sockets,
in this process, with the deadlines shortened (monkeypatched constants) so the test takes
seconds: an idle connection is closed, a half-sent head or body gets a 408, and a client
that never reads its stream is dropped — while supervision goes on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from herdertest import run_async, until

from herder.config import load
from herder.control import server
from herder.control.component import Control, ControlOptions
from herder.runtime.supervisor import Supervisor


@asynccontextmanager
async def supervising(path: Path) -> AsyncIterator[Control]:
    sup = Supervisor(load(path))
    control = Control(sup, ControlOptions(install_sighup=False))
    sup.components.append(control)
    started = asyncio.Event()
    task = asyncio.get_running_loop().create_task(sup.run(install_signals=False, ready=started.set))
    async with asyncio.timeout(30):
        await started.wait()
    try:
        yield control
    finally:
        sup.request_down()
        async with asyncio.timeout(60):
            await task


async def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, str(path))
    return s


async def until_closed(s: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the server sends until it closes the connection (deadline: a failure)."""
    loop, out = asyncio.get_running_loop(), b""
    async with asyncio.timeout(timeout):
        while chunk := await loop.sock_recv(s, 65536):
            out += chunk
    return out


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("IDLE_TIMEOUT", 0.5), ("HEAD_TIMEOUT", 0.5), ("BODY_TIMEOUT", 0.5), ("WRITE_TIMEOUT", 0.5),
                        ("LINGER", 0.2)):
        monkeypatch.setattr(server, name, value)


def test_idle_half_sent_and_unfinished_requests_are_closed(make_config: Callable[..., Path], quick: None) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\n')

    async def body() -> None:
        async with supervising(cfg) as control:
            sock = control.sup.config.state_dir / "herder.sock"
            loop = asyncio.get_running_loop()
            idle = await connect(sock)
            head = await connect(sock)
            await loop.sock_sendall(head, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            part = await connect(sock)
            await loop.sock_sendall(part, b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            kept = await connect(sock)            # a keep-alive client: answered, then idle
            await loop.sock_sendall(kept, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = await asyncio.gather(until_closed(idle), until_closed(head), until_closed(part), until_closed(kept))
            assert got[0] == b""
            assert got[1].startswith(b"HTTP/1.1 408 ") and b"request head did not arrive within 0.5s" in got[1]
            assert got[2].startswith(b"HTTP/1.1 408 ") and b"request body did not arrive within 0.5s" in got[2]
            assert got[3].startswith(b"HTTP/1.1 200 ") and got[3].count(b"HTTP/1.1") == 1
            for s in (idle, head, part, kept):
                s.close()
            assert control.sup.instances["a"].state.value == "running"
            lst = control.listeners[0]
            await until(lambda: not lst._conns, what="the server's side of the connections closed")
            assert lst.timed_out == 4

    run_async(body())


def test_a_stream_client_that_never_reads_is_dropped(make_config: Callable[..., Path], quick: None) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\n')

    async def body() -> None:
        async with supervising(cfg) as control:
            sock = control.sup.config.state_dir / "herder.sock"
            s = await connect(sock)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await asyncio.get_running_loop().sock_sendall(
                s, b"GET /v1/events?follow=1&limit=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            lst = control.listeners[0]
            await until(lambda: bool(lst._conns), what="the stream served")
            async with asyncio.timeout(15):
                while lst._conns:                 # events it never reads, until herder gives up on it
                    for _ in range(50):
                        control.sup.events.emit("", "note", "x" * 2000)
                    await asyncio.sleep(0.01)
            s.close()
            assert control.sup.instances["a"].state.value == "running"

    run_async(body())
