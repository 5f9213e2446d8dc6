"""`{state_dir}/run.json`: every live instance's pid, start time, cgroup and cookie — and what
a new herder may conclude from it.

Written atomically whenever the set of live processes changes, off the loop and
coalesced (at most one write in flight; a change during a write triggers one more).
The write happens within milliseconds of a spawn, not before the child runs: a herder
killed in that window does not know the newest child from the file (fsync on the loop
would cost every restart 1–5 ms) — the system scan below finds it.

At start-up (`leftovers`), a previous herder's instances must be stopped, never run
twice; and herder must only ever stop what it can prove is its own (architecture.md
rule 17), so a record proves nothing by itself:

- a pid counts only when its start time *and* its cookie (HERDER_INSTANCE_ID, which
  herder put in its environment) match the record;
- a recorded cgroup counts only when it lies one level below herder's own subtree for
  this state_dir (herder.process.cgroup.instance_cgroup);
- what the system itself says is added whatever the file says: every process in that
  subtree, and every process whose cookie carries this state_dir's tag (cookies are
  `<tag>.<random>`). A missing, corrupt or forged run.json therefore never means
  "nothing is running", and never names a process herder does not own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from herder.process import tree
from herder.process.cgroup import Cgroup, instance_cgroup
from herder.store.atomic import Loaded, load_json, write_json
from herder.store.statedir import state_tag


@dataclass(frozen=True)
class LiveRecord:
    pid: int
    start_time: int | None
    cgroup: str | None
    cookie: str


def new_cookie(state_dir: Path) -> str:
    """An instance's cookie: this state_dir's tag (so a scan can find its processes) and a secret."""
    return f"{state_tag(state_dir)}.{secrets.token_hex(8)}"


def check(doc: Any) -> str | None:
    """Why doc is not a run.json herder wrote, or None."""
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), dict):
        return "is not a run-state record (expected an object with \"instances\")"
    sup = doc.get("supervisor_pid")
    if sup is not None and (not isinstance(sup, int) or isinstance(sup, bool)):
        return "supervisor_pid is not a number"
    for name, rec in doc["instances"].items():
        if not isinstance(rec, dict):
            return f"instance {name!r} is not an object"
        pid, st, cg, cookie = rec.get("pid"), rec.get("start_time"), rec.get("cgroup"), rec.get("cookie")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            return f"instance {name!r}: pid {pid!r} is not a process id"
        if st is not None and (not isinstance(st, int) or isinstance(st, bool)):
            return f"instance {name!r}: start_time {st!r} is not a number"
        if cg is not None and not isinstance(cg, str):
            return f"instance {name!r}: cgroup {cg!r} is not a path"
        if not isinstance(cookie, str):
            return f"instance {name!r}: cookie {cookie!r} is not text"
    return None


def read(path: Path, client: bool = False) -> tuple[Loaded, int | None, dict[str, LiveRecord]]:
    """(how the file read, its supervisor pid, its records). A bad file is set aside (Loaded.problem),
    except for a `client` (`herder down` …): it only reads, trusting a file of the state_dir's
    owner, and a problem is the caller's to report."""
    owner = None
    if client:
        try:
            owner = os.stat(path.parent).st_uid
        except OSError as e:
            return Loaded(problem=f"cannot be checked: {e.strerror}", moved_to=None), None, {}
    got = load_json(path, check, read_only=client, owner=owner)
    if got.value is None:
        return got, None, {}
    recs = {str(n): LiveRecord(r["pid"], r.get("start_time"), r.get("cgroup"), r.get("cookie", ""))
            for n, r in got.value["instances"].items()}
    return got, got.value.get("supervisor_pid"), recs


def proves(rec: LiveRecord, seen_start: int | None, seen_cookie: str | None) -> bool:
    """Whether what /proc says of rec.pid proves it is the process the record names: the
    same start time (not a recycled pid) and the same cookie (a process herder started)."""
    return (rec.start_time is not None and seen_start == rec.start_time
            and bool(rec.cookie) and seen_cookie == rec.cookie)


@dataclass
class Leftovers:
    """What a previous herder on this state_dir left running, every pid proven herder's."""

    pids: dict[str, set[int]] = field(default_factory=dict)   # instance -> processes
    problems: list[str] = field(default_factory=list)         # state files that could not be trusted
    old_pid: int | None = None
    ignored: list[str] = field(default_factory=list)          # records that proved nothing

    def all_pids(self) -> set[int]:
        return set().union(*self.pids.values()) if self.pids else set()


def leftovers(state_dir: Path, cgroup_root: Path | None) -> Leftovers:
    """Read run.json and the system; the processes a previous herder left, proven ours."""
    got, old_pid, records = read(state_dir / "run.json")
    out = Leftovers(old_pid=old_pid)
    if got.problem:
        out.problems.append(got.report(state_dir / "run.json")
                            + "; herder looks for its processes in its cgroups and by their cookies instead")
    me = os.getpid()

    def add(name: str, pids: set[int]) -> None:
        pids.discard(me)
        if pids:
            out.pids.setdefault(name, set()).update(pids)

    for name, rec in records.items():
        cg = instance_cgroup(rec.cgroup, cgroup_root)
        if cg is not None:
            add(name, set(Cgroup(cg).procs()))
        if proves(rec, tree.start_time(rec.pid), tree.cookie(rec.pid)):
            add(name, tree.members(rec.pid, rec.pid, rec.cookie))
        elif cg is None and tree.start_time(rec.pid) is not None:
            out.ignored.append(f"{name} (pid {rec.pid}: start time or cookie do not match)")
    if cgroup_root is not None:                 # what the system says, whatever the file says
        try:
            subdirs = [p for p in cgroup_root.iterdir() if p.is_dir()]
        except OSError:
            subdirs = []
        for cg_dir in subdirs:
            add(cg_dir.name, set(Cgroup(cg_dir).procs()))
    for pid, (name, _cookie) in tree.with_cookie_prefix(state_tag(state_dir) + ".").items():
        add(name, {pid})
    return out


class RunStateWriter:
    """Coalescing writer: `changed()` is cheap; the snapshot is taken once per actual write."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, LiveRecord]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def _doc(self, records: dict[str, LiveRecord], pid: int | None) -> dict[str, Any]:
        return {"supervisor_pid": pid, "instances": {n: asdict(r) for n, r in records.items()}}

    async def _flush(self) -> None:
        while self._dirty:
            self._dirty = False
            await asyncio.to_thread(write_json, self.path, self._doc(self._snapshot(), os.getpid()))

    async def close(self, final: bool = True) -> None:
        """The last write; `final=False` (an upgrade: the services run on) keeps the records."""
        if self._task is not None:
            await self._task
        write_json(self.path, self._doc(self._snapshot(), None if final else os.getpid()))
