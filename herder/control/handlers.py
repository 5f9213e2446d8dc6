"""The API's handlers: each turns a checked Request into a Reply or a Stream.

They run on the supervisor's loop and call the Supervisor's methods directly; long
operations (waiting for a restart) only await events, never sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal
import time
from collections.abc import AsyncIterator
from typing import Any

from herder import __version__
from herder.control import actions, registry
from herder.control.server import HTTPError, Reply, Request, Stream
from herder.errors import UnknownService


def _names(req: Request, raw: str | None = None) -> list[str]:
    sup = req.control.sup
    wanted = raw if raw is not None else req.params.get("name")
    parts = [p.strip() for p in (wanted or "").split(",") if p.strip()] if raw is not None else [wanted]
    try:
        return sup.resolve(parts)
    except UnknownService as e:
        raise HTTPError(404, str(e), known=e.known) from None


def records(control: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
    sup = control.sup
    out = sup.status(names)
    for r in out:
        r["held"] = r["name"] in control.intent.held
        r["blocked"] = r["state"] == "waiting" and _blocked(sup, sup.instances[r["name"]].service)
    return out


def _blocked(sup: Any, service: str) -> bool:
    """Waiting on a dependency that will not get there by itself (failed, stopped …)."""
    from herder.core import graph

    for dep, cond in sup.deps.get(service, {}).items():
        facts = [sup.facts(n) for n in sup.by_service.get(dep, [])]
        if not graph.condition_met(cond, facts) and (not facts or any(f.hopeless for f in facts)):
            return True
    return False


async def services_list(req: Request) -> Reply:
    raw = req.params.get("service")
    names = _names(req, raw) if raw else None
    return Reply(200, records(req.control, names))


async def service_get(req: Request) -> Reply:
    return Reply(200, records(req.control, _names(req)))


def _result(req: Request, names: list[str], ok: bool, message: str) -> Reply:
    body: dict[str, Any] = {"ok": ok, "instances": records(req.control, names)}
    if message:
        body["message"] = message
    return Reply(200, body)


async def _up_or_down(req: Request, verb: str) -> Reply:
    """start / stop: record the operator's intent (kept across restarts), act, wait if asked."""
    names = _names(req)
    ctl = req.control
    ctl.operator(req.peer, verb, names)
    if ctl.intent.hold(names) if verb == "stop" else ctl.intent.release(names):
        await ctl.save_intent()
    ok, msg = await actions.start_or_stop(ctl.sup, verb, names, req.body["wait"], req.body["timeout"])
    return _result(req, names, ok, msg)


async def start(req: Request) -> Reply:
    return await _up_or_down(req, "start")


async def stop(req: Request) -> Reply:
    return await _up_or_down(req, "stop")


async def restart(req: Request) -> Reply:
    names = _names(req)
    ctl = req.control
    ctl.operator(req.peer, "restart", names)
    if ctl.intent.release(names):
        await ctl.save_intent()
    try:
        job = ctl.spawn(actions.restart(ctl.sup, names, req.body["timeout"]))
    except RuntimeError as e:
        raise HTTPError(409, str(e)) from None
    if not req.body["wait"]:
        return _result(req, names, True, "restarting")
    ok, msg = await asyncio.shield(job)
    return _result(req, names, ok, msg)


def parse_signal(text: str) -> _signal.Signals:
    t = text.strip().upper()
    try:
        if t.isdigit():
            return _signal.Signals(int(t))
        return _signal.Signals[t if t.startswith("SIG") else "SIG" + t]
    except (KeyError, ValueError):
        raise HTTPError(400, f"unknown signal {text!r}; expected a name such as HUP, TERM, USR1 or a number") from None


async def signal(req: Request) -> Reply:
    names = _names(req)
    sig = parse_signal(req.body["signal"])
    ctl = req.control
    ctl.operator(req.peer, f"signal {sig.name}", names, " (tree)" if req.body["tree"] else "")
    sent = ctl.sup.send_signal(names, sig.name, req.body["tree"])
    missed = [n for n in names if n not in sent]
    msg = f"not running, no signal sent: {', '.join(missed)}" if missed else ""
    return _result(req, names, not missed, msg)


async def reload(req: Request) -> Reply:
    from herder.control.reload import reload_request

    return await reload_request(req)


async def down(req: Request) -> Reply:
    req.control.operator(req.peer, "down", [])
    req.control.sup.request_down()
    return Reply(200, health_record(req.control))


def health_record(control: Any) -> dict[str, Any]:
    sup = control.sup
    states: dict[str, int] = {}
    for inst in sup.instances.values():
        states[inst.state.value] = states.get(inst.state.value, 0) + 1
    return {"ok": True, "pid": os.getpid(), "version": __version__, "uptime": round(time.time() - control.started, 3),
            "config": str(sup.config.path), "state_dir": str(sup.config.state_dir),
            "stopping": bool(getattr(sup, "_down", False)), "states": states,
            "problems": list(getattr(control, "problems", []))}


async def health(req: Request) -> Reply:
    return Reply(200, health_record(req.control))


async def metrics(req: Request) -> Reply:
    from herder.control.metrics import render

    return Reply(200, render(req.control), registry.TEXT)


async def openapi(req: Request) -> Reply:
    from herder.control.openapi import document

    return Reply(200, document())


def parse_since(text: str | None) -> float | None:
    """The `since` parameter (herder.units.parse_since), or None; a bad value is a 400."""
    if not text:
        return None
    from herder.units import parse_since as parse

    try:
        return parse(text)
    except ValueError as e:
        raise HTTPError(400, f"since: {e}") from None


async def events(req: Request) -> Stream:
    ctl = req.control
    since = parse_since(req.params["since"])
    wanted = set(_names(req, req.params["service"])) if req.params["service"] else None
    follow = req.params["follow"]
    limit = req.params["limit"]
    queue = ctl.follow() if follow else None   # subscribe first: nothing falls between backlog and live
    upto = ctl.next_id

    def keep(e: dict[str, Any]) -> bool:
        return wanted is None or e["instance"] in wanted

    async def lines() -> AsyncIterator[dict[str, Any]]:
        try:
            if req.params["snapshot"]:
                for r in records(ctl):
                    if keep({"instance": r["name"]}):
                        yield {"ts": time.time(), "instance": r["name"], "kind": "snapshot",
                               "message": f"{r['name']}: {r['state']}", **r}
                yield {"ts": time.time(), "instance": "", "kind": "snapshot_end", "message": "end of snapshot"}
            if limit > 0:
                past = await ctl.past_events(before=upto, since=since, instances=wanted, limit=limit)
                for e in past:
                    yield e
            if queue is None:
                return
            while True:
                e = await queue.get()
                if e is None:
                    return
                if keep(e) and (since is None or e["ts"] >= since):
                    yield e
        finally:
            if queue is not None:
                ctl.unfollow(queue)

    return Stream(lines())
