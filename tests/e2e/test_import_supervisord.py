"""End to end: a supervisord.conf with three programs (one with numprocs=2) runs under the
real supervisord, then is imported and run by `herder up -d`. Every process must get the
same argv, working directory and environment from both, and the same number of processes.

The only differences allowed are each supervisor's own variables (SUPERVISOR_*; HERDER_*
and NOTIFY_SOCKET), as docs/import.md says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ctl_harness import run
from herdertest import PROGRAMS, PY, Reporter

SUPERVISORD = Path(sys.executable).parent / "supervisord"
NAMES = {"api", "worker-0", "worker-1", "cron"}


def _config(d: Path) -> str:
    dump = f"{PY} {PROGRAMS / 'envdump.py'}"
    return textwrap.dedent(f"""\
        ; three programs, one with numprocs=2, as a site would run them
        [unix_http_server]
        file=%(here)s/supervisor.sock

        [supervisord]
        nodaemon=true
        logfile=%(here)s/supervisord.log
        pidfile=%(here)s/supervisord.pid
        childlogdir=%(here)s/logs
        environment=GLOBAL="from supervisord",SHARED=global

        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

        [supervisorctl]
        serverurl=unix://%(here)s/supervisor.sock

        [program:api]
        command={dump} api --listen "127.0.0.1:80 80"
        directory=%(here)s/api
        environment=ROLE="api, main",SHARED=local,HOME_COPY=%(ENV_HOME)s
        stopasgroup=true
        stopsignal=INT

        [program:worker]
        command={dump} worker-%(process_num)d
        process_name=%(program_name)s_%(process_num)d
        numprocs=2
        directory=%(here)s/work
        environment=WORKER_ID=%(process_num)d,QUEUE="jobs"   ; inline comment
        priority=900

        [program:cron]
        command={dump} cron
        autorestart=true
        """)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Reporter, dict[str, str]]]:
    d = tmp_path / "site"
    for sub in ("api", "work", "logs"):
        (d / sub).mkdir(parents=True)
    (d / "supervisord.conf").write_text(_config(d))
    reporter = Reporter(tmp_path / "report.sock")
    env = {**os.environ, "REPORT_SOCKET": str(reporter.path), "PYTHONPATH": str(PROGRAMS), "HOME": str(tmp_path)}
    for k in ("HERDER_CONFIG", "HERDER_SOCKET", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(k, None)
    yield d, reporter, env
    reporter.close()


def _collect(reporter: Reporter, n: int) -> dict[str, dict[str, Any]]:
    out = {}
    while len(out) < n:
        msg = reporter.get_sync(timeout=60, event="env")
        out[msg["argv"][0]] = msg
    return out


def _under_supervisord(d: Path, reporter: Reporter, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    proc = subprocess.Popen([str(SUPERVISORD), "-c", str(d / "supervisord.conf")], cwd=d, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        return _collect(reporter, len(NAMES))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


def _under_herder(d: Path, reporter: Reporter, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = run("import", "supervisord", "supervisord.conf", cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    assert "approximated" in r.stdout and "not carried" in r.stdout
    r = run("check", cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    r = run("up", "-d", cwd=d, env=env)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        return _collect(reporter, len(NAMES))
    finally:
        run("down", cwd=d, env=env)


def _own(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(("SUPERVISOR_", "HERDER_")) and k != "NOTIFY_SOCKET"}


def test_imported_programs_run_as_supervisord_runs_them(site: tuple[Path, Reporter, dict[str, str]]) -> None:
    d, reporter, env = site
    theirs = _under_supervisord(d, reporter, env)
    ours = _under_herder(d, reporter, env)
    assert set(theirs) == set(ours) == NAMES  # three programs, worker twice
    for name in NAMES:
        a, b = theirs[name], ours[name]
        assert b["argv"] == a["argv"], name
        assert b["cwd"] == a["cwd"], name
        assert _own(b["env"]) == _own(a["env"]), name
    assert theirs["worker-1"]["env"]["WORKER_ID"] == ours["worker-1"]["env"]["WORKER_ID"] == "1"
    assert ours["api"]["env"]["ROLE"] == "api, main" and ours["api"]["env"]["SHARED"] == "local"
    assert ours["cron"]["env"]["GLOBAL"] == "from supervisord"
    assert ours["api"]["cwd"] == str(d / "api") and ours["cron"]["cwd"] == str(d)
