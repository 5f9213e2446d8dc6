"""`/openapi.json`, generated from the command registry (the same data as the CLI)."""

from __future__ import annotations

import copy
from typing import Any

from herder import __version__
from herder.control import registry


def _schema(s: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema → OpenAPI 3.1 schema (3.1 is JSON Schema, so a deep copy suffices)."""
    return copy.deepcopy(s)


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for c in registry.COMMANDS:
        op: dict[str, Any] = {"operationId": c.name, "summary": c.summary, "tags": list(c.tags)}
        if c.cli is not None:
            op["description"] = f"CLI: `herder {c.cli.name}` — {c.cli.help}"
        params = [{"name": p.name, "in": p.where, "required": p.where == "path", "description": p.doc,
                   "schema": p.schema()} for p in c.params]
        if params:
            op["parameters"] = params
        if c.body is not None:
            op["requestBody"] = {"required": False, "content": {registry.JSON: {"schema": _schema(c.body)}}}
        ok: dict[str, Any] = {"description": "OK"}
        if c.media == registry.TEXT:
            ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
        elif c.response is not None:
            ok["content"] = {c.media: {"schema": _schema(c.response)}}
        responses: dict[str, Any] = {"200": ok}
        for status in sorted({400, 401, 403, *c.errors}):
            responses[str(status)] = {"description": _WHAT.get(status, "error"),
                                      "content": {registry.JSON: {"schema": _schema(registry.ERROR)}}}
        op["responses"] = responses
        paths.setdefault(c.path, {})[c.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "herder local API", "version": __version__,
                 "description": "HTTP/1.1 + JSON on {state_dir}/herder.sock (mode 0600, same uid or root); "
                                "optionally TCP with `Authorization: Bearer`. Streams are JSON lines."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


_WHAT = {400: "bad parameters or body", 401: "missing or wrong bearer token (TCP)",
         403: "peer uid not allowed (Unix socket)", 404: "unknown service; `known` lists the names",
         409: "conflict (herder is stopping, or a reload is running)", 422: "invalid configuration; `problems`"}
