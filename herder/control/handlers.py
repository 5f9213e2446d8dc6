"""The API's handlers: each turns a checked Request into a Reply or a Stream.

They run on the supervisor's loop, read the core's World through the Host protocol and
post typed events; long operations (waiting for a restart) await the core's Reply,
never sleep. Nothing here decides about an instance.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from herder import __version__
from herder.control import registry
from herder.control.server import HTTPError, Reply, Request, Stream
from herder.core.events import Command, Down, SendSignal, Verb
from herder.errors import UnknownService
from herder.keeper.upgrade import preflight  # now: at upgrade time the package on disk may be broken
from herder.runtime.status import state_counts
from herder.units import parse_signal

if TYPE_CHECKING:
    from herder.control.component import Control


def _ctl(req: Request) -> Control:
    ctl: Control = req.control
    return ctl


def _names(req: Request, raw: str | None = None) -> list[str]:
    """The instances a request names: a service, an instance (web.0), or several of
    either separated by commas (the path `{name}` of start/stop/restart/signal too)."""
    wanted = raw if raw is not None else req.params.get("name")
    parts = [p.strip() for p in (wanted or "").split(",") if p.strip()]
    try:
        return _ctl(req).sup.resolve(parts)
    except UnknownService as e:
        raise HTTPError(404, str(e), known=e.known) from None


def records(control: Control, names: list[str] | None = None) -> list[dict[str, Any]]:
    sup = control.sup
    out = sup.status(names)
    for r in out:
        r["held"] = r["name"] in control.intent.held
        r["blocked"] = r["state"] == "waiting" and sup.world.blocked(sup.instances[r["name"]].service)
    return out


async def services_list(req: Request) -> Reply:
    raw = req.params.get("service")
    names = _names(req, raw) if raw else None
    return Reply(200, records(_ctl(req), names))


async def service_get(req: Request) -> Reply:
    return Reply(200, records(_ctl(req), _names(req)))


def _result(req: Request, names: list[str], ok: bool, message: str) -> Reply:
    body: dict[str, Any] = {"ok": ok, "instances": records(_ctl(req), names)}
    if message:
        body["message"] = message
    return Reply(200, body)


async def _act(req: Request, verb: Verb) -> Reply:
    """start / stop / restart: one job of the core for every target together (which also
    holds or releases them: kept across herder restarts); wait for its end if asked."""
    names = _names(req)
    ctl = _ctl(req)
    ctl.operator(req.peer, verb.value, names)
    if not req.body["wait"]:
        ctl.sup.post(Command(verb, tuple(names)))
        await ctl.save_intent()
        return _result(req, names, True, "restarting" if verb is Verb.RESTART else "")
    job = ctl.sup.request(lambda ticket: Command(verb, tuple(names), ticket, req.body["timeout"]))
    await ctl.save_intent()
    reply = await asyncio.shield(job)   # a client that goes away does not end the job
    return _result(req, names, reply.ok, reply.message)


async def start(req: Request) -> Reply:
    return await _act(req, Verb.START)


async def stop(req: Request) -> Reply:
    return await _act(req, Verb.STOP)


async def restart(req: Request) -> Reply:
    return await _act(req, Verb.RESTART)


async def signal(req: Request) -> Reply:
    names = _names(req)
    text = req.body["signal"].strip()
    try:
        sig = parse_signal(int(text) if text.isdigit() else text)
    except ValueError:
        raise HTTPError(400, f"unknown signal {req.body['signal']!r}; expected a name such as HUP, TERM, USR1 "
                             "or a number") from None
    ctl = _ctl(req)
    ctl.operator(req.peer, f"signal {sig.name}", names, " (tree)" if req.body["tree"] else "")
    reply = await ctl.sup.ask(lambda ticket: SendSignal(tuple(names), sig, req.body["tree"], ticket))
    return _result(req, names, reply.ok, reply.message)


async def reload(req: Request) -> Reply:
    from herder.control.reload import reload_request

    return await reload_request(req)


async def down(req: Request) -> Reply:
    ctl = _ctl(req)
    ctl.operator(req.peer, "down", [])
    ctl.sup.post(Down())
    return Reply(200, health_record(ctl))


async def upgrade(req: Request) -> Reply:
    ctl = _ctl(req)
    why = ctl.sup.upgrade_refused()
    if why:
        raise HTTPError(409, why)
    # before anything changes: can the installed version take over? (a refusal changes nothing)
    version, problem = await asyncio.to_thread(preflight, sys.executable)
    why = problem or ctl.sup.upgrade_refused()
    if why:
        ctl.sup.events.emit("", "upgrade_failed", f"herder: upgrade refused: {why}; nothing was changed",
                            {"reason": why})
        raise HTTPError(409, why)
    ctl.operator(req.peer, "upgrade", [])
    record = health_record(ctl)
    record["installing"] = version
    asyncio.get_running_loop().call_soon(ctl.sup.upgrade)    # after this answer is written
    return Reply(200, record)


def health_record(control: Control) -> dict[str, Any]:
    sup = control.sup
    why, gen = sup.started_by()
    return {"ok": True, "pid": os.getpid(), "version": __version__, "uptime": round(time.time() - control.started, 3),
            "config": str(sup.config.path), "state_dir": str(sup.config.state_dir),
            "stopping": sup.shutting_down, "states": state_counts(sup.world),
            "journal_failures": control.journal_failures(), "problems": list(control.problems),
            "started_by": why, "generation": gen}


async def health(req: Request) -> Reply:
    return Reply(200, health_record(_ctl(req)))


async def metrics(req: Request) -> Reply:
    from herder.control.metrics import render

    return Reply(200, render(_ctl(req)), registry.TEXT)


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
    ctl = _ctl(req)
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
                live = await queue.get()
                if live is None:
                    return
                if keep(live) and (since is None or live["ts"] >= since):
                    yield live
        finally:
            if queue is not None:
                ctl.unfollow(queue)

    return Stream(lines())
