"""CLI commands that talk to a running supervisor: thin renderers over control.client.

Each `run_*` gets the parsed arguments (with -c, --socket and --json added by the
registry-driven parser), calls the API, prints, and returns a fixed exit code. Nothing
here imports the server side, asyncio or the config schema.
"""

from __future__ import annotations

import json
import os
import sys

from herder.control.client import ApiError, Client, discover_socket
from herder.errors import EXIT_FAILED, EXIT_OK, NotRunning, UsageError

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from typing import Any


def client(args: Any, timeout: float | None = 600.0) -> Client:
    return Client(discover_socket(getattr(args, "socket", None), getattr(args, "config", None)), timeout)


def _dump(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1) + "\n")


def human_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def status_table(rows: list[dict[str, Any]]) -> str:
    head = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "EXIT", "")
    table = [head]
    for r in rows:
        note = r.get("reason") or r.get("status") or ""
        if r.get("held") and r["state"] == "stopped":
            note = note or "stopped by hand"
        table.append((r["name"], r["state"], str(r["pid"] or "-"), human_duration(r.get("uptime")),
                      str(r["restarts"]), r.get("health") or "-", "-" if r["exit"] is None else str(r["exit"]),
                      note[:80]))
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    return "".join(("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]).rstrip() + "\n"
                   for row in table)


def run_status(args: Any) -> int:
    query = {"service": ",".join(args.services)} if args.services else None
    c = client(args)
    rows = c.call("services_list", query=query)
    if args.json:
        _dump(rows)
    else:
        sys.stdout.write(status_table(rows))
    lost = c.call("health").get("journal_failures", 0)
    if lost:   # on stderr in both modes: stdout keeps its shape
        print(f"herder: {lost} event(s) could not be written to the journal (disk full or failing?); "
              "they are missing from `herder events`", file=sys.stderr)
    return EXIT_OK


def _action_result(args: Any, res: dict[str, Any]) -> int:
    if args.json:
        _dump(res)
    else:
        for r in res["instances"]:
            extra = f" (pid {r['pid']})" if r["pid"] else ""
            if r["state"] in ("failed", "exited", "backoff") and r.get("reason"):
                extra += f": {r['reason']}"
            print(f"{r['name']}: {r['state']}{extra}")
        if res.get("message"):
            print(res["message"], file=sys.stderr)
    return EXIT_OK if res["ok"] else EXIT_FAILED


def run_action(args: Any) -> int:
    """start / stop / restart: one request for every target, so they act together (a stop
    goes in reverse dependency order, each level at once, as `down` does)."""
    c = client(args, timeout=None)
    body = {"wait": not args.no_wait, "timeout": args.timeout}
    res = c.call(f"service_{args.command}", path={"name": ",".join(args.services)}, body=body)
    return _action_result(args, res)


def run_signal(args: Any) -> int:
    c = client(args)
    ok = EXIT_OK
    for name in args.services:
        res = c.call("service_signal", path={"name": name}, body={"signal": args.sig, "tree": args.tree})
        ok = max(ok, _action_result(args, res))
    return ok


def run_reload(args: Any) -> int:
    body: dict[str, Any] = {"dry_run": args.dry_run}
    if args.config:
        body["config"] = os.path.abspath(args.config)
    try:
        res = client(args, timeout=None).call("reload", body=body)
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
    else:
        for line in res.get("lines", []):
            print(line)
        for line in res.get("errors", []):
            print(line, file=sys.stderr)
    return EXIT_OK if res["ok"] else EXIT_FAILED


def format_event(e: dict[str, Any]) -> str:
    from herder.units import stamp_ms  # datetime: only `events` pays for it, not `status`

    ts = e.get("ts", 0.0)
    stamp = stamp_ms(ts, "%Y-%m-%d %H:%M:%S", utc=False)
    return f"{stamp} {e.get('message', '')}"


def run_events(args: Any) -> int:
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


def run_down(args: Any) -> int:
    c = client(args, timeout=None)
    # follow first, so the end of the stream (herder closing it as it exits) is seen
    events = None if args.no_wait else c.stream("events", query={"follow": True, "limit": 0})
    res = c.call("down")
    if not args.json:
        print(f"herder (pid {res['pid']}): stopping every service", file=sys.stderr)
    if events is not None:
        for e in events:
            if not args.json and e.get("kind") in ("state", "supervisor", "stop_timeout"):
                print(format_event(e), file=sys.stderr)
        wait_unlocked(res.get("state_dir"))
    if args.json:
        _dump(res)
    return EXIT_OK


def wait_unlocked(state_dir: str | None, timeout: float = 30.0) -> None:
    """Block until the supervisor has exited (released its state_dir lock), bounded."""
    if not state_dir:
        return
    from herder.store.lock import wait_released

    if not wait_released(state_dir, timeout):
        print(f"herder: the supervisor has not exited after {timeout:g}s", file=sys.stderr)
