"""Truthful exit codes (issue 13): `herder down`, `stop`, `restart`, `reload` exit non-zero with
a clear message when the supervisor dies, or the connection drops, before it confirmed.

The supervisor is a real `herder up -d`, killed with SIGKILL while the CLI waits on it. For
answers cut at exact points, a real Unix socket served by a thread of this test stands in
for the supervisor (a seam, labelled: it is not herder, it only breaks connections)."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from ctl_harness import HERDER, Herd, run
from herdertest import PROGRAMS, PY, toml_list

STUBBORN = f'''
[services.s]
command = {toml_list([PY, str(PROGRAMS / "stubborn.py")])}
stop_timeout = "1h"
env = {{ PYTHONPATH = "{PROGRAMS}", REPORT_SOCKET = "" }}
'''


@pytest.fixture
def stubborn(herd: Callable[..., Herd]) -> Iterator[Herd]:
    """A supervisor whose one service ignores SIGTERM (so a stop waits), cleaned up after the
    test killed the supervisor: the service by pid, then a new herder that removes its cgroups."""
    h = herd(STUBBORN)
    assert h.up().returncode == 0
    pid = h.status()["s"]["pid"]
    yield h
    if h.holder() is None:                  # herder was SIGKILLed: its child lives on
        try:
            p = psutil.Process(pid)
            p.kill()
            psutil.wait_procs([p], timeout=10)
        except psutil.NoSuchProcess:
            pass
        h.write('[services.s]\ncommand = ["sleep", "1000"]\n')    # one that stops: the fixture's down is quick
        assert h.up().returncode == 0


def cli(h: Herd, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([HERDER, args[0], "-c", str(h.config), *args[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_when_stopping(h: Herd, proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait until herder sent `s` the SIGTERM it ignores, SIGKILL herder, then the CLI's
    exit code and stderr."""
    pid = h.holder()
    assert pid is not None
    s = psutil.Process(h.status()["s"]["pid"])
    log = h.state / "logs" / "s.log"
    for _ in range(3000):                     # bounded; each round waits on the child for 10 ms
        if log.exists() and '"event": "sigterm"' in log.read_text():
            break
        psutil.wait_procs([s], timeout=0.01)
    else:
        raise AssertionError("s never got its SIGTERM")
    h.kill_herder()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_down_exits_1_when_herder_dies_before_every_service_stopped(stubborn: Herd) -> None:
    code, err = kill_when_stopping(stubborn, cli(stubborn, "down"))
    assert code == 1, err
    assert "exited before confirming that every service stopped; 1 instance(s) may still run (s)" in err


@pytest.mark.parametrize("verb", ["stop", "restart"])
def test_stop_and_restart_exit_1_when_herder_dies_while_they_wait(stubborn: Herd, verb: str) -> None:
    code, err = kill_when_stopping(stubborn, cli(stubborn, verb, "s"))
    assert code == 1, err
    assert "closed the connection before answering" in err and "the outcome is unknown" in err
    assert "Traceback" not in err


def test_a_clean_down_still_exits_0(herd: Callable[..., Herd]) -> None:
    h = herd('[services.a]\ncommand = ["sleep", "1000"]\n')
    assert h.up().returncode == 0
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    assert "a: stopped" in r.stderr and "herder has exited" in r.stderr, r.stderr


class CutShort:
    """NOT herder: a Unix socket that reads a request, then answers part of a reply (or nothing)
    and closes — the moment a supervisor dies, made exact."""

    def __init__(self, path: Path, answer: bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.path, self.answer, self.closing = path, answer, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.closing:
                    return
                conn.recv(65536)
                conn.sendall(self.answer)

    def close(self) -> None:
        """A last connection wakes the accept (closing a socket another thread waits on in
        accept() does not wake it on Linux: each test waited out the join's 5 s)."""
        self.closing = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.connect(str(self.path))
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize(("answer", "expect"), [
    (b"", "closed the connection before answering"),
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"ok\": tr",
     "was cut short"),
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"ok\"",
     "was cut short"),
])
@pytest.mark.parametrize("argv", [["reload"], ["stop", "a"], ["restart", "a"], ["down", "--no-wait"]])
def test_an_answer_cut_short_is_never_taken_for_a_result(tmp_path: Path, answer: bytes, expect: str,
                                                         argv: list[str]) -> None:
    sock = tmp_path / "fake.sock"
    fake = CutShort(sock, answer)
    try:
        r = run(argv[0], "--socket", str(sock), *argv[1:], timeout=60)
    finally:
        fake.close()
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert expect in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("left", [False, True])
def test_a_down_dropped_by_a_supervisor_that_finished_a_stop_exits_0_only_when_nothing_runs(
        tmp_path: Path, left: bool) -> None:
    """`herder down` sent as the supervisor finishes a stop already under way (the decision
    process was killed during a first `down`; the keeper's next one carried the stop on)
    and exits: the connection ends before any answer. Its lock released and run.json
    listing nothing alive prove every service stopped: exit 0. A run.json that still names
    a live process it proves (start time and cookie) keeps the outcome unknown: exit 1."""
    import json
    import os

    (tmp_path / "herder.pid").write_text("")      # a state_dir whose supervisor has exited (unlocked)
    instances = {}
    child = None
    if left:
        cookie = "t.left"
        child = subprocess.Popen(["sleep", "1000"], env={**os.environ, "HERDER_INSTANCE_ID": cookie})
        st = psutil_wait_start(child.pid)
        instances["a"] = {"pid": child.pid, "start_time": st, "cgroup": None, "cookie": cookie}
    (tmp_path / "run.json").write_text(json.dumps({"supervisor_pid": None, "instances": instances}))
    fake = CutShort(tmp_path / "herder.sock", b"")       # NOT herder: it closes every connection unanswered
    try:
        r = run("down", "--socket", str(tmp_path / "herder.sock"), timeout=60)
    finally:
        fake.close()
        if child is not None:
            child.kill()
            child.wait()
    assert "Traceback" not in r.stderr, r.stderr
    if left:
        assert r.returncode == 1 and "outcome is unknown" in r.stderr, (r.returncode, r.stderr)
    else:
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert "finished a stop already under way" in r.stderr


def psutil_wait_start(pid: int) -> int:
    """The start time /proc gives the process once it has exec'd (what run.json records)."""
    from herder.process import tree

    for _ in range(1000):
        try:
            if psutil.Process(pid).cmdline()[:1] == ["sleep"]:
                break
        except psutil.Error:
            pass
        psutil.wait_procs([psutil.Process(pid)], timeout=0.005)
    st = tree.start_time(pid)
    assert st is not None
    return st
