"""A small HTTP service built on herder.service (stdlib only).

Shows the lifecycle the library is for:
- open a DB-like resource (SQLite) and register its close as a shutdown step;
- bind the listener, *then* report ready (a manager routes traffic only after that);
- on stop: stop accepting, drain in-flight requests (with a deadline), close the DB.

Run it in a console:          python examples/httpsvc/httpsvc.py      (Ctrl+C to stop)
Under herder:                 see herder.toml next to this file
Install as a native service:  herder service install httpsvc -- python /path/to/httpsvc.py

Settings come from the environment: PORT (default 8080, 0 = any free port), HOST
(default 127.0.0.1), HTTPSVC_DB (default: a file in the temp dir), DRAIN_TIMEOUT
(default "10s").
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from pathlib import Path

from herder.service import Context, Service

svc = Service("httpsvc")


class Hits:
    """The DB-like resource: a SQLite table counting requests per path."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS hits (path TEXT PRIMARY KEY, n INTEGER)")

    def count(self, path: str) -> int:
        with self._db:
            self._db.execute(
                "INSERT INTO hits VALUES (?, 1) ON CONFLICT(path) DO UPDATE SET n = n + 1",
                (path,),
            )
        return int(self._db.execute("SELECT n FROM hits WHERE path = ?", (path,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()
        print("db closed", flush=True)


class Server:
    """A minimal HTTP/1.0-style server: one request per connection, tracked for draining."""

    def __init__(self, hits: Hits) -> None:
        self._hits = hits
        self._inflight: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self._server.sockets[0].getsockname()[:2]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/slow"):
                # A long request, to show that a stop waits for it (drain).
                print(f"slow request {path} started", flush=True)
                await asyncio.sleep(float(path.partition("=")[2] or 1))
            body = b"ok\n" if path == "/health" else f"{path} #{self._hits.count(path)}\n".encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()
            self._inflight.discard(task)

    async def drain(self) -> None:
        """Stop accepting, then wait for the requests in flight."""
        assert self._server is not None
        self._server.close()
        if self._inflight:
            print(f"draining {len(self._inflight)} request(s)", flush=True)
            await asyncio.gather(*self._inflight, return_exceptions=True)
        print("drained", flush=True)


@svc.main
async def main(ctx: Context) -> None:
    db_path = os.environ.get("HTTPSVC_DB") or str(Path(tempfile.gettempdir()) / "httpsvc.sqlite")
    hits = Hits(db_path)
    ctx.defer(hits.close, timeout="5s", name="db.close")

    server = Server(hits)
    host, port = await server.start(
        os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    )
    ctx.defer(server.drain, timeout=os.environ.get("DRAIN_TIMEOUT", "10s"), name="http.drain")

    print(f"listening on http://{host}:{port}", flush=True)
    ctx.ready()
    ctx.status(f"listening on {host}:{port}")
    await ctx.stopping


@svc.on_reload
def reload(ctx: Context) -> None:
    print("reload: nothing to re-read in this example", flush=True)


if __name__ == "__main__":
    svc.run()
