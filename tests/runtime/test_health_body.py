"""The HTTP probe's `body` match reads the whole body (issue 17, item 1): real servers on
127.0.0.1 that send the headers first and the body later, in pieces, or keep the
connection open after a Content-Length body."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from herder.health.probes import BODY_LIMIT, http_check

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.AbstractServer, int]:
    """A server whose every connection is closed when its handler ends, however it ends: a
    StreamWriter left open is collected after the loop closed, and its ResourceWarning
    then fails whichever test runs next."""
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_body_sent_after_the_headers_is_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)      # the server's own pace (as the operator's server did), not a sync
        writer.write(b"o")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"k\n")
        writer.close()

    async def main() -> None:
        server, port = await _serve(handler)
        async with server:
            results = [await http_check(f"http://127.0.0.1:{port}/health", 5.0, "^ok$|\nok") for _ in range(10)]
        assert all(ok for ok, _ in results), results   # was 0 of 10

    asyncio.run(main())


def test_content_length_body_on_a_connection_left_open() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"healthy")
        await writer.drain()
        await reader.read()            # keeps the connection open until the probe closes it

    async def main() -> None:
        server, port = await _serve(handler)
        async with server:
            ok, why = await http_check(f"http://127.0.0.1:{port}/", 5.0, "healthy")
        assert ok, why

    asyncio.run(main())


def test_a_body_past_the_limit_is_cut_at_the_limit() -> None:
    big = b"x" * (BODY_LIMIT + 10) + b"END"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + big)
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await _serve(handler)
        async with server:
            assert not (await http_check(f"http://127.0.0.1:{port}/", 5.0, "END"))[0]
            ok, why = await http_check(f"http://127.0.0.1:{port}/", 5.0, "^x{1000}")
            assert ok, why

    asyncio.run(main())
