"""Pidfile, single-instance lock and daemonizing, with real processes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import termios
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from svc_harness import PROGRAMS, Child, NotifySocket, child_env, wait_exit

from herder.service import AlreadyRunning
from herder.service._pidfile import InstanceLock, PidFile, default_lock_path

PROG = PROGRAMS / "svcprog.py"


def test_a_second_lock_names_the_holder(tmp_path: Path) -> None:
    first = InstanceLock("web", tmp_path / "web.lock")
    first.acquire()
    second = InstanceLock("web", tmp_path / "web.lock")
    with pytest.raises(AlreadyRunning) as info:
        second.acquire()
    assert info.value.pid == os.getpid()
    assert f"web is already running as pid {os.getpid()}" in str(info.value)
    first.release()
    assert not (tmp_path / "web.lock").exists()
    second.acquire()  # free again once released
    second.release()


def test_stale_pidfile_is_replaced_and_only_our_own_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run" / "web.pid"
    path.parent.mkdir()
    path.write_text("999999999\n")
    pidfile = PidFile(path)
    pidfile.write()
    assert path.read_text() == f"{os.getpid()}\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert "replacing stale pidfile" in caplog.text and "999999999" in caplog.text
    assert [p.name for p in path.parent.iterdir()] == ["web.pid"]  # no temp file left
    path.write_text("12345\n")  # someone else's now
    pidfile.remove()
    assert path.exists()
    path.write_text(f"{os.getpid()}\n")
    pidfile.remove()
    assert not path.exists()


def test_default_lock_path_prefers_the_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_lock_path("web") == tmp_path / "web.lock"


def test_two_instances_started_together_exactly_one_runs(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    pidfile = tmp_path / "svc.pid"
    env = child_env(RUN=f"pidfile={pidfile}")
    pair = [spawn(PROG, env), spawn(PROG, env)]
    outcomes = [child.wait_any("READY pid=", "is already running") for child in pair]
    assert sorted("READY" in line for line in outcomes) == [False, True], outcomes
    winner, loser = pair if "READY" in outcomes[0] else pair[::-1]
    winner_pid = winner.proc.pid
    assert loser.finish() == 1
    assert f"svcprog is already running as pid {winner_pid} (lock {pidfile}.lock is held)" in loser.output()
    assert pidfile.read_text() == f"{winner_pid}\n"
    assert Path(f"{pidfile}.lock").read_text() == f"{winner_pid}\n"
    assert winner.stop(signal.SIGTERM) == 0
    assert not pidfile.exists() and not Path(f"{pidfile}.lock").exists()


def test_single_instance_without_pidfile(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    env = child_env(RUN="single_instance=1", XDG_RUNTIME_DIR=str(tmp_path))
    first = spawn(PROG, env)
    first.wait_line("READY")
    second = spawn(PROG, env)
    assert second.finish() == 1
    assert f"already running as pid {first.proc.pid} (lock {tmp_path}/svcprog.lock" in second.output()
    assert first.stop(signal.SIGTERM) == 0


@pytest.fixture
def daemon_pids() -> Iterator[list[int]]:
    """Daemons a test starts (not our children): killed by pid if still alive at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_daemonize_detaches_from_the_terminal_and_writes_the_daemons_pid(
    tmp_path: Path, notify: NotifySocket, spawn: Callable[..., Child], daemon_pids: list[int]
) -> None:
    pidfile = tmp_path / "d.pid"
    leader, follower = os.openpty()

    def take_terminal() -> None:  # runs in the child after setsid: the pty becomes its ctty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = child_env(RUN=f"pidfile={pidfile};daemonize=1", REPORT="1", NOTIFY_SOCKET=str(notify.path))
    try:
        parent = spawn(PROG, env, stdin=follower, start_new_session=True, preexec_fn=take_terminal)
    finally:
        os.close(follower)
    before = json.loads(parent.wait_line("PARENT ").partition(" ")[2])
    assert before["tty_nr"] != 0 and before["can_open_dev_tty"]  # it did have a terminal

    assert parent.finish() == 0  # the original process exits once the daemon is off
    os.close(leader)
    status = notify.recv()
    assert status.startswith("STATUS=")
    daemon = json.loads(status.partition("=")[2])
    daemon_pids.append(daemon["pid"])
    assert notify.recv() == "READY=1"

    assert daemon["pid"] != parent.proc.pid
    assert daemon["tty_nr"] == 0 and not daemon["can_open_dev_tty"]  # no controlling terminal
    assert daemon["sid"] != before["sid"] and daemon["sid"] != daemon["pid"]  # double fork: not a session leader
    assert daemon["cwd"] == "/"
    assert pidfile.read_text() == f"{daemon['pid']}\n"
    assert Path(f"{pidfile}.lock").read_text() == f"{daemon['pid']}\n"

    os.kill(daemon["pid"], signal.SIGTERM)
    assert notify.recv() == "STOPPING=1"
    wait_exit(daemon["pid"])
    assert not pidfile.exists() and not Path(f"{pidfile}.lock").exists()
