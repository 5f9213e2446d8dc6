"""`herder up -d`: run the supervisor in the background and report how the start went.

Detaching uses python-daemon (PEP 3143, already a dependency through herder.service)
rather than a hand-written double fork: it gets the details right — fork, setsid, fork
again so the daemon can never reacquire a terminal, close every inherited fd, stdio away
from the terminal. We keep the caller's working directory and umask (services started
in the foreground and in the background then behave the same) and send stdout/stderr to
`{state_dir}/herder.out` (herder.log is the JSON event log).

The parent learns the outcome through a pipe: the daemon writes `ok` once its socket
listens and every service has been asked to start, or `error: …` (another herder holds
the state_dir, the API could not open). The parent then follows the event stream
(`snapshot=1` first gives every instance's state, with no gap before the live events)
until each autostart instance is running/ready, completed, or failed — no polling — and
prints one line per service. Exit 1 if any failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

from herder.errors import EXIT_FAILED, EXIT_OK, AlreadyRunning

SETTLED = {"running", "exited", "failed", "stopped"}
IN_TRANSIT = {"starting", "backoff", "stopping"}


def _holder(state_dir: Any) -> str | None:
    """The pid of the herder holding state_dir's lock (as text), or None when it is free."""
    from herder.store.lock import holder

    pid = holder(state_dir)
    return None if pid is None else (str(pid) if pid > 0 else "?")


def run_detached(args: Any) -> int:
    from herder.cli.up import load_for_up

    cfg = load_for_up(args.config, args.services)
    if isinstance(cfg, int):
        return cfg
    sock = cfg.state_dir / "herder.sock"
    other = _holder(cfg.state_dir)
    if other is not None:
        raise AlreadyRunning(f"herder is already running on {cfg.state_dir} (pid {other}, socket {sock}); "
                             "use `herder status`, `herder reload` or `herder down`")
    from herder.store import lock, statedir

    statedir.ensure(cfg.state_dir, group_gid=lock.group_id(cfg.herder.socket_group))
    r, w = os.pipe()
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the daemon
        os.close(r)
        code = _daemon(cfg, args, w)
        os._exit(code)
    os.close(w)
    os.waitpid(pid, 0)   # the first child exits as soon as the daemon is forked off
    with os.fdopen(r, "rb") as f:
        answer = f.readline().decode(errors="replace").strip()
    if answer != "ok":
        msg = answer.removeprefix("error: ") or (f"the supervisor exited during start-up; see "
                                                 f"{cfg.state_dir / 'herder.out'} and {cfg.state_dir / 'herder.log'}")
        usage = msg.startswith("config: ")
        print(f"herder: {msg.removeprefix('config: ')}", file=sys.stderr)
        return 2 if usage else EXIT_FAILED
    return _report(str(sock), cfg.state_dir, args, since=t0)


def _daemon(cfg: Any, args: Any, w: int) -> int:  # pragma: no cover - runs in the daemon
    import daemon  # python-daemon

    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # until the control component takes SIGHUP over
    from herder.store.statedir import open_nofollow

    # herder.log is JSON only (every event, written by herder.logs' OwnLog); what the daemon
    # itself prints outside events (start-up errors, a bug's traceback) goes to herder.out.
    log = open(open_nofollow(cfg.state_dir / "herder.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),  # noqa: SIM115
               "ab", buffering=0)  # the daemon's stdio for life
    umask = os.umask(0)
    os.umask(umask)
    ctx = daemon.DaemonContext(working_directory=os.getcwd(), umask=umask, files_preserve=[w, log.fileno()],
                               stdout=log, stderr=log, detach_process=True, prevent_core=False, signal_map={})
    try:
        ctx.open()
    except Exception as e:  # noqa: BLE001 - report to the waiting parent
        os.write(w, f"error: cannot detach: {e}\n".encode())
        return 1
    from herder.cli.up import supervise
    from herder.errors import HerderError

    sys.stdout = sys.stderr = open(log.fileno(), "w", buffering=1, closefd=False)  # noqa: SIM115 - for life
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} herder: detached supervisor starting (pid {os.getpid()})",
          file=sys.stderr)
    told = False

    def ready() -> None:
        nonlocal told
        os.write(w, b"ok\n")
        os.close(w)
        told = True

    try:
        return supervise(cfg, args.services, socket_group=args.socket_group, ready=ready, print_events=False)
    except HerderError as e:
        msg = str(e).replace("\n", " ")
        print(f"herder: {msg}", file=sys.stderr)
        if not told:
            prefix = "config: " if e.exit_code == 2 else ""
            os.write(w, f"error: {prefix}{msg}\n".encode())
        return e.exit_code
    finally:
        if not told:
            with contextlib.suppress(OSError):
                os.close(w)


def _report(sock: str, state_dir: Any, args: Any, since: float = 0.0) -> int:
    """Follow events until every wanted instance settled; one line per service.

    "running" counts once an instance has stayed up for its min_uptime (supervisord's
    startsecs): a program that crashes at once is briefly `running`, and `up -d` must not
    call that a success. Waiting for that is following the event stream for exactly the
    time left, woken early by any state change."""
    from herder.cli.progress import View
    from herder.control.client import Client

    client = Client(sock, timeout=30)
    deadline = time.monotonic() + args.timeout
    state: dict[str, dict[str, Any]] = {}
    held: list[str] = []
    view = View(sys.stderr, verb="up", settled_lines=False)
    while time.monotonic() <= deadline:
        _follow_until_settled(client, state, deadline, view, held)
        young = [r["min_uptime"] - (r["uptime"] or 0.0) for r in client.call("services_list")
                 if r["name"] in state and r["state"] == "running"]
        left = min(max(young, default=0.0), deadline - time.monotonic())
        if left <= 0:
            break
        _wait_quiet(client, set(state), left)  # ends early at a state change; either way, look again
    rows = client.call("services_list")
    _leftovers(state_dir, since)
    code = _print_outcome(rows, set(state), state_dir, timed_out=time.monotonic() > deadline)
    for svc in dict.fromkeys(r["service"] for r in rows if r["name"] in held):
        print(f"{svc}: left stopped: it was stopped by hand (`herder stop`); `herder start {svc}` starts it",
              file=sys.stderr)
    if view.failed():
        names = ", ".join(ln.name for ln in view.failed() if ln.state != "failed")
        if names:
            print(f"herder: failed on the way, then came back: {names} (see `herder events`)", file=sys.stderr)
    return code


def _leftovers(state_dir: Any, since: float) -> None:
    """What herder did before it started anything: instances a killed herder left behind,
    stopped first. That event comes before the journal opens, so it is read back from
    herder.log (JSON lines), from its last 64 KiB."""
    import json

    from herder.logs._read import last_lines, parse_ts

    for raw in last_lines(state_dir / "herder.log", 200):
        try:
            e = json.loads(raw)
            if e.get("kind") == "supervisor" and "previous herder" in e.get("message", "") \
                    and parse_ts(e["ts"]) >= since - 1:
                print(e["message"], file=sys.stderr)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue


def _follow_until_settled(client: Any, state: dict[str, dict[str, Any]], deadline: float, view: Any = None,
                          held: list[str] | None = None) -> None:
    stream = client.stream("events", query={"follow": True, "limit": 0, "snapshot": True},
                           timeout=max(0.1, deadline - time.monotonic()))
    try:
        for e in stream:
            if e["kind"] == "snapshot":
                if e.get("want") == "up":
                    state[e["instance"]] = e
                elif e.get("held") and held is not None and e["instance"] not in held:
                    held.append(e["instance"])
                continue
            if view is not None and e["instance"] in state:
                view.feed(e)
            rec = state.get(e["instance"])
            if rec is not None and e["kind"] == "state":
                rec["state"] = e.get("to", rec["state"])
            if (e["kind"] in ("state", "snapshot_end") and _settled(client, state)) or time.monotonic() > deadline:
                break
    except TimeoutError:
        pass
    finally:
        stream.close()


def _wait_quiet(client: Any, names: set[str], seconds: float) -> None:
    """Return after `seconds` without a state change of `names`, or at the first one."""
    stream = client.stream("events", query={"follow": True, "limit": 0}, timeout=seconds)
    try:
        for e in stream:
            if e["kind"] == "state" and e["instance"] in names:
                return
    except TimeoutError:
        return
    finally:
        stream.close()


def _settled(client: Any, state: dict[str, dict[str, Any]]) -> bool:
    states = {r["state"] for r in state.values()}
    if states & IN_TRANSIT:
        return False
    if "waiting" not in states:
        return True
    # only waiting instances are left: settled when each waits on something hopeless
    waiting = ",".join(n for n, r in state.items() if r["state"] == "waiting")
    rows = client.call("services_list", query={"service": waiting})
    return all(r.get("blocked") for r in rows if r["state"] == "waiting")


def _print_outcome(rows: list[dict[str, Any]], wanted: set[str], state_dir: Any, timed_out: bool) -> int:
    by_service: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["name"] in wanted:
            by_service.setdefault(r["service"], []).append(r)
    failed = False
    width = max((len(s) for s in by_service), default=0)
    for svc, insts in by_service.items():
        states = {r["state"] for r in insts}
        pids = [str(r["pid"]) for r in insts if r["pid"]]
        n = f"{len(insts)}/{len(insts)} " if len(insts) > 1 else ""
        if states == {"running"}:
            line = f"running  {n}(pid {', '.join(pids)})"
        elif states == {"exited"} and all(r["exit"] == 0 for r in insts):
            line = "completed"
        else:
            failed = True
            bad = [r for r in insts if r["state"] != "running"]
            why = bad[0].get("reason") or (f"exit {bad[0]['exit']}" if bad[0]["exit"] is not None else "")
            word = bad[0]["state"] if not timed_out else f"still {bad[0]['state']}"
            line = f"{word}  {len(bad)}/{len(insts)}" + (f": {why}" if why else "")
        print(f"{svc.ljust(width)}  {line}")
    print(f"herder: running in the background (pid {_holder(state_dir) or '?'}, log {state_dir / 'herder.log'})",
          file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
