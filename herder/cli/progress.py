"""Live progress for `up -d`, `start`, `stop`, `restart`, `reload` and `down`.

Why: an operator who types `herder start web` and sees nothing for 30 s, then `running`
with exit 0, never learns that web crashed twice on the way. Here every command that
waits follows the supervisor's event stream (subscribed before the action is sent, so
nothing it causes is missed; never polled) and shows one line per instance as it moves:

    db      ready in 1.0s (pid 4121)
    web     waiting for db (ready)…
    worker  exit 1 after 0.2s: ValueError: bad value; restarting in 0.4s

On a terminal the lines are redrawn in place (like `docker compose up -d`); elsewhere
(a pipe, a log, CI) nothing is redrawn: one line is printed when an instance settles or
fails on the way, then the summary. Anything that failed on the way (an exit while it was
meant to start, a failed start) makes the command exit 1 even if a retry later worked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator

from herder.cli.render import STATE_STYLE, paint, terminal_width, use_colour

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from typing import Any, TextIO

SETTLED_OK = {"running", "reloading", "stopped"}


class Line:
    """What one instance is doing during this command."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = ""
        self.text = ""
        self.first_ts: float | None = None
        self.failures: list[str] = []
        self.pid: int | None = None
        self.settled = False
        self.printed = ""
        self.ready_seen = False


class View:
    """Turns events into per-instance lines; draws them in place on a terminal."""

    def __init__(self, stream: TextIO | None = None, *, watch: Iterable[str] | None = None,
                 verb: str = "start", colour: bool | None = None, settled_lines: bool = True) -> None:
        self.out = stream or sys.stdout
        self.tty = terminal_width(self.out) is not None
        self.colour = use_colour(self.out, colour)
        self.watch = set(watch) if watch is not None else None
        self.verb = verb
        self.settled_lines = settled_lines   # off the terminal: print a line when an instance settles
        self.lines: dict[str, Line] = {}
        self.drawn = 0
        self.started = time.monotonic()

    # -- events -----------------------------------------------------------------------

    def wanted(self, instance: str) -> bool:
        if not instance:
            return False
        return self.watch is None or instance in self.watch or instance.split(".")[0] in self.watch

    def feed(self, e: dict[str, Any]) -> None:
        name = e.get("instance", "")
        if not self.wanted(name):
            return
        line = self.lines.get(name) or self.lines.setdefault(name, Line(name))
        kind, ts = e.get("kind"), float(e.get("ts", 0.0))
        if line.first_ts is None and kind != "snapshot":
            line.first_ts = ts
        took = f" in {seconds(ts - line.first_ts)}" if line.first_ts is not None else ""
        if kind == "snapshot":
            line.state, line.pid = e.get("state", ""), e.get("pid")
            line.text = e.get("state", "")
            return self.draw(line)
        if kind == "spawn":
            line.pid = e.get("pid")
            return None
        if kind == "waiting":
            line.text = str(e.get("message", "")).split(": ", 1)[-1] + "…"
        elif kind == "exit":
            line.pid = None
            if e.get("state") in ("backoff", "failed") or (e.get("state") == "exited" and e.get("code") not in (0,)):
                what = f"exit {e['code']}" if e.get("code") is not None else f"killed by {e.get('signal')}"
                tail = [x for x in e.get("stderr_tail") or [] if x.strip()]
                why = f"{what} after {float(e.get('runtime') or 0):.1f}s" + (f": {tail[-1].strip()}" if tail else "")
                line.failures.append(why)
                line.text, line.settled = why, False
                self.note(line, why)
        elif kind == "restart":
            line.text = (line.text + "; " if line.text else "") + f"restarting in {seconds(float(e.get('delay', 0)))}"
            line.settled = False
        elif kind == "ready_check":
            line.ready_seen = True
            return None
        elif kind == "failed":
            line.failures.append(str(e.get("reason", "")))
        elif kind == "state":
            line.state = to = e.get("to", "")
            if to == "running":
                pid = f" (pid {line.pid})" if line.pid else ""
                line.text = ("ready" if line.ready_seen else "started") + took + pid
            elif to == "starting":
                line.text = "starting…"
            elif to == "stopping":
                line.text = "stopping…"
            elif to == "stopped":
                line.text = f"stopped{took}"
            elif to == "exited":
                line.text = "completed" if e.get("reason", "") in ("", "exit 0") and not line.failures \
                    else f"exited: {e.get('reason')}"
            elif to == "failed":
                line.text = f"failed: {e.get('reason', '')}"
            elif to == "waiting" and e.get("reason") == "dependencies":
                line.text = "waiting for its dependencies…"
            line.settled = to in ("running", "stopped", "exited", "failed")
        else:
            return None
        self.draw(line)
        return None

    def note(self, line: Line, text: str) -> None:
        """A failure on the way: printed at once when not on a terminal."""
        if not self.tty:
            self.out.write(f"{line.name}: {text}\n")
            self.out.flush()

    # -- drawing ----------------------------------------------------------------------

    def _row(self, line: Line, width: int) -> str:
        name = line.name.ljust(max((len(n) for n in self.lines), default=0))
        style = STATE_STYLE.get(line.state) if line.settled or line.state == "failed" else None
        text = line.text
        room = (width - len(name) - 2) if self.tty else 10**6
        if len(text) > room:
            text = text[: max(room - 1, 0)] + "…"
        return f"{name}  {paint(text, style, self.colour)}"

    def draw(self, line: Line | None = None) -> None:
        if self.tty:
            width = terminal_width(self.out) or 80
            buf = f"\x1b[{self.drawn}F" if self.drawn else ""
            for ln in self.lines.values():
                buf += "\x1b[2K" + self._row(ln, width) + "\n"
            self.drawn = len(self.lines)
            self.out.write(buf)
            self.out.flush()
        elif line is not None and self.settled_lines and line.settled and line.printed != line.text:
            line.printed = line.text
            self.out.write(f"{line.name}: {line.text}\n")
            self.out.flush()

    # -- the end ----------------------------------------------------------------------

    def settle(self, records: Iterable[dict[str, Any]]) -> None:
        """The supervisor's final word for each instance (what the action answered)."""
        for r in records:
            if not self.wanted(r["name"]):
                continue
            line = self.lines.get(r["name"]) or self.lines.setdefault(r["name"], Line(r["name"]))
            if line.state != r["state"] or not line.text:
                line.state, line.pid = r["state"], r.get("pid")
                line.text = describe(r)
            line.settled = True
            self.draw(line)

    def failed(self) -> list[Line]:
        return [ln for ln in self.lines.values() if ln.failures or ln.state == "failed"]

    def summary(self, what: str = "") -> str:
        n = len(self.lines)
        bad = self.failed()
        took = time.monotonic() - self.started
        counts: dict[str, int] = {}
        for ln in self.lines.values():
            counts[ln.state or "unchanged"] = counts.get(ln.state or "unchanged", 0) + 1
        parts = [f"{v} {k}" for k, v in sorted(counts.items())]
        text = f"{what or self.verb}: {n} instance{'s' if n != 1 else ''} ({', '.join(parts)}) in {took:.1f}s"
        on_the_way = [ln.name for ln in bad if ln.state != "failed"]
        if on_the_way:
            text += f"; {len(on_the_way)} failed on the way ({', '.join(on_the_way)}; see `herder events`)"
        return text


def seconds(s: float) -> str:
    return f"{s:.2f}s" if s < 1 else f"{s:.1f}s"


def describe(r: dict[str, Any]) -> str:
    """One instance record as the end of a progress line."""
    state = r["state"]
    if state == "running":
        return f"running (pid {r['pid']})" if r.get("pid") else "running"
    if state == "exited" and r.get("exit") == 0:
        return "completed"
    why = r.get("reason") or (f"exit {r['exit']}" if r.get("exit") is not None else "")
    return f"{state}: {why}" if why and state in ("failed", "exited", "backoff", "waiting") else state


def follow(client: Any, action: Callable[[], Any], view: View, *,
           final: Callable[[Any], list[dict[str, Any]]],
           refresh: Callable[[list[str]], list[dict[str, Any]]] | None = None,
           timeout: float = 300.0) -> Any:
    """Subscribe to events, run `action` (the blocking API call) beside them, show progress.

    Returns what `action` returned (or raises what it raised). `final(result)` gives the
    records of the instances the action was about. After the answer, two things are waited
    for, each on the event stream:

    1. the events the action caused: the newest event id is read before the action and
       after it (`_newest_event`), and the stream is read up to the second one, so what is
       printed never depends on how fast this process is scheduled;
    2. each of those instances settling for good: stopped, completed, failed, or running for
       its min_uptime (supervisord's startsecs; `up -d` does the same). One that crashes
       after the answer is followed through backoff until it runs or fails for good; the
       whole command stays within `timeout` seconds of its start.

    Then `refresh(names)` gives the supervisor's final word, which settles every line."""
    import queue  # threads only here: `herder status` imports this module too
    import threading

    from herder.control.client import lines_of

    started = time.monotonic()
    resp = client.open_stream("events", query={"follow": True, "limit": 0})
    before = _newest_event(client)   # every event after this one is on our stream
    q: queue.Queue[tuple[str, Any]] = queue.Queue()

    def read(it: Iterator[dict[str, Any]]) -> None:
        try:
            for e in it:
                q.put(("event", e))
        except (OSError, ValueError):   # herder exited, or we closed the stream (timeouts are OSErrors)
            pass
        q.put(("end", None))

    def act() -> None:
        try:
            q.put(("done", action()))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            q.put(("error", e))

    threading.Thread(target=read, args=(lines_of(resp),), daemon=True, name="herder-events").start()
    threading.Thread(target=act, daemon=True, name="herder-action").start()
    result: Any = None
    settle = Settling(view)
    seen = before
    mark: int | None = None          # the newest event once the action answered
    catch_up = end = 0.0
    ended = asked = False
    try:
        while True:
            now = time.monotonic()
            caught_up = mark is not None and (ended or seen >= mark)
            deadline = None if mark is None else (end if caught_up else catch_up)
            finished, wake = settle.plan(now, caught_up, ended, deadline)
            if finished:
                break
            try:
                kind, value = q.get(timeout=None if wake is None else max(0.0, wake - now))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                continue
            if kind == "event":
                seen = max(seen, int(value.get("id") or 0))
                view.feed(value)
                if settle.feed(value):
                    asked = False   # a state changed: worth asking about the waiting ones again
            elif kind == "error":
                raise value
            elif kind == "done":
                result = value
                settle.watch(final(value))
                mark = _newest_event(client)
                catch_up, end = time.monotonic() + CATCH_UP, started + timeout
            elif kind == "end":
                ended = True
            if mark is not None and not asked and refresh is not None and settle.blocked_only():
                settle.note_blocked(refresh(settle.waiting()))   # once per state change while only they are left
                asked = True
    finally:
        resp.abort()
    records = settle.records
    if refresh is not None and records:
        fresh = {r["name"]: r for r in refresh([r["name"] for r in records])}
        records = [fresh.get(r["name"], r) for r in records]
    view.settle(records)
    return result


CATCH_UP = 30.0   # at most this long for the events an answered action caused (a stuck supervisor)
GOOD_FOR_NOW = frozenset({"stopped", "exited", "failed"})


def _newest_event(client: Any) -> int:
    """The id of the newest event in the journal: a mark in the event stream."""
    past = list(client.stream("events", query={"limit": 1}))
    return int(past[-1].get("id") or 0) if past else 0


class Settling:
    """When the instances an action was about have settled for good (see `follow`)."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.records: list[dict[str, Any]] = []
        self.state: dict[str, str] = {}
        self.min_uptime: dict[str, float] = {}
        self.running_since: dict[str, float] = {}   # monotonic
        self.blocked: set[str] = set()

    def watch(self, records: list[dict[str, Any]]) -> None:
        """The action's answer: what to wait for, and the state of those no event has shown yet."""
        now = time.monotonic()
        self.records = [r for r in records if self.view.wanted(r["name"])]
        for r in self.records:
            name = r["name"]
            self.min_uptime[name] = float(r.get("min_uptime") or 0)
            if name not in self.state:
                self._moved(name, r["state"], now - float(r.get("uptime") or 0))
            if r.get("blocked"):
                self.blocked.add(name)

    def feed(self, e: dict[str, Any]) -> bool:
        """Take one event; True when it was a state change."""
        if e.get("kind") != "state" or not e.get("instance"):
            return False
        lag = max(0.0, time.time() - float(e.get("ts") or time.time()))   # it happened this long ago
        self._moved(e["instance"], str(e.get("to", "")), time.monotonic() - lag)
        return True

    def _moved(self, name: str, state: str, since: float) -> None:
        self.state[name] = state
        self.blocked.discard(name)
        if state in ("running", "reloading"):
            self.running_since.setdefault(name, since)
        else:
            self.running_since.pop(name, None)

    def _young_until(self, name: str) -> float | None:
        if self.state.get(name) not in ("running", "reloading") or name not in self.running_since:
            return None
        return self.running_since[name] + self.min_uptime.get(name, 0.0)

    def _settled(self, name: str, now: float) -> bool:
        state = self.state.get(name, "")
        if state in GOOD_FOR_NOW or name in self.blocked:
            return True
        until = self._young_until(name)
        return until is not None and until <= now

    def done(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return all(self._settled(r["name"], now) for r in self.records)

    def plan(self, now: float, caught_up: bool, ended: bool, deadline: float | None) -> tuple[bool, float | None]:
        """(finished, when to look again) at one instant `now`. Both halves read the same
        instant: with two clock reads, a wake-up that lands on an instance's min_uptime could
        find it still young in the first and past due in the second, and then no wake-up is
        left but the command's deadline (a `restart` that sat for 300 s after its answer)."""
        if caught_up and (ended or self.done(now)):
            return True, None
        return False, min((x for x in (deadline, self.next_wake(now)) if x is not None), default=None)

    def next_wake(self, now: float) -> float | None:
        """When the next running instance passes its min_uptime (nothing else happens without an event)."""
        return min((t for r in self.records if (t := self._young_until(r["name"])) is not None and t > now),
                   default=None)

    def waiting(self) -> list[str]:
        return [r["name"] for r in self.records if self.state.get(r["name"]) == "waiting"]

    def blocked_only(self) -> bool:
        """Only instances waiting for dependencies are left (worth asking whether those are hopeless)."""
        now = time.monotonic()
        left = [r["name"] for r in self.records if not self._settled(r["name"], now)]
        return bool(left) and all(self.state.get(n) == "waiting" for n in left)

    def note_blocked(self, records: list[dict[str, Any]]) -> None:
        """A waiting instance whose dependency will not get there by itself is settled (as in `up -d`)."""
        self.blocked.update(r["name"] for r in records if r.get("blocked") and r["state"] == "waiting")
