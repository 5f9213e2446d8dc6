"""[alerts] and [hooks] on_event with a real supervisor, real services and real targets: a
JSON webhook on a local HTTP receiver (apprise's json://, on 127.0.0.1, port 0), exec:
targets, the "resolved" message, retries with backoff on the virtual clock, and a target
that never answers, which must not hold up supervision."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from herdertest import Receiver, toml_list

from herder.config import load
from herder.testing import FakeClock, run
from herder.testing.harness import run_supervisor


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def sh(script: str) -> str:
    return toml_list(["sh", "-c", script])


def test_a_failed_service_alerts_a_local_json_webhook(make_config: Callable[..., Path],
                                                                         receiver: Receiver) -> None:
    cfg = load(make_config(f'''
        [alerts]
        targets = ["json://127.0.0.1:{receiver.port}/hook"]
        [services.web]
        command = ["sh", "-c", "exit 4"]
        backoff = {{ initial = "0s", jitter = 0.0 }}
        start_limit = {{ burst = 1, interval = "1h" }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("web", "failed")
            sent = await r.wait_for(lambda e: e.kind in ("alert", "alert_failed"))
            assert sent.kind == "alert" and sent.data["condition"] == "failed", sent.message
            assert len(receiver.got) == 1
            msg = receiver.got[0]
            assert str(msg["title"]).endswith("web: failed") and msg["type"] == "failure"
            assert "exit 4" in str(msg["message"]) or "failed starts" in str(msg["message"])

    run(body())


def test_exec_target_gets_the_alert_and_the_resolved_message(make_config: Callable[..., Path],
                                                             tmp_path: Path) -> None:
    out = tmp_path / "alerts"
    flag = tmp_path / "healthy"
    page = tmp_path / "page.sh"
    page.write_text(f'#!/bin/sh\necho "$HERDER_ALERT_RESOLVED $HERDER_ALERT_CONDITION $HERDER_ALERT_TITLE" >> {out}\n')
    page.chmod(0o755)
    cfg = load(make_config(f'''
        [alerts]
        targets = ["exec:{page}"]
        [services.web]
        command = {sh(f'test -e {flag} || exit 1; exec sleep 1000')}
        backoff = {{ initial = "0s", jitter = 0.0 }}
        start_limit = {{ burst = 1, interval = "1h" }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("web", "failed")
            await r.wait_for(lambda e: e.kind == "alert")
            flag.write_text("")
            mark = r.mark()
            r.sup.start(["web"])
            await r.wait_state("web", "running", since=mark)
            resolved = await r.wait_for(lambda e: e.kind == "alert" and e.data.get("resolved") is True, since=mark)
            assert resolved.data["condition"] == "failed"

    run(body())
    lines = out.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [["0", "failed"], ["1", "failed"]]
    assert lines[1].endswith("web: failed resolved")


def test_delivery_is_retried_with_backoff_on_the_virtual_clock(make_config: Callable[..., Path],
                                                              tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    flaky = tmp_path / "flaky.sh"      # fails twice, then delivers
    flaky.write_text(f'#!/bin/sh\necho x >> {tries}\n[ "$(wc -l < {tries})" -ge 3 ]\n')
    flaky.chmod(0o755)
    cfg = load(make_config(f'''
        [alerts]
        targets = ["exec:{flaky}"]
        retries = 3
        [services.web]
        command = ["sh", "-c", "exit 1"]
        restart = "never"
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            sent = await r.wait_for(lambda e: e.kind in ("alert", "alert_failed"))
            assert sent.kind == "alert" and sent.data["attempts"] == 3 and sent.data["condition"] == "exited"
            exited = r.find(lambda e: e.kind == "state" and e.data.get("to") == "exited")
            assert exited is not None
            assert r.at[r.events.index(sent)] - r.at[r.events.index(exited)] >= 3.0     # waited 1 s, then 2 s

    run(body(), clock)
    assert len(tries.read_text().splitlines()) == 3


def test_a_target_that_never_answers_holds_up_nothing(make_config: Callable[..., Path], tmp_path: Path) -> None:
    silent = socket.socket()           # the kernel accepts connections (backlog); nobody ever answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    cfg = load(make_config(f'''
        [alerts]
        targets = ["json://127.0.0.1:{port}/hook?rto=120&cto=120"]
        on = ["exited"]
        retries = 0
        timeout = "2m"
        [services.bad]
        command = ["sh", "-c", "exit 1"]
        restart = "never"
        [services.job]
        command = ["true"]
        restart = "never"
        depends_on = {{ bad = "started" }}
        [services.web]
        command = ["sleep", "1000"]
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("bad", "exited")
            # the alert is on its way and cannot finish while the receiver is silent: meanwhile
            # a job runs and completes, and a service is stopped and started again
            await r.wait_state("job", "exited")
            await r.wait_state("web", "running")
            mark = r.mark()
            r.sup.stop(["web"])
            await r.wait_state("web", "stopped", since=mark)
            r.sup.start(["web"])
            await r.wait_state("web", "running", since=mark)
            assert r.find(lambda e: e.kind in ("alert", "alert_failed")) is None
            silent.close()             # the pending connection is reset: the delivery fails now
            failed = await r.wait_for(lambda e: e.kind == "alert_failed", timeout=30.0)
            assert "after 1 attempt(s)" in failed.message and failed.data["condition"] == "exited"

    try:
        run(body())
    finally:
        silent.close()


def test_on_event_hook_runs_for_the_kinds_it_names(make_config: Callable[..., Path], tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    cfg = load(make_config(f'''
        [hooks]
        on_event = {{ command = {sh(f'echo "$HERDER_EVENT_KIND $HERDER_EVENT_INSTANCE" >> {seen}')}, on = ["exit"] }}
        [services.once]
        command = ["true"]
        restart = "never"
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("once", "exited")

    run(body())            # herder waits (bounded) for its on_event hooks before it exits
    assert seen.read_text().splitlines() == ["exit once"]
