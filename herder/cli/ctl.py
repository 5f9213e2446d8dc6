"""CLI commands that talk to a running supervisor: thin renderers over control.client.

Each `run_*` gets the parsed arguments (with -c, --socket and --json added by the
registry-driven parser), calls the API, prints, and returns a fixed exit code. Nothing
here imports the server side, asyncio or the config schema.
"""

from __future__ import annotations

import os
import sys

from herder.cli import render
from herder.control.client import ApiError, Client, Dropped, discover_socket
from herder.errors import EXIT_FAILED, EXIT_OK, HerderError, NotRunning, UsageError

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from typing import Any

    from herder.control.client import Pending


def client(args: Any, timeout: float | None = 600.0) -> Client:
    return Client(discover_socket(getattr(args, "socket", None), getattr(args, "config", None)), timeout)


def _dump(obj: Any) -> None:
    import json  # not at the top: json imports re (herder.control.jsonload), which the table does not need

    sys.stdout.write(json.dumps(obj, indent=1) + "\n")


def expand(c: Client, names: list[str]) -> list[str]:
    """`all` means every service (unless a service is called "all"); unknown names are a
    usage error before anything is done, with "did you mean"."""
    if "all" in names:
        services = list(dict.fromkeys(r["service"] for r in c.call("services_list")))
        if "all" not in services:
            names = list(dict.fromkeys(x for n in names for x in (services if n == "all" else [n])))
    if names:
        c.call("services_list", query={"service": ",".join(names)})  # 404 with the known names
    return names


def run_status(args: Any) -> int:
    c = client(args)
    health = c.begin("health")   # asked now: answered in the same wake-up of the supervisor as the list
    try:
        return _status(c, args, health)
    finally:
        health.close()


def _status(c: Client, args: Any, pending: Pending) -> int:
    names: list[str] = list(args.services or [])
    rows = None
    if "all" in names:   # one request for everything (a status request samples each instance's CPU and memory)
        rows = c.call("services_list")
        if "all" in {r["service"] for r in rows}:
            rows = None      # a service called "all": the name wins
        else:
            names = [n for n in names if n != "all"]
            if names:
                expand(c, names)   # the others must still exist (exit 2 with "did you mean")
            names = []
    if rows is None:
        rows = c.call("services_list", query={"service": ",".join(names)} if names else None)
    if getattr(args, "names", False):
        services = list(dict.fromkeys(r["service"] for r in rows))
        sys.stdout.write("".join(f"{n}\n" for n in [*services, *(r["name"] for r in rows
                                                                  if r["name"] not in services)]))
        return EXIT_OK
    if args.json:
        _dump(rows)
    else:
        render.print_table(rows, no_colour=getattr(args, "no_color", False), wide=getattr(args, "wide", False))
    health = pending.result()
    if not args.json:
        for problem in health.get("problems", []):   # state herder could not trust (security.md)
            print(f"herder: warning: {problem}", file=sys.stderr)
    lost = health.get("journal_failures", 0)
    if lost:   # on stderr in both modes: stdout keeps its shape
        print(f"herder: {lost} event(s) could not be written to the journal (disk full or failing?); "
              "they are missing from `herder events`", file=sys.stderr)
    return EXIT_OK


def _action_result(args: Any, res: dict[str, Any]) -> int:
    from herder.cli import progress  # not at the top: `herder status` does not follow anything

    if args.json:
        _dump(res)
    else:
        for r in res["instances"]:
            print(f"{r['name']}: {progress.describe(r)}")
        if res.get("message"):
            print(res["message"], file=sys.stderr)
    return EXIT_OK if res["ok"] else EXIT_FAILED


def run_action(args: Any) -> int:
    """start / stop / restart: one request for every target, so they act together (a stop
    goes in reverse dependency order, each level at once, as `down` does)."""
    from herder.cli import progress

    c = client(args, timeout=None)
    names = expand(c, args.services)
    body = {"wait": not args.no_wait, "timeout": args.timeout}

    def act() -> list[dict[str, Any]]:
        return [c.call(f"service_{args.command}", path={"name": ",".join(names)}, body=body)]

    if args.json or args.no_wait:
        results = act()
        if args.json:
            _dump(results[0] if len(results) == 1 else results)
            return EXIT_OK if all(r["ok"] for r in results) else EXIT_FAILED
        return max((_action_result(args, r) for r in results), default=EXIT_OK)
    view = progress.View(watch=names, verb=args.command)
    results = progress.follow(c, act, view, final=lambda rs: [i for r in rs for i in r["instances"]],
                              refresh=lambda ns: c.call("services_list", query={"service": ",".join(ns)}),
                              timeout=args.timeout)
    for r in results:
        if r.get("message"):
            print(f"herder: {r['message']}", file=sys.stderr)
    print(view.summary(), file=sys.stderr)
    return EXIT_OK if all(r["ok"] for r in results) and not view.failed() else EXIT_FAILED


def run_signal(args: Any) -> int:
    c = client(args)
    names = expand(c, args.services)
    ok = EXIT_OK
    for name in names:
        res = c.call("service_signal", path={"name": name}, body={"signal": args.sig, "tree": args.tree})
        if args.json:
            _dump(res)
        else:
            sig = args.sig.upper() if args.sig.isdigit() or args.sig.upper().startswith("SIG") \
                else "SIG" + args.sig.upper()
            for r in res["instances"]:
                if r.get("pid"):
                    where = f"pid {r['pid']} and every process of its tree" if args.tree else f"pid {r['pid']}"
                    print(f"{r['name']}: sent {sig} to {where}")
                else:
                    print(f"{r['name']}: not running ({r['state']}), no signal sent", file=sys.stderr)
        ok = max(ok, EXIT_OK if res["ok"] else EXIT_FAILED)
    return ok


def run_reload(args: Any) -> int:
    from herder.cli import progress

    body: dict[str, Any] = {"dry_run": args.dry_run}
    if args.config:
        body["config"] = os.path.abspath(args.config)
    c = client(args, timeout=None)
    view = progress.View(verb="reload")
    try:
        if args.json or args.dry_run:
            res = c.call("reload", body=body)
        else:
            res = progress.follow(c, lambda: c.call("reload", body=body), view,
                                  final=lambda res: _changed_instances(c, res),
                                  refresh=lambda ns: [r for r in c.call("services_list") if r["name"] in ns])
    except ApiError as e:
        if e.status == 422 and isinstance(e.body, dict):
            if args.json:
                _dump(e.body)
            else:
                for line in e.body.get("problems", []):
                    print(line, file=sys.stderr)
                print(f"herder: {e}", file=sys.stderr)
            return e.exit_code
        raise
    if args.json:
        _dump(res)
        return EXIT_OK if res["ok"] else EXIT_FAILED
    for line in res.get("lines", []):
        print(line)
    for line in res.get("errors", []):
        print(line, file=sys.stderr)
    changed = [x for x in res.get("lines", []) if not x.startswith("  keep")]
    if not res.get("applied"):
        print("herder: dry run: nothing was changed (run `herder reload` to apply)", file=sys.stderr)
    elif not res["ok"]:
        print("herder: reload applied with errors (above)", file=sys.stderr)
    else:
        print(f"herder: reload applied ({len(changed)} change{'s' if len(changed) != 1 else ''})"
              + (f"; {view.summary('reload')}" if view.lines else ""), file=sys.stderr)
    return EXIT_OK if res["ok"] and not view.failed() else EXIT_FAILED


def _changed_instances(c: Client, res: dict[str, Any]) -> list[dict[str, Any]]:
    """The instances an applied reload added, restarted or scaled: followed until each runs
    (past its min_uptime), completes or fails, as `up -d` does."""
    plan = res.get("plan") or {}
    changed = {*plan.get("add", []), *plan.get("restart", {}), *plan.get("scale", {})}
    if not res.get("applied") or not changed:
        return []
    return [r for r in c.call("services_list") if r["service"] in changed]


def format_event(e: dict[str, Any]) -> str:
    """One event as text; an exit carries the last lines its process wrote to stderr."""
    from herder.units import stamp_ms  # datetime: only `events` pays for it, not `status`

    ts = e.get("ts", 0.0)
    stamp = stamp_ms(ts, "%Y-%m-%d %H:%M:%S", utc=False)
    text = f"{stamp} {e.get('message', '')}"
    tail = e.get("stderr_tail") or []
    if tail:
        text += "".join(f"\n    stderr: {x}" for x in tail)
    return text


def run_events(args: Any) -> int:
    import json

    query = {"follow": args.follow, "since": args.since, "limit": args.limit,
             "service": ",".join(args.services) if args.services else None}
    try:
        try:
            events = iter(client(args, timeout=None).stream("events", query=query))
            first = next(events, None)
        except NotRunning:
            if args.follow:
                raise
            events, first = iter(_journal_offline(args)), None  # the supervisor is gone: read its journal
        for e in _chain(first, events):
            sys.stdout.write((json.dumps(e) if args.json else format_event(e)) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        pass
    return EXIT_OK


def _chain(first: Any, rest: Any) -> Any:
    if first is not None:
        yield first
    yield from rest


def _journal_offline(args: Any) -> list[dict[str, Any]]:
    """`herder events` with no supervisor: the same events, read from {state_dir}/journal.db."""
    from pathlib import Path

    from herder.store.journal import query
    from herder.units import parse_since

    db = Path(discover_socket(getattr(args, "socket", None), getattr(args, "config", None))).parent / "journal.db"
    if not db.exists():
        raise NotRunning(f"herder is not running and has no journal at {db}; start it with `herder up -d`")
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None
    wanted = set(args.services or ())
    rows = query(db, since=since, limit=100_000 if wanted else (args.limit or 100))
    if wanted:
        rows = [r for r in rows if r["instance"] in wanted or r["instance"].split(".")[0] in wanted]
        rows = rows[-(args.limit or 100):]
    print(f"(herder is not running: events from {db})", file=sys.stderr)
    return rows


def run_upgrade(args: Any) -> int:
    """Ask for the swap, then wait (bounded) until a new decision process answers: the API
    socket is the keeper's, so requests made meanwhile wait. Exit 0 only when that one was
    started by the upgrade and runs the installed version; the server refuses (409, nothing
    changed) when the installed version cannot take over."""
    import time

    from herder import __version__

    c = client(args, timeout=60.0)
    before = c.call("health")
    try:
        res = c.call("upgrade")
    except ApiError as e:
        print(f"herder: upgrade refused: {e}", file=sys.stderr)
        return EXIT_FAILED
    target = str(res.get("installing") or __version__)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        try:
            now = c.call("health")
        except ApiError as e:       # 503: a keeper holding the services, the new version could not start
            print(f"herder: upgrade failed: {e}", file=sys.stderr)
            return EXIT_FAILED
        except (HerderError, OSError):
            now = None      # the old decision process closed this connection as it left (or is not there yet)
        if now is not None and now.get("pid") != before.get("pid"):
            if args.json:
                _dump(now)
            if now.get("started_by") != "upgrade" or now.get("version") != target:
                print(f"herder: upgrade failed: herder {now.get('version')} runs on (decision process pid "
                      f"{now.get('pid')}, started by: {now.get('started_by')}), not the installed {target}; "
                      "services kept running; see herder.log (upgrade_failed)", file=sys.stderr)
                return EXIT_FAILED
            if not args.json:
                print(f"herder: upgraded to {now.get('version')} (decision process pid {before.get('pid')} -> "
                      f"{now.get('pid')}); services kept running", file=sys.stderr)
            return EXIT_OK
        time.sleep(0.05)    # the old process is still answering; the swap takes a moment
    print("herder: no decision process of the installed version answered within 60s; the services keep "
          "running under herder's keeper; see herder.out and herder.log", file=sys.stderr)
    return EXIT_FAILED


def run_down(args: Any) -> int:
    """Stop everything; exit 0 only once the supervisor confirmed it: its event stream ended as
    herder ends it when every service has stopped, and it released its lock (it exited)."""
    from herder.cli import progress

    c = client(args, timeout=None)
    try:
        # follow first, so the end of the stream (herder closing it as it exits) is seen
        events = None if args.no_wait else c.stream("events", query={"follow": True, "limit": 0})
        res = c.call("down")
    except Dropped:
        # The supervisor closed the connection before answering. If it was finishing a stop
        # already under way (a `down` whose decision process was killed: the keeper's next
        # one carries the stop on) and exited, everything this `down` asks for is true and
        # provable: its lock is released and run.json lists nothing alive. Otherwise the
        # outcome is unknown and said so (exit 1).
        state_dir = _state_dir_of(c.socket_path)
        if state_dir is None or not wait_unlocked(state_dir) or _left_running(state_dir):
            raise
        if args.json:
            _dump({"confirmed": True, "state_dir": state_dir})
        else:
            print("herder: the supervisor finished a stop already under way and exited as this `down` reached "
                  "it; every service is stopped", file=sys.stderr)
        return EXIT_OK
    if not args.json:
        print(f"herder (pid {res['pid']}): stopping every service", file=sys.stderr)
    code = EXIT_OK
    if events is not None:
        view = progress.View(sys.stderr, verb="down")
        for e in events:
            if args.json:
                continue
            if e.get("kind") == "stop_timeout":
                print(format_event(e), file=sys.stderr)
            view.feed(e)
        exited = wait_unlocked(res.get("state_dir"))
        left = _left_running(res.get("state_dir")) if exited else []
        if not events.complete and exited and not left:
            # the decision process died during the stop; the keeper's next one finished it
            print(f"herder: the supervisor's decision process (pid {res['pid']}) died during the stop; its "
                  "successor finished it", file=sys.stderr)
        if left or (not events.complete and not exited):
            what = (f"{len(left)} instance(s) may still run ({', '.join(sorted(left)[:10])}"
                    f"{' …' if len(left) > 10 else ''}): `herder up -d` adopts them, then `herder down` again"
                    if left else "some may still run (see `herder status` or ps)")
            print(f"herder: the supervisor (pid {res['pid']}) {'exited' if exited else 'stopped answering'} before "
                  f"confirming that every service stopped; {what}", file=sys.stderr)
            code = EXIT_FAILED
        elif not exited:
            code = EXIT_FAILED
        elif not args.json:
            print(view.summary("down") + "; herder has exited", file=sys.stderr)
    if args.json:
        _dump({**res, "confirmed": code == EXIT_OK})
    return code


def _state_dir_of(socket_path: str) -> str | None:
    """The state_dir whose default socket this is (None for a socket elsewhere: its
    supervisor's state cannot be found from it)."""
    parent = os.path.dirname(os.path.abspath(socket_path))
    return parent if os.path.basename(socket_path) == "herder.sock" and \
        os.path.exists(os.path.join(parent, "herder.pid")) else None


def _left_running(state_dir: str | None) -> list[str]:
    """Instances run.json still lists as alive once the supervisor is gone (a clean exit lists
    none); a record counts only when the process proves it is the one recorded (start time
    and cookie), as everywhere else (herder.store.runstate)."""
    if not state_dir:
        return []
    from pathlib import Path

    from herder.process import tree
    from herder.store.runstate import proves, read

    path = Path(state_dir) / "run.json"
    got, _, recs = read(path, client=True)
    if got.problem:        # what still runs cannot be verified: never "nothing" (exit 0 without proof)
        print(f"herder: cannot verify what still runs: {path} {got.problem}", file=sys.stderr)
        return ["(unverified)"]
    return [name for name, rec in recs.items() if proves(rec, tree.start_time(rec.pid), tree.cookie(rec.pid))]


def wait_unlocked(state_dir: str | None, timeout: float = 30.0) -> bool:
    """Block until the supervisor (keeper and decision process) has exited, releasing its
    state_dir lock; bounded. False, with a message, when it has not."""
    if not state_dir:
        return True
    from herder.store.lock import wait_released

    if not wait_released(state_dir, timeout):
        print(f"herder: the supervisor has not exited after {timeout:g}s; `herder status` shows what still runs",
              file=sys.stderr)
        return False
    return True
