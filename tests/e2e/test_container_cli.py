"""End to end through the CLI, outside a container: `herder check --container`, `herder
health`, the exit policy of critical services, and [herder] console = "json" / "text".

The same behaviour as a real container's PID 1 is proven in tests/engines/test_container.py.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from herderproc import HerderProc, run

from herder.errors import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE


def test_check_container_prints_the_grace_period(make_config: Callable[..., Path]) -> None:
    cfg = make_config('''
        [services.db]
        command = ["sleep", "1000"]
        stop_timeout = "5s"
        critical = true
        [services.web]
        command = ["sleep", "1000"]
        depends_on = ["db"]
        stop_timeout = "2s"
        critical = true
        critical_exit_code = 70
        ''')
    res = run("check", "--container", "-c", str(cfg))
    assert res.returncode == EXIT_OK, res.stderr
    assert "stop_grace_period: " in res.stdout and "web 2s → db 5s" in res.stdout, res.stdout
    assert "db (exit code 69), web (exit code 70)" in res.stdout
    doc = json.loads(run("check", "--container", "--json", "-c", str(cfg)).stdout)
    assert doc["critical"] == {"db": 69, "web": 70}
    assert doc["grace_period"] >= 7 and doc["grace_period"] == int(doc["grace_period"])
    assert [c["service"] for c in doc["chain"]] == ["web", "db"]
    assert doc["warnings"] == []
    res = run("check", "--json", "-c", str(cfg))
    assert res.returncode == EXIT_USAGE and "--json goes with --container" in res.stderr


def test_check_container_warns_without_a_critical_service(make_config: Callable[..., Path]) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\n')
    res = run("check", "--container", "-c", str(cfg))
    assert res.returncode == EXIT_OK and "warning: no service is critical" in res.stdout


def test_bad_critical_exit_code_is_a_usage_error(make_config: Callable[..., Path]) -> None:
    cfg = make_config('[services.a]\ncommand = ["sleep", "1000"]\ncritical_exit_code = 1\n')
    res = run("check", "--container", "-c", str(cfg))
    assert res.returncode == EXIT_USAGE
    assert "critical_exit_code" in res.stderr and "Traceback" not in res.stderr


def test_health_follows_the_critical_services(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config('''
        [services.db]
        command = ["sleep", "1000"]
        critical = true
        [services.side]
        command = ["sh", "-c", "exit 3"]
        restart = "never"
        ''')
    assert run("health", "-c", str(cfg)).returncode == EXIT_NOT_RUNNING
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    h.expect(r"db: starting -> running|db: started")
    h.expect(r"side: .*exited")
    res = run("health", "-c", str(cfg))          # side failed, but it is not critical
    assert res.returncode == EXIT_OK and res.stdout.startswith("healthy: 1 instance(s) critical"), res
    assert run("stop", "-c", str(cfg), "db").returncode == EXIT_OK
    res = run("health", "-c", str(cfg))
    assert res.returncode == EXIT_FAILED and "unhealthy: db: stopped (stopped by hand)" in res.stderr, res
    h.signal(signal.SIGTERM)
    assert h.wait() == EXIT_OK


def test_a_critical_service_failing_for_good_stops_everything(make_config: Callable[..., Path],
                                                             procs: list[HerderProc]) -> None:
    cfg = make_config('''
        [herder]
        console = "json"
        [services.base]
        command = ["sleep", "1000"]
        [services.app]
        command = ["sh", "-c", "echo starting app; echo no database >&2; exit 1"]
        depends_on = ["base"]
        restart = "never"
        critical = true
        critical_exit_code = 42
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    assert h.wait() == 42
    out = "\n".join(h.lines)
    assert "app is critical and exited (exit 1" in out and "exiting with code 42" in out, out
    assert out.index("app is critical") < out.index("base: running -> stopping")
    lines = [json.loads(x) for x in h.lines if x.startswith("{")]
    app = [(d["stream"], d["line"]) for d in lines if d.get("service") == "app"]
    assert app == [("stdout", "starting app"), ("stderr", "no database")], lines
    assert any(d["service"] == "herder" and d.get("kind") for d in lines)


def test_a_failed_job_fails_the_start(make_config: Callable[..., Path], procs: list[HerderProc]) -> None:
    cfg = make_config('''
        [herder]
        console = "text"
        [services.migrate]
        command = ["sh", "-c", "exit 4"]
        restart = "never"
        [services.web]
        command = ["sleep", "1000"]
        depends_on = { migrate = "completed" }
        critical = true
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    assert h.wait() == 69
    out = "\n".join(h.lines)
    assert "web is critical and cannot start: it waits for migrate (completed)" in out, out
    assert "web: started" not in out


@pytest.mark.parametrize(("line", "problem"), [
    ("critical_exit_code = 126", "critical_exit_code"),
    ('critical_exit_code = "69"', "critical_exit_code"),
    ('critical = "yes"', "critical"),
])
def test_bad_critical_values(make_config: Callable[..., Path], line: str, problem: str) -> None:
    cfg = make_config(f'[services.a]\ncommand = ["sleep", "1000"]\n{line}\n')
    res = run("check", "--container", "-c", str(cfg))
    assert res.returncode == EXIT_USAGE and f"{cfg}:3: services.a.{problem}:" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("value", ['"yes"', "1", '"JSON"'])
def test_bad_console_values(make_config: Callable[..., Path], value: str) -> None:
    cfg = make_config(f'[herder]\nconsole = {value}\n[services.a]\ncommand = ["sleep", "1000"]\n')
    res = run("up", "-c", str(cfg))
    assert res.returncode == EXIT_USAGE and f"{cfg}:2: herder.console:" in res.stderr, res.stderr


def test_a_flood_reaches_stdout_whole_and_in_order(make_config: Callable[..., Path],
                                                   procs: list[HerderProc]) -> None:
    n = 200_000
    cfg = make_config(f'''
        [herder]
        console = "text"
        [services.flood]
        command = ["seq", "1", "{n}"]
        restart = "never"
        ''')
    h = HerderProc("up", "-c", str(cfg))
    procs.append(h)
    h.expect(rf"^flood  \| {n}$", timeout=60)
    h.signal(signal.SIGTERM)
    assert h.wait() == EXIT_OK
    got = [line.removeprefix("flood  | ") for line in h.lines if line.startswith("flood  | ")]
    assert got == [str(i) for i in range(1, n + 1)]
