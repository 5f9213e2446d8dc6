"""State files on a real filesystem (issue 13): trusting state_dir, setting bad files aside, the
intent kept twice, the journal checked at open, and leftovers proven with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from herdertest import ROOT

from herder.store import runstate, statedir
from herder.store.atomic import load_json, write_json
from herder.store.intent import Intent
from herder.store.journal import Journal, JournalUnusable, query
from herder.store.statedir import UnsafeStateDir

NOBODY = 65534


def test_a_missing_state_dir_is_made_0755_at_most_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        made = statedir.ensure(tmp_path / "a" / "b" / "state")
    finally:
        os.umask(old)
    for p in (tmp_path / "a", tmp_path / "a" / "b", made):
        assert p.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o2770])
def test_a_state_dir_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    d = tmp_path / "state"
    d.mkdir()
    d.chmod(mode)
    with pytest.raises(UnsafeStateDir, match=r"is writable by .* Expected `chmod go-w"):
        statedir.check(d)


def test_group_write_is_allowed_for_the_socket_group_only(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    d.chmod(0o770)
    gid = d.stat().st_gid
    assert statedir.check(d, group_gid=gid) == d
    with pytest.raises(UnsafeStateDir, match="allowed only for the socket_group"):
        statedir.check(d, group_gid=gid + 1)
    d.chmod(0o777)
    with pytest.raises(UnsafeStateDir):
        statedir.check(d, group_gid=gid)


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(UnsafeStateDir, match="is not a directory"):
        statedir.check(tmp_path / "state")


def test_a_sticky_world_writable_parent_is_fine_a_plain_one_is_not(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert statedir.ensure(shared / "state").is_dir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeStateDir, match=r"\(above state_dir\) is writable by its group and others"):
        statedir.check(shared / "state")


def test_a_symlink_to_state_dir_counts_as_its_maker_says(tmp_path: Path) -> None:
    real = statedir.ensure(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert statedir.check(link) == real
    if ROOT:
        os.lchown(link, NOBODY, NOBODY)
        with pytest.raises(UnsafeStateDir, match="is a symlink made by nobody"):
            statedir.check(link)


@pytest.mark.skipif(not ROOT, reason="making files of another user needs root")
def test_entries_of_another_user_are_refused(tmp_path: Path) -> None:
    d = statedir.ensure(tmp_path / "state")
    (d / "run.json").write_text("{}")
    os.chown(d / "run.json", NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDir, match=r"run.json belongs to nobody \(uid 65534\)"):
        statedir.check(d)
    os.unlink(d / "run.json")
    os.chown(d, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDir, match="belongs to nobody"):
        statedir.check(d)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "is empty"),
    (b'{"instances": {', "is not valid JSON"),
    (b"\x00\xff\xfe", "is not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"instances": 3}', "is not a run-state record"),
])
def test_a_bad_state_file_is_set_aside_with_the_reason(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(content)
    path.chmod(0o600)
    got = load_json(path, runstate.check)
    assert got.value is None and got.problem is not None and problem in got.problem
    assert got.moved_to is not None and got.moved_to.name.startswith("run.json.corrupt-")
    assert got.moved_to.read_bytes() == content and not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: files of another user are made with chown")
def test_a_client_reads_another_users_run_json_without_moving_it(tmp_path: Path) -> None:
    """Review finding 13: a root `herder down` against a herder another user runs reads that
    user's run.json (trusting the state_dir's owner), and never renames a file it does not
    own; one it cannot trust is "cannot verify" (exit 1 with a message), not "nothing runs"."""
    from herder.cli.ctl import _left_running

    d = tmp_path / "state"
    d.mkdir(mode=0o755)
    os.chown(d, NOBODY, NOBODY)
    path = d / "run.json"
    write_json(path, {"supervisor_pid": 1, "instances": {}})
    os.chown(path, NOBODY, NOBODY)
    got, _, recs = runstate.read(path, client=True)
    assert got.problem is None and recs == {}
    assert _left_running(str(d)) == []
    os.chown(path, 1234, 1234)               # neither the state_dir's owner nor this process's uid
    got, _, _ = runstate.read(path, client=True)
    assert got.problem is not None and "belongs to uid 1234" in got.problem and got.moved_to is None
    assert _left_running(str(d)) == ["(unverified)"]
    assert path.exists() and [p.name for p in d.iterdir()] == ["run.json"]     # nothing set aside


def test_not_regular_files_are_set_aside_without_reading_them(tmp_path: Path) -> None:
    fifo = tmp_path / "intent.json"
    os.mkfifo(fifo)                                         # reading it would hang
    got = load_json(fifo)
    assert got.problem == "is not a regular file" and got.moved_to is not None
    (tmp_path / "run.json").symlink_to("/etc/hostname")
    got = load_json(tmp_path / "run.json")
    assert got.problem is not None and "symlink" in got.problem
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "x.json").chmod(0o666)
    assert "writable by others" in (load_json(tmp_path / "x.json").problem or "")
    assert load_json(tmp_path / "missing.json").problem is None


def test_the_intent_survives_the_loss_of_either_copy(tmp_path: Path) -> None:
    i = Intent(tmp_path / "intent.json").load()
    i.hold(["a"])
    i.save(i.snapshot())
    i.hold(["b"])
    i.save(i.snapshot())
    for bad in ("intent.json", "intent.prev.json"):
        (tmp_path / bad).write_text("garbage")
        again = Intent(tmp_path / "intent.json").load()
        assert again.held == {"a", "b"} and len(again.problems) == 1 and "using the other copy" in again.problems[0]
        again.save(again.snapshot())
    (tmp_path / "intent.json").write_text("")
    (tmp_path / "intent.prev.json").write_text("")
    lost = Intent(tmp_path / "intent.json").load()
    assert lost.held == set() and "no copy was left" in lost.problems[-1]


def test_a_crash_between_the_two_writes_keeps_the_newer_copy(tmp_path: Path) -> None:
    write_json(tmp_path / "intent.json", {"stopped": ["new"], "generation": 8})
    write_json(tmp_path / "intent.prev.json", {"stopped": ["old"], "generation": 7})
    assert Intent(tmp_path / "intent.json").load().held == {"new"}


def test_a_corrupt_journal_is_replaced_and_the_old_one_kept(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    j = Journal(db, 86400, 1000)
    assert len(j.problems) == 1 and "moved aside to journal.db.corrupt-" in j.problems[0]
    assert j.last_id() == 0 and query(db) == []
    assert any(p.name.startswith("journal.db.corrupt-") for p in tmp_path.iterdir())


def test_a_journal_that_cannot_be_made_raises_a_clear_error(tmp_path: Path) -> None:
    sub = tmp_path / "gone"                               # its folder does not exist
    with pytest.raises(JournalUnusable, match="herder runs without a journal"):
        Journal(sub / "journal.db", 86400, 1000)
    (tmp_path / "journal.db").mkdir()
    with pytest.raises(JournalUnusable, match="is not a regular file"):
        query(tmp_path / "journal.db")


@pytest.fixture
def cookie_proc(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real process carrying a cookie of tmp_path's state_dir, as herder's children do."""
    cookie = runstate.new_cookie(tmp_path)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                         env={**os.environ, "HERDER_INSTANCE_ID": cookie, "HERDER_INSTANCE": "web"})
    yield p, cookie
    p.kill()
    p.wait()


def test_leftovers_are_proven_by_start_time_and_cookie(tmp_path: Path,
                                                       cookie_proc: tuple[subprocess.Popen[bytes], str]) -> None:
    from herder.process.tree import cookie as cookie_of
    from herder.process.tree import start_time

    p, cookie = cookie_proc
    for _ in range(1000):                 # bounded: the environment is readable once exec is done
        if cookie_of(p.pid) == cookie:
            break
    st = start_time(p.pid)
    write_json(tmp_path / "run.json", {"supervisor_pid": 1, "instances": {
        "web": {"pid": p.pid, "start_time": st, "cgroup": None, "cookie": cookie}}})
    left = runstate.leftovers(tmp_path, None)
    assert left.pids == {"web": {p.pid}} and not left.problems and not left.ignored
    os.unlink(tmp_path / "run.json")      # no record at all: the cookie scan still finds it
    assert runstate.leftovers(tmp_path, None).pids == {"web": {p.pid}}
    assert runstate.leftovers(tmp_path / "elsewhere", None).pids == {}   # another state_dir's tag


def test_a_record_naming_a_stranger_proves_nothing(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "1000"])
    try:
        from herder.process.tree import start_time

        write_json(tmp_path / "run.json", {"supervisor_pid": 1, "instances": {
            "web": {"pid": stranger.pid, "start_time": start_time(stranger.pid), "cgroup": None, "cookie": "x"}}})
        left = runstate.leftovers(tmp_path, None)
        assert left.pids == {} and left.ignored and f"pid {stranger.pid}" in left.ignored[0]
    finally:
        stranger.kill()
        stranger.wait()


def test_json_written_is_read_back(tmp_path: Path) -> None:
    write_json(tmp_path / "x.json", {"a": 1})
    assert load_json(tmp_path / "x.json").value == {"a": 1}
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o600
