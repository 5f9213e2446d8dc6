"""End to end through the CLI: `herder check` and `herder up` in the foreground."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from herderproc import HerderProc, run
from herdertest import PROGRAMS, PY, ROOT, alive, toml_list


def test_check_prints_every_error_and_exits_2(make_config: Callable[..., Path]) -> None:
    p = make_config('[services.a]\ncommand = "true"\nrestart = "allways"\n[services.b]\nkill = "everything"\n')
    res = run("check", "-c", str(p))
    assert res.returncode == 2
    assert (f'{p}:3: services.a.restart: unknown value "allways" (did you mean "always"?); '
            "expected one of always, on-failure, never") in res.stderr
    assert f'{p}:4: services.b: missing key "command"' in res.stderr
    assert f'{p}:5: services.b.kill: unknown value "everything"; expected one of tree, group, main' in res.stderr
    assert "3 errors; nothing was changed" in res.stderr
    ok = make_config('[services.a]\ncommand = "true"\nreplicas = 3\n', name="ok.toml")
    res = run("check", "-c", str(ok))
    assert res.returncode == 0 and "ok (1 services, 3 instances)" in res.stdout


def test_check_finds_herder_toml_then_env(make_config: Callable[..., Path], tmp_path: Path) -> None:
    make_config('[services.a]\ncommand = 42\n')
    assert run("check", cwd=tmp_path).returncode == 2
    other = tmp_path / "sub"
    other.mkdir()
    (other / "x.toml").write_text('[services.a]\ncommand = "true"\n')
    assert run("check", cwd=other, env={"HERDER_CONFIG": str(other / "x.toml")}).returncode == 0
    assert run("bogus").returncode == 2


def test_up_runs_until_ctrl_c_then_stops_in_reverse_order(make_config: Callable[..., Path], tmp_path: Path,
                                                          procs: list[HerderProc]) -> None:
    cfg = make_config(f'''
        [services.db]
        command = ["sleep", "1000"]
        [services.web]
        command = {toml_list([PY, str(PROGRAMS / "tree.py"), "stay"])}
        depends_on = ["db"]
        env = {{ PYTHONPATH = "{PROGRAMS}" }}
        logs = {{ stdout = "inherit" }}
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    tree = json.loads(h.expect(r'\{"event": "tree".*\}').group(0))
    db = int(h.expect(r"db: started \(pid (\d+)\)").group(1))
    web = int(h.expect(r"web: started \(pid (\d+)\)").group(1))
    h.signal(signal.SIGINT)
    assert h.wait() == 0
    out = "\n".join(h.lines)
    assert out.index("web: stopping -> stopped") < out.index("db: running -> stopping")
    for pid in (db, web, tree["setsid"], tree["group"]):
        assert not alive(pid), pid
    if ROOT:   # herder ran in this test's cgroup: its subtree for the state_dir is gone (not a glob of the
        # whole hierarchy, where other suites' cgroups come and go under the walk)
        from herder.process.cgroup import Cgroups
        found = Cgroups.root_for(cfg.parent / ".herder")
        assert found is None or not found[1].exists(), "cgroups left behind"


def test_second_ctrl_c_forces_sigkill_and_exit_1(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config(f'''
        [services.s]
        command = {toml_list([PY, str(PROGRAMS / "stubborn.py")])}
        stop_timeout = "1h"
        env = {{ PYTHONPATH = "{PROGRAMS}" }}
        logs = {{ stdout = "inherit" }}
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    h.expect('"event": "up"')
    pid = int(h.expect(r"s: started \(pid (\d+)\)").group(1))
    h.signal(signal.SIGINT)
    h.expect('"event": "sigterm"')
    h.signal(signal.SIGINT)
    assert h.wait() == 1
    assert "forced stop" in "\n".join(h.lines)
    assert not alive(pid)


def test_sigterm_is_a_graceful_down(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\n')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    pid = int(h.expect(r"a: started \(pid (\d+)\)").group(1))
    h.signal(signal.SIGTERM)
    assert h.wait() == 0 and not alive(pid)


def test_one_supervisor_per_state_dir(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\n')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    h.expect(r"a: started")
    res = run("up", "-c", str(cfg))
    assert res.returncode == 1
    assert f"herder is already running on {cfg.parent / '.herder'} (pid {h.pid}" in res.stderr
    h.signal(signal.SIGTERM)
    assert h.wait() == 0


def test_instances_left_by_a_killed_keeper_and_decision_process_are_adopted_not_duplicated(
        make_config: Callable[..., Path], procs: list[HerderProc], tmp_path: Path) -> None:
    """Both of herder's processes killed at once: the next `herder up` adopts what runs
    (same pids, followed by pidfd), starts no second copy, tells the [alerts] targets
    (the `adopted` condition), and `down` stops them."""
    told = tmp_path / "alerts"        # an [alerts] exec target: the operator is told what happened
    cfg = make_config(f'''
        [alerts]
        targets = ["exec:sh -c 'echo $HERDER_ALERT_CONDITION: $HERDER_ALERT_BODY >> {told}'"]
        on = ["adopted"]
        [services.a]
        command = ["sleep", "1000"]
        replicas = 2
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    old = {int(h.expect(rf"a.{i}: started \(pid (\d+)\)").group(1)) for i in range(2)}
    dp = int(h.expect(r"supervising 2 instance\(s\) \(pid (\d+)").group(1))
    os.kill(h.pid, signal.SIGSTOP)      # the keeper cannot restart the decision process ...
    os.kill(dp, signal.SIGKILL)
    os.kill(h.pid, signal.SIGKILL)      # ... and dies with it
    h.wait()
    psutil.wait_procs([psutil.Process(dp)], timeout=10)
    assert all(alive(p) for p in old)   # herder died; its children live on
    h2 = HerderProc("up", "-c", str(cfg))
    procs.append(h2)
    h2.expect(r"herder: adopted 2 instance\(s\) a killed herder left running \(a.0, a.1\)")
    h2.expect(r"supervising")
    st = run("status", "--json", "-c", str(cfg))
    assert {r["pid"] for r in json.loads(st.stdout)} == old     # the same pids, no second copy
    h2.expect(r"alert sent to exec:sh: .* a\.[01]: adopted")
    h2.expect(r"alert sent to exec:sh: .* a\.[01]: adopted")
    told_of = [re.fullmatch(r"adopted: a\.[01]: adopted \(pid (\d+)\), left running by a previous herder", x)
               for x in told.read_text().splitlines()]     # one per instance (the core's `adopted` events)
    assert all(told_of) and {int(m.group(1)) for m in told_of if m} == old, told.read_text()
    h2.signal(signal.SIGTERM)
    assert h2.wait() == 0
    assert not any(alive(p) for p in old)


@pytest.mark.skipif(not ROOT or not shutil.which("unshare"), reason="needs root and unshare")
def test_herder_as_pid_1_reaps_and_stops_in_order(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config(f'''
        [services.base]
        command = ["sleep", "1000"]
        [services.o]
        command = {toml_list([PY, str(PROGRAMS / "orphans.py"), "3"])}
        depends_on = ["base"]
        env = {{ PYTHONPATH = "{PROGRAMS}", REPORT_SOCKET = "" }}
        logs = {{ stdout = "inherit" }}
        ''')
    h = HerderProc("up", "-c", str(cfg), prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    procs.append(h)
    h.expect(r"supervising 2 instance\(s\) \(pid \d+, keeper pid 1,")   # the keeper is PID 1
    h.expect('"event": "orphans"')
    herder = psutil.Process(h.pid).children()[0]

    def settled() -> bool:  # the 3 orphaned `sleep 0.2` were re-parented to the keeper (PID 1) and reaped
        kids = herder.children()       # base, o and the decision process
        return len(kids) == 3 and all(k.status() != psutil.STATUS_ZOMBIE for k in kids)

    for _ in range(300):  # bounded wait; each round blocks until a child of herder exits or 50 ms pass
        if settled():
            break
        psutil.wait_procs(herder.children(), timeout=0.05)
    assert settled(), [(k.pid, k.name(), k.status()) for k in herder.children()]
    os.kill(herder.pid, signal.SIGTERM)
    assert h.wait() == 0
    out = "\n".join(h.lines)
    assert out.index("o: stopping -> stopped") < out.index("base: running -> stopping")
