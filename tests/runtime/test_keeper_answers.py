"""The keeper answers every request, whatever fails in it (issue 12: nothing may wait forever).

A real keeper process (herder.keeper, attached to this test over its socketpair) is sent
requests built to fail at each stage, the way a decision process sends them: a spawn
whose launch cannot be read (no child: `spawn_failed`); a spawn whose capture fails
after the fork (a forward target that cannot be parsed: the child exists, so `spawned`
with the problem, the child in the keeper's table, its exit reported later, no fd left
behind); a tail, a follow and a hook drain that fail; an unknown message carrying an fd.
After each, the keeper still answers the next request. The failures are real ones
(values the decision process never sends, of the wrong type or unparseable), not
injected by a switch in the code.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from herder.keeper import wire
from herder.logs._spec import ChannelSpec
from herder.process.spawn import Launch
from herder.runtime.keeper_link import KeeperLink, handshake, spawn_attached

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the keeper is Linux-first (pidfd, SCM_RIGHTS)")


@pytest.fixture
def keeper() -> Iterator[KeeperLink]:
    link = spawn_attached()
    welcome = handshake(link)
    os.close(welcome["counters_fd"])
    for fd in welcome.get("stored_fds", {}).values():
        os.close(fd)
    for _, fd in welcome.get("pipes", []):
        os.close(fd)
    try:
        yield link
    finally:
        link.sock.close()          # an attached keeper ends with its decision process's socket
        assert link.pid is not None
        os.waitpid(link.pid, 0)


def send(link: KeeperLink, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    link.send(msg, fds)
    link.flush_blocking(10)


def answer(link: KeeperLink, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
    """The first message from the keeper that matches `pred` (others are read and set aside)."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(link.sock, selectors.EVENT_READ)
        while True:
            try:
                got = wire.receive(link.sock)
            except BlockingIOError:
                left = deadline - time.monotonic()
                assert left > 0 and sel.select(left), "the keeper did not answer"
                continue
            assert got is not None, "the keeper closed its socket"
            msg, fds = got
            wire.close_fds(fds)
            if pred(msg):
                return msg


def is_(t: str, **want: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("t") == t and all(m.get(k) == v for k, v in want.items())


def open_fds(pid: int) -> set[str]:
    return set(os.listdir(f"/proc/{pid}/fd"))


def launch(*argv: str) -> dict[str, Any]:
    return Launch("a", tuple(argv), dict(os.environ), None, None, None).to_wire()


def still_answers(link: KeeperLink, rid: int) -> None:
    send(link, {"t": "tail", "id": rid, "names": None, "n": 1})
    assert answer(link, is_("tailed", id=rid))["r"] is not None


def test_a_spawn_that_fails_before_the_fork_is_answered_spawn_failed(keeper: KeeperLink) -> None:
    assert keeper.pid is not None
    before = open_fds(keeper.pid)
    r, w = os.pipe()
    spec = ChannelSpec("stdout", "a").as_dict()
    send(keeper, {"t": "spawn", "id": 1, "name": "a", "run": 1, "launch": {"argv": None}, "out": spec, "err": "null"},
         [r, w])
    got = answer(keeper, is_("spawn_failed", id=1))
    assert got["name"] == "a" and got["error"]
    still_answers(keeper, 2)
    assert open_fds(keeper.pid) == before, "the pipe's ends were left open in the keeper"


def test_a_spawn_whose_capture_fails_after_the_fork_is_answered_spawned_and_its_child_is_known(
        keeper: KeeperLink) -> None:
    """The fork succeeds, then the capture fails (a forward target whose port is not a
    number: the config never lets one through, a wrong message can): the child runs, so
    the answer is `spawned` with the problem; the child is in the keeper's table (its exit is reported)
    and no fd of the failed capture stays open in the keeper."""
    assert keeper.pid is not None
    before = open_fds(keeper.pid)
    r, w = os.pipe()
    spec = ChannelSpec("stdout", "a", forward=("syslog:localhost:no-port",)).as_dict()
    send(keeper, {"t": "spawn", "id": 7, "name": "a", "run": 1, "launch": launch("sleep", "1000"), "out": spec,
                  "err": "null", "cookie": "c", "stop_signal": int(signal.SIGTERM), "stop_timeout": 1.0}, [r, w])
    got = answer(keeper, lambda m: m.get("id") == 7)
    assert got["t"] == "spawned", got
    assert "not captured" in got["problem"]
    pid = int(got["pid"])
    with open(f"/proc/{pid}/status") as f:
        assert f"PPid:\t{keeper.pid}\n" in f.read(), "the child is not the keeper's"
    os.kill(pid, signal.SIGKILL)
    ended = answer(keeper, is_("exit", pid=pid))       # its end is reported: the keeper knows it
    assert ended["name"] == "a" and ended["signal"] == "SIGKILL"
    send(keeper, {"t": "ack", "seqs": [ended["seq"]]})
    still_answers(keeper, 8)
    assert open_fds(keeper.pid) == before, "an fd of the failed capture was left open in the keeper"


def test_failed_tail_follow_hook_drain_and_unknown_messages_are_answered(keeper: KeeperLink) -> None:
    assert keeper.pid is not None
    before = open_fds(keeper.pid)
    send(keeper, {"t": "tail", "id": 3, "names": 5, "n": 1})          # fails in the writer thread
    assert answer(keeper, is_("tailed", id=3))["r"] == []
    send(keeper, {"t": "follow", "id": 4, "names": None, "tail": "many"})   # fails in the handler
    assert "keeper" in answer(keeper, is_("follow_end", id=4))["error"]
    send(keeper, {"t": "hook_drain", "key": 99})                       # a hook it never heard of
    assert answer(keeper, is_("hook_drained", key=99))["tail"] == []
    r, w = os.pipe()
    send(keeper, {"t": "no-such-message"}, [r])                        # with an fd the keeper must close
    os.close(w)
    bug = answer(keeper, is_("event", kind="bug"))
    assert "no-such-message" in bug["message"]
    still_answers(keeper, 5)
    assert open_fds(keeper.pid) == before, "the fd of the unknown message was left open in the keeper"
