"""The supervisor with real processes: restart, stop of whole trees, reaping, dependencies,
spawn environment, run state. Synchronised on the event stream and on reports from the
programs themselves (tests/programs), never on sleeps."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from herdertest import PROGRAMS, PY, ROOT, Reporter, alive, public_programs, run_async, toml_list, until

from herder.config import load
from herder.testing.harness import run_supervisor


def prog(name: str, *args: str) -> str:
    return toml_list([PY, str(PROGRAMS / name), *args])


def no_zombie_children() -> bool:
    return not [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


def test_crash_is_restarted_and_kill_to_next_start_is_an_event(make_config: Callable[..., Path],
                                                               reporter: Reporter) -> None:
    cfg = load(make_config(f'''
        [services.w]
        command = {prog("probe.py", "wait")}
        backoff = {{ initial = "0s" }}
        min_uptime = "0s"
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            first = await reporter.get(event="probe")
            await r.wait_state("w", "running")
            mark = r.mark()
            os.kill(first["pid"], signal.SIGKILL)
            await r.wait_for(lambda e: e.kind == "exit" and e.data.get("signal") == "SIGKILL", since=mark)
            second = await reporter.get(event="probe")
            assert second["pid"] != first["pid"]
            await r.wait_state("w", "running")
            assert r.sup.instances["w"].restarts == 1

    run_async(body())


def test_start_limit_parks_the_service_in_failed(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [services.bad]
        command = ["false"]
        backoff = { initial = "0s" }
        start_limit = { burst = 2, interval = "1m" }
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            ev = await r.wait_for(lambda e: e.kind == "failed")
            assert "3 failed starts within 60s" in ev.message
            assert [k for i, k in r.kinds("bad") if k == "spawn"] == ["spawn"] * 3
            assert r.state("bad") == "failed"

    run_async(body())


def test_missing_executable_is_a_failed_start_not_a_crash(make_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "notexec").write_text("#!/bin/sh\n")
    # `herder check` reports both up front; the runtime must still survive a program that is
    # removed (or loses its x bit) after the check, so the machine checks are skipped here
    cfg = load(make_config(f'''
        [services.gone]
        command = ["/no/such/program"]
        start_limit = {{ burst = 1 }}
        backoff = {{ initial = "0s" }}
        [services.noexec]
        command = ["{tmp_path / 'notexec'}"]
        restart = "never"
        '''), check_accounts=False)

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            ev = await r.wait_for(lambda e: e.kind == "spawn_failed" and e.instance == "gone")
            assert "/no/such/program: No such file or directory" in ev.message
            ev = await r.wait_for(lambda e: e.kind == "spawn_failed" and e.instance == "noexec")
            assert "Permission denied" in ev.message
            await r.wait_state("gone", "failed")
            await r.wait_state("noexec", "exited")

    run_async(body())


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "no-cgroup"])
def test_stop_kills_the_whole_tree_including_setsid_children(make_config: Callable[..., Path], reporter: Reporter,
                                                             cgroups: bool) -> None:
    cfg = load(make_config(f'''
        [herder]
        cgroups = {str(cgroups).lower()}
        [services.t]
        command = {prog("tree.py", "stay")}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            tree = await reporter.get(event="tree")
            main = r.pid("t")
            assert alive(tree["setsid"]) and alive(tree["group"])
            assert os.getsid(tree["setsid"]) != os.getsid(main)
            assert (r.sup.cgroups is not None) == (cgroups and ROOT)
            r.sup.stop(["t"])
            await r.wait_state("t", "stopped")
        for pid in (tree["setsid"], tree["group"], main):
            await until(lambda pid=pid: not alive(pid), what=f"pid {pid} gone")

    run_async(body())


def test_leftovers_of_an_exited_main_are_killed_and_reaped(make_config: Callable[..., Path],
                                                           reporter: Reporter) -> None:
    cfg = load(make_config(f'''
        [services.t]
        command = {prog("tree.py", "leave")}
        restart = "never"
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            tree = await reporter.get(event="tree")
            await r.wait_state("t", "exited")
            for pid in (tree["setsid"], tree["group"]):
                await until(lambda pid=pid: not alive(pid), what=f"leftover {pid} gone")
            await until(no_zombie_children, what="no zombie children")

    run_async(body())


def test_orphaned_grandchildren_are_reaped(make_config: Callable[..., Path], reporter: Reporter) -> None:
    cfg = load(make_config(f'''
        [services.o]
        command = {prog("orphans.py", "5")}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await reporter.get(event="orphans")
            await until(lambda: r.sup.orphans_reaped >= 5 and no_zombie_children(), what="orphans reaped")

    run_async(body())


def test_stop_timeout_escalates_to_sigkill_with_an_explaining_event(make_config: Callable[..., Path],
                                                                    reporter: Reporter) -> None:
    cfg = load(make_config(f'''
        [services.s]
        command = {prog("stubborn.py")}
        stop_timeout = "300ms"
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await reporter.get(event="up")
            r.sup.stop(["s"])
            await reporter.get(event="sigterm")
            ev = await r.wait_for(lambda e: e.kind == "stop_timeout")
            assert "s ignored SIGTERM for 0.3s; sent SIGKILL" in ev.message and "Raise stop_timeout" in ev.message
            ev = await r.wait_for(lambda e: e.kind == "exit")
            assert ev.data["signal"] == "SIGKILL"

    run_async(body())


def test_dependencies_order_start_and_reverse_stop(make_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = load(make_config('''
        [services.migrate]
        command = ["sh", "-c", "exit 0"]
        restart = "never"
        [services.db]
        command = ["sleep", "1000"]
        [services.web]
        command = ["sleep", "1000"]
        replicas = 2
        depends_on = { db = "started", migrate = "completed" }
        [services.edge]
        command = ["sleep", "1000"]
        depends_on = ["web"]
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("edge", "running")
        order = [(e.instance, e.data["to"]) for e in r.events if e.kind == "state"]
        pos = {x: i for i, x in enumerate(order)}
        assert pos[("migrate", "exited")] < pos[("web.0", "starting")]
        assert pos[("db", "running")] < pos[("web.1", "starting")]
        assert pos[("web.0", "running")] < pos[("edge", "starting")]
        # stop: edge first, then both web replicas, then db
        assert pos[("edge", "stopped")] < pos[("web.0", "stopping")]
        assert pos[("web.0", "stopped")] < pos[("db", "stopping")]
        assert pos[("web.1", "stopped")] < pos[("db", "stopping")]
        assert r.exit_code == 0

    run_async(body())


def test_a_failed_dependency_keeps_dependents_waiting_with_a_reason(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [services.db]
        command = ["/no/such/db"]
        start_limit = { burst = 1 }
        backoff = { initial = "0s" }
        [services.web]
        command = ["sleep", "1000"]
        depends_on = { db = "started" }
        '''), check_accounts=False)   # a db that fails every start: `check` would refuse it

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("db", "failed")
            await r.wait_for(lambda e: e.instance == "web" and e.kind == "waiting"
                             and "db (started): failed" in e.message)
            assert r.state("web") == "waiting" and r.pid("web") is None

    run_async(body())


def test_spawn_environment_session_fds_and_stdin(make_config: Callable[..., Path], reporter: Reporter,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work0").mkdir()
    (tmp_path / "work1").mkdir()
    (tmp_path / "e.env").write_text("T_FILE=file\nT_BOTH=file\nT_HERDER=file\n")
    monkeypatch.setenv("T_HERDER", "herder")
    monkeypatch.setenv("T_INHERITED", "yes")
    cfg = load(make_config(f'''
        [services.p]
        command = {prog("probe.py")}
        replicas = 2
        cwd = "work{{replica}}"
        env_file = "e.env"
        env = {{ T_BOTH = "env", T_REPLICA = "r{{replica}}" }}
        restart = "never"
        logs = {{ stdout = "null" }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            got = {}
            for _ in range(2):
                msg = await reporter.get(event="probe")
                got[msg["env"]["HERDER_INSTANCE"]] = msg
            await r.wait_state("p.0", "exited")
            await r.wait_state("p.1", "exited")
        one = got["p.1"]
        assert one["cwd"] == str(tmp_path / "work1") and got["p.0"]["cwd"] == str(tmp_path / "work0")
        assert one["env"]["T_FILE"] == "file" and one["env"]["T_BOTH"] == "env" and one["env"]["T_HERDER"] == "file"
        assert one["env"]["T_INHERITED"] == "yes" and one["env"]["T_REPLICA"] == "r1"
        assert one["env"]["HERDER_SERVICE"] == "p" and one["env"]["HERDER_REPLICA"] == "1"
        assert one["sid"] == one["pid"] == one["pgid"]          # own session
        assert one["fds"]["0"] == "/dev/null" and one["fds"]["1"] == "/dev/null"
        assert set(one["fds"]) <= {"0", "1", "2", "3"}, one["fds"]  # 3 = the listdir of /proc/self/fd itself

    run_async(body())


@pytest.mark.skipif(not ROOT, reason="switching accounts needs root")
def test_user_and_supplementary_groups_when_root(make_config: Callable[..., Path], tmp_path: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    out = tmp_path / "probe.out"
    public = public_programs("probe.py")   # nobody cannot read a checkout in a 0700 directory
    cfg = load(make_config(f'''
        [services.p]
        command = ["/usr/bin/python3", "{public / 'probe.py'}"]
        user = "nobody"
        cwd = "{public}"
        restart = "never"
        env = {{ PYTHONPATH = "{public}", REPORT_SOCKET = "" }}
        logs = {{ stdout = "{out}", timestamps = false }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_state("p", "exited")
            assert r.sup.instances["p"].completed, r.events[-3:]

    try:
        run_async(body())
    finally:
        shutil.rmtree(public)
    import json
    msg = json.loads(out.read_text().splitlines()[-1])
    assert msg["uid"] == nobody.pw_uid and msg["gid"] == nobody.pw_gid
    assert msg["groups"] == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    assert msg["env"]["USER"] == "nobody" and msg["env"]["HOME"] == nobody.pw_dir


def test_always_never_and_on_failure_policies(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''
        [defaults]
        backoff = { initial = "0s" }
        min_uptime = "0s"
        [services.always]
        command = ["true"]
        restart = "always"
        start_limit = { burst = 1000 }
        [services.never]
        command = ["false"]
        restart = "never"
        [services.ok]
        command = ["true"]
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            await r.wait_for(lambda e: e.instance == "always" and e.kind == "spawn"
                             and sum(1 for x in r.events if x.instance == "always" and x.kind == "spawn") >= 3)
            await r.wait_state("never", "exited")
            await r.wait_state("ok", "exited")
            assert r.sup.instances["ok"].completed and not r.sup.instances["never"].completed
            assert r.sup.instances["never"].last_exit.code == 1

    run_async(body())
