"""The pure rules of trust in state (issue 13): what proves a process or a cgroup is herder's,
and which run.json / intent.json documents herder accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herder.process.cgroup import instance_cgroup
from herder.store import intent, runstate
from herder.store.runstate import LiveRecord, proves

ROOT = Path("/sys/fs/cgroup/user.slice/herder-0123456789")


def rec(**kw: Any) -> LiveRecord:
    base: dict[str, Any] = {"pid": 4242, "start_time": 1000, "cgroup": None, "cookie": "0123456789.abcdef"}
    return LiveRecord(**{**base, **kw})


@pytest.mark.parametrize(("seen_start", "seen_cookie", "ok"), [
    (1000, "0123456789.abcdef", True),
    (1001, "0123456789.abcdef", False),    # a recycled pid: another start time
    (None, "0123456789.abcdef", False),    # gone
    (1000, None, False),                   # the real start time (anyone can read it), no cookie: forged
    (1000, "0123456789.other", False),     # another instance's cookie
])
def test_a_pid_is_herders_only_with_its_start_time_and_its_cookie(seen_start: int | None, seen_cookie: str | None,
                                                                  ok: bool) -> None:
    assert proves(rec(), seen_start, seen_cookie) is ok


def test_a_record_without_start_time_or_cookie_proves_nothing() -> None:
    assert not proves(rec(start_time=None), None, "0123456789.abcdef")
    assert not proves(rec(cookie=""), 1000, "")


@pytest.mark.parametrize(("recorded", "ok"), [
    (str(ROOT / "web.0"), True),
    (str(ROOT / "web.0") + "/", True),
    (str(ROOT), False),                                     # the subtree itself
    (str(ROOT / "web.0" / "child"), False),                 # deeper: herder never made it
    (str(ROOT / ".." / "herder-9999999999" / "web"), False),  # another state_dir's subtree
    (str(ROOT / "x" / ".." / ".." / "system.slice" / "sshd.service" / "..") , False),
    ("/sys/fs/cgroup/system.slice/sshd.service", False),   # the audit's forged cgroup
    ("relative/web", False),
    ("", False),
    (None, False),
])
def test_a_recorded_cgroup_counts_only_one_level_below_herders_subtree(recorded: str | None, ok: bool) -> None:
    got = instance_cgroup(recorded, ROOT)
    assert (got is not None) is ok
    assert instance_cgroup(recorded, None) is None


@pytest.mark.parametrize(("doc", "problem"), [
    ({"supervisor_pid": 1, "instances": {}}, None),
    ({"supervisor_pid": None, "instances": {"a": {"pid": 10, "start_time": 5, "cgroup": None, "cookie": "x"}}}, None),
    ([], "is not a run-state record"),
    ({"instances": []}, "is not a run-state record"),
    ({"supervisor_pid": "1", "instances": {}}, "supervisor_pid is not a number"),
    ({"instances": {"a": 3}}, "instance 'a' is not an object"),
    ({"instances": {"a": {"pid": 1, "cookie": "x"}}}, "pid 1 is not a process id"),
    ({"instances": {"a": {"pid": True, "cookie": "x"}}}, "is not a process id"),
    ({"instances": {"a": {"pid": 10, "start_time": "5", "cookie": "x"}}}, "start_time '5' is not a number"),
    ({"instances": {"a": {"pid": 10, "cgroup": 7, "cookie": "x"}}}, "cgroup 7 is not a path"),
    ({"instances": {"a": {"pid": 10}}}, "cookie None is not text"),
])
def test_run_json_documents(doc: Any, problem: str | None) -> None:
    got = runstate.check(doc)
    assert (got is None) if problem is None else (got is not None and problem in got)


@pytest.mark.parametrize(("doc", "ok"), [
    ({"stopped": ["a", "b.1"], "generation": 3}, True),
    ({"stopped": []}, True),                         # written before generations existed
    ({"stopped": "a"}, False),
    ({"stopped": [1]}, False),
    ({"stopped": [], "generation": -1}, False),
    ({"stopped": [], "generation": True}, False),
    (None, False),
])
def test_intent_documents(doc: Any, ok: bool) -> None:
    assert (intent.check(doc) is None) is ok


def test_cookies_carry_the_state_dirs_tag(tmp_path: Path) -> None:
    from herder.store.statedir import state_tag

    a, b = runstate.new_cookie(tmp_path), runstate.new_cookie(tmp_path)
    assert a != b and a.startswith(state_tag(tmp_path) + ".") and b.startswith(state_tag(tmp_path) + ".")
    assert state_tag(tmp_path / "other") != state_tag(tmp_path)
