"""`kill -9` of herder → supervising again (herder only).

Measured as a user meets it: herder runs 200 services, its process (the pid in
`{state_dir}/herder.pid`) is SIGKILLed, and the figure is the time until a herder answers
on its socket again with every service accounted for.

Which path that takes depends on the build, so the first trial checks (a capability check,
not a version check): if within PROBE_S of the kill a *new* process holds herder.pid and
answers `GET /v1/health`, herder recovered by itself (a keeper, from the survive issue);
the figure is kill → answering. Otherwise nothing restarts herder on its own, and the
trials measure the path users have today: `herder up -d` run again right after the kill,
until it returns (it returns once every autostart service is running). Each trial also
records what happened to the 200 services the killed herder ran: still alive (adopted or
orphaned) and new starts (duplicates, if the old ones were left running).

A herder made of a keeper and a decision process (issue 12) gets a second figure in the
same trial, `recover_dp_ms`: once it is back, its decision process (the `pid` that
`GET /v1/health` reports, when it is not the keeper's) is SIGKILLed too, and the time
until a new decision process answers is measured the same way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from procs import Tracker, alive, stamps, wait_stamps, wait_until
from tools import Herder, Tool, stamp_services

PROBE_S = 3.0


def _holder(state: Path) -> int | None:
    try:
        pid = int((state / "herder.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def _answers(sock: Path) -> bool:
    """One HTTP/1.1 request to the API socket: True on a 200."""
    return _health(sock) is not None


def _health(sock: Path) -> dict[str, Any] | None:
    """GET /v1/health: its JSON body on a 200, else None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(2.0)
            c.connect(str(sock))
            c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: herder\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _decision_process(res: Any, tool: Tool, state: Path, tracker: Tracker) -> None:
    """kill -9 of the decision process (a herder with a keeper) → a new one answering."""
    sock = state / "herder.sock"
    keeper = _holder(state)
    dp = (_health(sock) or {}).get("pid")
    if not isinstance(dp, int) or dp == keeper or not alive(dp):
        return      # one process: nothing apart to kill
    t0 = time.monotonic()
    os.kill(dp, signal.SIGKILL)

    def back() -> bool:
        pid = (_health(sock) or {}).get("pid")
        return isinstance(pid, int) and pid != dp

    if not wait_until(back, 30, 0.001):
        raise TimeoutError("no new decision process answered within 30 s")
    res.add("recover_dp_ms", tool.name, (time.monotonic() - t0) * 1000)
    new = (_health(sock) or {}).get("pid")
    if isinstance(new, int):
        tracker.add(new)


def recover(res: Any, tool: Tool, work: Path, r: int, plan: Any, tracker: Tracker) -> None:
    """One trial (res: compare.Results)."""
    assert isinstance(tool, Herder)
    out = work / "stamps"
    s = tool.launch(work, stamp_services(plan.n, out), plan.stop_timeout, tracker, [out])
    state = work / "state"
    cfg = str(work / "herder.toml")
    slot = res.slot("recover_ms", tool.name)
    try:
        if wait_stamps(out, plan.n, 60) is None:
            raise TimeoutError(f"{len(stamps(out))} of {plan.n} started within 60 s")
        if not wait_until(lambda: _answers(state / "herder.sock"), 10, 0.005):
            raise TimeoutError("herder's socket did not answer within 10 s")
        old = _holder(state)
        if old is None:
            raise RuntimeError(f"no live pid in {state / 'herder.pid'}")
        before = {pid for pid, _ in stamps(out)}
        for pid in before:
            tracker.add(pid, ("stamp",))
        try:   # what the killed herder had recorded: a later herder stops these before it starts
            recorded = len(json.loads((state / "run.json").read_text()).get("instances", {}))
        except (OSError, ValueError):
            recorded = -1
        mode = slot.get("kind")
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        if mode in (None, "self"):
            def back() -> bool:
                pid = _holder(state)
                return pid is not None and pid != old and _answers(state / "herder.sock")
            if wait_until(back, PROBE_S if mode is None else 30, 0.001):
                slot.update(kind="self", mode="self: the pid in herder.pid (with a keeper: the keeper) killed; a new "
                            "herder process took over by itself, the services kept")
                res.add("recover_ms", tool.name, (time.monotonic() - t0) * 1000)
                new = _holder(state)
                if new is not None:
                    tracker.add(new)
                _decision_process(res, tool, state, tracker)
            elif mode is None:
                slot["kind"] = "relaunch"
            else:
                raise TimeoutError("herder did not come back within 30 s")
        if slot["kind"] == "relaunch":
            wait_until(lambda: not alive(old), 5, 0.001)
            t1 = time.monotonic()
            p = subprocess.run([tool.exe, "up", "-d", "-c", cfg], cwd=work, env=tool.env(work),
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"herder up -d: exit {p.returncode}: {(p.stderr or p.stdout)[-300:]!r}")
            if not _answers(state / "herder.sock"):
                raise RuntimeError("herder up -d returned but its socket does not answer")
            res.add("recover_ms", tool.name, (time.monotonic() - t1) * 1000)
            slot["mode"] = ("relaunch: nothing restarts herder by itself in this build; the figure is "
                            "`herder up -d` run again at once after the kill, until it returns")
        new = _holder(state)
        if new is not None:
            tracker.add(new)
        after = stamps(out)
        slot.setdefault("services", []).append({"old_still_alive": sum(alive(p) for p in before),
                                                "new_starts": len(after) - len(before),
                                                "in_run_json_at_kill": recorded})
    finally:
        if _holder(state) is not None and _holder(state) != s.launcher.pid:
            subprocess.run([tool.exe, "down", "-c", cfg], cwd=work, env=tool.env(work), capture_output=True,
                           timeout=60)
        s.close(timeout=10)
