"""Reload plans, detach and its single-instance lock, rolling restarts, event streams."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time

from ctl_harness import HERDER, run

BASE = """
[services.a]
command = ["sleep", "1000"]
[services.b]
command = ["sleep", "1001"]
[services.w]
command = ["sleep", "1000"]
replicas = 2
depends_on = { a = "started" }
"""


def pids(h):
    return {n: r["pid"] for n, r in h.status().items()}


def test_reload_applies_the_plan_and_leaves_the_rest_alone(herd):
    h = herd(BASE)
    assert h.up().returncode == 0
    before = pids(h)
    new = BASE.replace('"1001"', '"1002"').replace("replicas = 2", "replicas = 3") + \
        '[services.c]\ncommand = ["sleep", "1003"]\n'
    h.write(new)
    r = h.cli("reload", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "+ add      c" in r.stdout and "~ restart  b (changed: command)" in r.stdout
    assert pids(h) == before                       # dry run: nothing touched
    r = h.cli("reload")
    assert r.returncode == 0, r.stderr
    after = pids(h)
    assert after["a"] == before["a"] and after["w.0"] == before["w.0"] and after["w.1"] == before["w.1"]
    assert after["b"] != before["b"] and after["b"] is not None
    assert after["c"] is not None and after["w.2"] is not None
    # removing a service stops it and forgets it; the others keep their pids
    h.write(new.replace('[services.c]\ncommand = ["sleep", "1003"]\n', ""))
    assert h.cli("reload").returncode == 0
    final = pids(h)
    assert "c" not in final and final["a"] == before["a"] and final["b"] == after["b"]


def test_invalid_reload_changes_nothing(herd):
    h = herd(BASE)
    assert h.up().returncode == 0
    before = h.status()
    bad = h.write(BASE.replace('command = ["sleep", "1001"]', 'command = ["sleep", "1001"]\nrestart = "allways"')
                  + "[services.d]\nreplicas = 0\n", path=h.dir / "bad.toml")
    r = run("reload", "-c", str(bad), "--socket", h.sock)
    assert r.returncode == 2
    assert "services.b.restart" in r.stderr and "services.d" in r.stderr and "nothing was changed" in r.stderr
    after = h.status()
    assert {n: (x["pid"], x["state"]) for n, x in after.items()} == \
        {n: (x["pid"], x["state"]) for n, x in before.items()}


def test_sighup_reloads(herd):
    import os
    import signal

    h = herd(BASE)
    assert h.up().returncode == 0
    before = pids(h)
    h.write(BASE + '[services.c]\ncommand = ["sleep", "1003"]\n')
    with follow(h) as ev:
        os.kill(h.holder(), signal.SIGHUP)
        assert wait_line(ev, lambda e: e["instance"] == "c" and e["kind"] == "state" and e["to"] == "running")
    after = pids(h)
    assert {n: after[n] for n in before} == before


def test_two_detached_ups_give_one_supervisor(herd):
    h = herd(BASE)
    procs = [subprocess.Popen([HERDER, "up", "-d", "-c", str(h.config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[2] == 1)
    assert "already running" in loser[1] and "herder.sock" in loser[1]
    r = h.up()
    assert r.returncode == 1 and f"pid {h.holder()}" in r.stderr


def test_up_detached_reports_failures(herd):
    h = herd(BASE + """
[services.bad]
command = ["false"]
restart = "always"
backoff = { initial = "10ms", max = "10ms" }
start_limit = { burst = 2, interval = "60s" }
""")
    r = h.up()
    assert r.returncode == 1
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert "failed" in lines["bad"] and "running" in lines["a"] and "2/2" in lines["w"]
    assert (h.state / "herder.log").exists()


class Follower:
    """`herder events -f --json` in a child; a thread turns its lines into a queue."""

    def __init__(self, h):
        self.proc = subprocess.Popen([HERDER, "events", "-f", "--json", "-n", "1", "--socket", h.sock],
                                     stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait(self, pred, timeout=30.0):
        """Events up to the first that satisfies pred, or None at the deadline / end of stream."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                e = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if e is None:
                return None
            seen.append(e)
            if pred(e):
                return seen


@contextlib.contextmanager
def follow(h):
    """Yields once the follower is subscribed (it printed its first line, the last past event)."""
    f = Follower(h)
    try:
        assert f.wait(lambda e: True) is not None
        yield f
    finally:
        f.proc.kill()
        f.proc.wait()
        f.thread.join(10)
        f.proc.stdout.close()


def wait_line(f, pred, timeout=30.0):
    return f.wait(pred, timeout)


def test_events_follow_streams_and_rolling_restart_goes_one_by_one(herd):
    h = herd(BASE.replace("replicas = 2", "replicas = 3"))
    assert h.up().returncode == 0
    with follow(h) as ev:
        r = h.cli("restart", "w")
        assert r.returncode == 0, r.stderr
        seen = wait_line(ev, lambda e: e["instance"] == "w.2" and e["kind"] == "state" and e["to"] == "running")
        assert seen is not None
    order = [(e["instance"], e["to"]) for e in seen if e["kind"] == "state" and e["instance"].startswith("w.")]
    down = {n: order.index((n, "stopping")) for n in ("w.0", "w.1", "w.2")}
    up = {n: len(order) - 1 - order[::-1].index((n, "running")) for n in ("w.0", "w.1", "w.2")}
    assert down["w.0"] < up["w.0"] < down["w.1"] < up["w.1"] < down["w.2"] < up["w.2"]
    assert any(e["kind"] == "operator" and e["uid"] == 0 and e["action"] == "restart" for e in seen)


def test_events_since_reads_the_journal(herd):
    h = herd(BASE)
    assert h.up().returncode == 0
    assert h.cli("stop", "b").returncode == 0
    r = h.cli("events", "--json", "--since", "1h", "b")
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["to"] for e in events if e["kind"] == "state"][-1] == "stopped"
    assert all(e["instance"] == "b" for e in events)
    r = h.cli("events", "--since", "2000-01-01T00:00:00Z", "-n", "3")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
