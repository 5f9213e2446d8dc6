"""The SQLite journal: batched writes off the caller's thread, ids that continue, retention."""

from __future__ import annotations

import threading
import time

from herder.store.journal import Journal, query


def ev(i, ts=None):
    return {"ts": ts if ts is not None else time.time(), "instance": f"s{i % 3}", "kind": "state",
            "message": f"event {i}", "to": "running"}


def test_writes_queries_and_row_retention(tmp_path):
    path = tmp_path / "journal.db"
    j = Journal(path, max_age=86400, max_rows=100)
    committed = threading.Event()
    j.start(lambda upto: committed.set() if upto >= 1000 else None)
    for i in range(1, 1001):
        j.put(i, ev(i))
    assert committed.wait(30)
    j.close()
    assert (path.stat().st_mode & 0o777) == 0o600
    j2 = Journal(path, max_age=86400, max_rows=100)      # the trim runs at writer start
    assert j2.last_id() == 1000
    j2.start()
    j2.close()
    rows = query(path, limit=10_000)
    assert len(rows) == 100 and rows[0]["id"] == 901 and rows[-1]["message"] == "event 1000"
    assert rows[-1]["to"] == "running"
    only = query(path, instances={"s1"}, limit=5)
    assert len(only) == 5 and all(r["instance"] == "s1" for r in only)
    assert [r["id"] for r in query(path, before=905, limit=3)] == [902, 903, 904]


def test_age_retention(tmp_path):
    path = tmp_path / "journal.db"
    j = Journal(path, max_age=60, max_rows=1000)
    j.start()
    j.put(1, ev(1, ts=time.time() - 3600))
    j.put(2, ev(2))
    j.close()
    j3 = Journal(path, max_age=60, max_rows=1000)
    j3.start()
    j3.close()
    assert [r["id"] for r in query(path)] == [2]
