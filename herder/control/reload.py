"""`herder reload` and SIGHUP: validate the new config completely, plan, print, apply.

An invalid config (any error) changes nothing and reports every problem. state_dir
cannot move while herder runs (its socket, lock and journal live there): that is
refused too. One reload at a time. Applying the plan is a job of the core
(herder.core.reconfigure), on the loop like every other decision; this module loads,
plans, reports.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from herder.config import Config, load
from herder.control.server import HTTPError, Reply, Request
from herder.core.events import Reconfigure
from herder.core.plan import Plan, diff
from herder.errors import ConfigError

if TYPE_CHECKING:
    from herder.control.component import Control

_NEEDS_RESTART = ("state_dir", "api_tcp", "api_token_file", "socket_group", "cgroups", "console", "log_files")


async def _load(path: Path, current: Config) -> Config:
    new = await asyncio.to_thread(load, path)
    if new.state_dir != current.state_dir:
        raise ConfigError([f"{path}: herder.state_dir: changed from {current.state_dir} to {new.state_dir}; "
                           "it cannot move while herder runs (stop herder, then start it with the new config)"])
    return new


def _plan(control: Control, new: Config) -> tuple[Plan, list[str]]:
    cfg = control.sup.config
    plan = diff(cfg.services, new.services, cfg.herder, new.herder)
    lines = plan.lines()
    lines += [f"  note: {k} takes effect when herder restarts" for k in plan.settings if k in _NEEDS_RESTART]
    lines += [f"  {w}" for w in new.warnings]
    return plan, lines


async def _apply(control: Control, new: Config, plan: Plan, lines: list[str]) -> list[str]:
    control.sup.events.emit("", "reload", f"herder: reload from {new.path}: " + "; ".join(x.strip() for x in lines),
                            {"plan": plan.as_dict()})
    if control.journal is not None:
        control.journal.max_age, control.journal.max_rows = new.herder.journal_max_age, new.herder.journal_max_rows
    reply = await control.sup.ask(lambda ticket: Reconfigure(new, plan, ticket))
    problems = list(reply.problems)
    for p in problems:
        control.sup.events.emit("", "reload_failed", f"herder: reload: {p}", {})
    return problems


async def reload_request(req: Request) -> Reply:
    ctl: Control = req.control
    if ctl.reloading:
        raise HTTPError(409, "a reload is already running; try again when it is done")
    path = Path(req.body["config"]) if req.body["config"] else ctl.sup.config.path
    if not path.is_absolute():
        raise HTTPError(400, f"config: {str(path)!r} is not an absolute path; expected the absolute path of a config")
    try:
        new = await _load(path, ctl.sup.config)
    except ConfigError as e:
        raise HTTPError(422, f"{path}: invalid config ({len(e.problems)} problem(s)); nothing was changed",
                        problems=e.problems) from None
    plan, lines = _plan(ctl, new)
    if req.body["dry_run"]:
        return Reply(200, {"ok": True, "applied": False, "plan": plan.as_dict(), "lines": lines})
    ctl.operator(req.peer, "reload", [str(path)])
    ctl.reloading = True
    try:
        job = ctl.spawn(_apply(ctl, new, plan, lines))
        problems = await asyncio.shield(job)
    except RuntimeError as e:
        raise HTTPError(409, str(e)) from None
    finally:
        ctl.reloading = False
    return Reply(200, {"ok": not problems, "applied": True, "plan": plan.as_dict(), "lines": lines,
                       "errors": problems})


async def reload_from_signal(ctl: Control) -> None:
    """SIGHUP: the same reload, reported through events (there is no one to answer)."""
    sup = ctl.sup
    if ctl.reloading:
        sup.events.emit("", "reload_failed", "herder: SIGHUP ignored: a reload is already running", {})
        return
    sup.events.emit("", "operator", "SIGHUP: reload", {"action": "reload", "targets": []})
    try:
        new = await _load(sup.config.path, sup.config)
    except ConfigError as e:
        sup.events.emit("", "reload_failed", "herder: reload refused, nothing changed:\n" + "\n".join(e.problems),
                        {"problems": e.problems})
        return
    plan, lines = _plan(ctl, new)
    ctl.reloading = True
    try:
        await _apply(ctl, new, plan, lines)
    finally:
        ctl.reloading = False
