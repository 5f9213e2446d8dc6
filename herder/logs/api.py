"""`GET /v1/logs/{name}?follow=1&tail=N`: a service's lines as JSON lines, then live ones.

`name` is a service, an instance (`web.0`), several separated by commas, or `*` for all.
The tail comes from the in-memory ring; with follow=1 the same iterator continues with
every new line as the writer thread hands it over (no polling, no gap between the two).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from herder.control.server import HTTPError, Request, Stream
from herder.errors import UnknownService
from herder.logs._framing import Record, rfc3339


def record_json(r: Record) -> dict[str, Any]:
    return {"ts": rfc3339(r.ts), "service": r.instance.split(".")[0] if r.instance else "herder",
            "instance": r.instance, "stream": r.stream, "line": r.line.decode("utf-8", "replace")}


async def tail(req: Request) -> Stream:
    sup = req.control.sup
    hub = sup.logs
    raw = req.params["name"]
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        names = list(sup.instances) if parts == ["*"] else sup.resolve(parts)
    except UnknownService as e:
        raise HTTPError(404, str(e), known=e.known) from None
    n, follow = req.params["tail"], req.params["follow"]

    async def lines() -> AsyncIterator[dict[str, Any]]:
        if not follow:
            for r in hub.tail(names, n):
                yield record_json(r)
            return
        async for r in hub.follow(names, tail=n):
            yield record_json(r)

    return Stream(lines())
