"""`herder stop/start/restart A B C …` act on all targets together, as one job (issue 17,
item 8): stops go in reverse dependency order with each level at once, like `down`."""

from __future__ import annotations

import json

# a program that ignores SIGTERM (an ignored signal stays ignored across exec) and says so
DEAF = """command = ["sh", "-c", "trap '' TERM; echo deaf; exec sleep 1000"]
logs = { timestamps = false }
ready = { log = "^deaf$", timeout = "0s" }
stop_timeout = "500ms"
"""


def config(n: int) -> str:
    out = "[services.db]\n" + DEAF
    for i in range(n):
        out += f'[services.w{i}]\n{DEAF}depends_on = {{ db = "ready" }}\n'
    return out


def events(h, *names: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    r = h.cli("events", "--json", "-n", "1000", *names)
    return [json.loads(x) for x in r.stdout.splitlines()]


def test_stop_of_many_is_one_job_in_dependency_order(herd) -> None:  # type: ignore[no-untyped-def]
    n = 8
    h = herd(config(n))
    assert h.up().returncode == 0
    names = ["db", *(f"w{i}" for i in range(n))]
    r = h.cli("stop", *names)
    assert r.returncode == 0, r.stderr
    assert all(x["state"] == "stopped" for x in h.status().values())
    seq = [(e["instance"], e["kind"], e.get("to")) for e in events(h) if e["kind"] in ("state", "stop_timeout",
                                                                                         "operator")]
    ops = [e for e in seq if e[1] == "operator"]
    assert len(ops) == 1                                    # one request for every target
    workers_stopping = [i for i, e in enumerate(seq) if e[0] != "db" and e[2] == "stopping"]
    first_timeout = next(i for i, e in enumerate(seq) if e[1] == "stop_timeout")
    db_stopping = next(i for i, e in enumerate(seq) if e[0] == "db" and e[2] == "stopping")
    assert len(workers_stopping) == n and max(workers_stopping) < first_timeout   # one level, at once
    assert db_stopping > max(i for i, e in enumerate(seq) if e[0] != "db" and e[2] == "stopped")


def test_start_and_restart_of_many(herd) -> None:  # type: ignore[no-untyped-def]
    h = herd(config(2))
    assert h.up().returncode == 0
    assert h.cli("stop", "db", "w0", "w1").returncode == 0
    r = h.cli("start", "w1", "w0", "db")
    assert r.returncode == 0, r.stderr
    assert all(x["state"] == "running" for x in h.status().values())
    r = h.cli("restart", "db", "w0", "w1")
    assert r.returncode == 0, r.stderr
    st = h.status()
    assert all(x["state"] == "running" and x["restarts"] == 1 for x in st.values()), st
