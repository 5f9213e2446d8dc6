"""The event journal: every supervisor event in SQLite (`{state_dir}/journal.db`, WAL).

Why a writer thread fed by a queue: an fsync can take tens of milliseconds, and the
supervisor loop must never wait for the disk. `put()` only appends to a SimpleQueue; the
thread takes whatever has accumulated, inserts it in one transaction, and trims the
table to `max_rows` and `max_age` now and then. Readers (the API) open their own
connection in a worker thread; WAL lets them read while the writer writes.

Event ids are assigned by the caller, in bus order, and continue across herder restarts
(`last_id()`), so a follower can join the journal and the live stream without gaps or
duplicates (`synced(id)` waits until the writer has committed up to id).

The journal is history, not control: a journal that cannot be used must never stop
supervision. Opening checks it (a regular file of herder's, `PRAGMA quick_check`, a
write lock it can take); a corrupt one is moved aside (`journal.db.corrupt-<time>`,
with its -wal and -shm) and a new one started; one that cannot be made at all
(unwritable folder, full disk) raises JournalUnusable, and herder runs without it. Write
failures later are counted and reported once per episode (`on_error`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from herder.errors import HerderError
from herder.store.atomic import set_aside

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, instance TEXT NOT NULL, kind TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
_TRIM_EVERY = 500      # rows written between two retention passes
_BATCH = 1000


class JournalUnusable(HerderError):
    """The journal cannot be opened or made; the message says why (herder runs without it)."""


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _problem(path: Path, deep: bool = True) -> str | None:
    """Why the journal at path cannot be used as it is (None: fine, or missing). `deep`
    (when herder opens it to write): also its owner and an integrity check."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if not deep:
        return None
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to herder's uid {os.geteuid()}"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                return "is corrupt (" + "; ".join(str(r[0]) for r in rows[:3]) + ")"
            db.execute("SELECT id, ts, instance, kind, message, data FROM events LIMIT 1").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None     # an empty database: the schema is created below
        return f"cannot be read ({e})"
    except sqlite3.DatabaseError as e:
        return f"is not a journal ({e})"
    return None


class Journal:
    def __init__(self, path: Path, max_age: float, max_rows: int) -> None:
        """Open (or make) the journal. A bad one is moved aside first (`problems` says so);
        JournalUnusable when no journal can be had here."""
        self.path = path
        self.max_age, self.max_rows = max_age, max_rows
        self._q: queue.SimpleQueue[tuple[int, float, str, str, str, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._written = 0                       # highest id committed (read by the loop)
        self._on_commit: Callable[[int], None] | None = None
        self.on_error: Callable[[str], None] | None = None   # told (from the writer thread) once per episode
        self._failing = False
        self.failures = 0
        self.problems: list[str] = []
        bad = _problem(path)
        if bad is not None:
            moved = set_aside(path)
            if moved is None:
                raise JournalUnusable(f"{path} {bad}, and cannot be moved aside; herder runs without a journal")
            for side in ("-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.rename(f"{path}{side}", f"{moved}{side}")
            self.problems.append(f"{path}: {bad}; moved aside to {moved.name}, a new journal was started")
        try:
            db = _connect(path)
            try:
                db.executescript(_SCHEMA)
                self._last = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
                # can it be written? (sqlite opens a read-only file without a word)
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                db.execute(f"PRAGMA user_version = {version}")
            finally:
                db.close()
            path.chmod(0o600)
        except (sqlite3.Error, OSError) as e:
            raise JournalUnusable(f"{path}: cannot be used ({e}); herder runs without a journal") from None

    def last_id(self) -> int:
        return int(self._last)

    def start(self, on_commit: Callable[[int], None] | None = None) -> None:
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="herder-journal", daemon=True)
        self._thread.start()

    def put(self, ev_id: int, ev: dict[str, Any]) -> None:
        data = {k: v for k, v in ev.items() if k not in ("ts", "instance", "kind", "message", "id")}
        self._q.put((ev_id, ev["ts"], ev["instance"], ev["kind"], ev["message"], json.dumps(data, default=str)))

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        db = _connect(self.path)
        since_trim = _TRIM_EVERY  # trim once at start
        try:
            while True:
                first = self._q.get()
                batch, stop = [], first is None
                if first is not None:
                    batch.append(first)
                while len(batch) < _BATCH:
                    try:
                        item = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                if batch:
                    try:
                        with db:
                            db.execute("BEGIN")
                            db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)", batch)
                        self._failing = False
                    except sqlite3.Error as e:
                        self.failures += len(batch)
                        self._failed(e)
                    since_trim += len(batch)
                    self._written = batch[-1][0]
                    if self._on_commit is not None:
                        self._on_commit(self._written)
                if since_trim >= _TRIM_EVERY:
                    since_trim = 0
                    self._trim(db)
                if stop:
                    break
        finally:
            db.close()

    def _failed(self, e: Exception) -> None:
        if not self._failing and self.on_error is not None:
            self.on_error(f"herder: cannot write the journal {self.path}: {e}; events are lost from it "
                          f"({self.failures} so far) until it can be written again; supervision goes on")
        self._failing = True

    def _trim(self, db: sqlite3.Connection) -> None:
        try:
            with db:
                db.execute("BEGIN")
                db.execute("DELETE FROM events WHERE ts < ?", (time.time() - self.max_age,))
                db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_rows,))
        except sqlite3.Error:
            self.failures += 1


def query(path: Path, *, before: int | None = None, since: float | None = None, instances: set[str] | None = None,
          limit: int = 100) -> list[dict[str, Any]]:
    """The latest `limit` events (oldest first) with id < before and ts >= since. Blocking: run in a thread."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    if before is not None:
        where.append("id < ?")
        args.append(before)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if instances is not None:
        where.append(f"instance IN ({','.join('?' * len(instances))})")
        args.extend(sorted(instances))
    sql = (f"SELECT id, ts, instance, kind, message, data FROM events WHERE {' AND '.join(where)} "
           "ORDER BY id DESC LIMIT ?")
    bad = _problem(path, deep=False)
    if bad is not None:
        raise JournalUnusable(f"the journal {path} {bad}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(sql, (*args, limit)).fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise JournalUnusable(f"the journal {path} cannot be read: {e}") from None
    out = []
    for i, ts, inst, kind, msg, data in reversed(rows):
        try:
            extra = json.loads(data)
        except ValueError:
            extra = {}
        out.append({**extra, "id": i, "ts": ts, "instance": inst, "kind": kind, "message": msg})
    return out
