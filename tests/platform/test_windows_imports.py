"""Every module Windows uses imports under the real Windows CPython 3.13 (Wine), and the CLI runs.

herder once shipped a Windows path that could not even be imported on Windows (`grp`,
`pwd`, `resource`, `fcntl` and `signal.SIGKILL` at module level): `herder service
install`, the service host the SCM starts, all failed with ModuleNotFoundError. This test
imports every herder module in the PSF's Windows CPython with the real win_amd64 wheels,
from this working tree, so that cannot come back. The only modules allowed to fail are
the supervisor's process layer (`herder up` runs on Linux today), each with its reason;
one that starts importing must leave the list.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from nspawn_harness import wait_until
from wine_harness import PYTHON, SRC, WINE_DIR, WindowsMachine, win_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

POSIX_ONLY = {
    "herder.process.spawn": "the supervisor's spawner switches accounts with pwd between fork and exec",
    "herder.health.probes": "the supervisor's exec checks spawn through herder.process.spawn",
    "herder.health.monitor": "the supervisor's check runner (exec checks spawn through herder.process.spawn)",
    "herder.health.limits": "the supervisor's cgroup limits, applied to herder.process.spawn's launches",
    "herder.runtime.processes": "the supervisor's process table: spawn, SIGCHLD reaping, process groups, cgroups",
    "herder.runtime.effects": "the supervisor's effect runner, over the process table",
    "herder.runtime.supervisor": "the supervisor itself: SIGCHLD reaping, process groups, cgroups",
    "herder.testing.harness": "runs the supervisor",
    "herder.keeper.wire": "the keeper's wire passes fds with SCM_RIGHTS (AF_UNIX ancillary data)",
    "herder.keeper.keeper": "the keeper: the services' parent and subreaper, fds by SCM_RIGHTS",
    "herder.keeper.dproc": "the keeper's decision process: its child, over an AF_UNIX socketpair",
    "herder.keeper.messages": "the keeper's answers to its decision process (fds by SCM_RIGHTS, fork and exec)",
    "herder.keeper.children": "the keeper's children: fork and exec through herder.process.spawn",
    "herder.keeper.stopper": "the keeper's stop without a decision process (signals its children's groups)",
    "herder.keeper.resume": "the keeper's re-exec with its fds (execve keeps them)",
    "herder.keeper.upgrade": "the keeper's upgrade: re-exec with its fds (execve, SCM_RIGHTS)",
    "herder.runtime.keeper_link": "the decision process's end of the keeper's wire (SCM_RIGHTS)",
    "herder.runtime.keeper_lost": "a decision process becoming the keeper (execve with its fds)",
    "herder.runtime.adopt": "adoption of the keeper's children (pidfd, /proc, cgroups)",
    "herder.runtime.hooks": "the supervisor's hook runner: hooks spawn through herder.process.spawn",
    "herder.alerts.deliver": "the supervisor's alert delivery: exec: targets spawn through herder.process.spawn",
    "herder.alerts.component": "the supervisor's alerts component, over herder.alerts.deliver",
    "herder.cli.top": "watches a running supervisor (`herder up`, Linux today); Textual is not among the tier's "
                      "wheels",
}


def test_every_module_windows_uses_imports_under_windows_cpython(windows: WindowsMachine) -> None:
    res = windows.python(win_path(WINE_DIR / "import_all.py"), json.dumps(sorted(POSIX_ONLY)))
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["file"].lower() == win_path(SRC / "herder" / "__init__.py").lower()   # this working tree
    assert got["version"].startswith("3.13"), got["version"]
    unexpected = {m: e for m, e in got["failed"].items() if m not in POSIX_ONLY}
    assert not unexpected, f"modules that do not import on Windows: {unexpected}"
    stale = sorted(set(POSIX_ONLY) - set(got["failed"]))
    assert not stale, f"{stale} import on Windows now: take them out of POSIX_ONLY"
    for must in ("herder.cli.install_cmd", "herder.platform.windows", "herder.platform.winhost",
                 "herder.platform._win32", "herder.service._windows", "herder.service._service",
                 "herder.config", "herder.store.atomic"):
        assert must in got["imported"]


def test_the_cli_runs_on_windows(windows: WindowsMachine) -> None:
    assert windows.herder_ok("--version").strip()
    dry = windows.herder_ok("service", "install", "DryOnly", "--dry-run", "--", r"C:\py\python.exe", "-V")
    assert "# run: sc create DryOnly binPath= \"C:\\py\\python.exe -m herder.platform.winhost DryOnly\"" in dry
    assert "# file: C:\\ProgramData\\herder\\installed\\DryOnly.json" in dry
    assert not windows.exists("DryOnly")
    host = windows.python("-m", "herder.platform.winhost")
    assert host.returncode == 2 and "usage: python -m herder.platform.winhost NAME" in host.stderr


def test_a_service_program_runs_in_a_console(windows: WindowsMachine) -> None:
    """`python billing_sync.py` in a console: console mode, ready (once failed: asyncio's proactor
    loop on Windows has no add_reader, which the signal wake-up used)."""
    work = windows.drive_c / "herder-it"
    work.mkdir(exist_ok=True)
    (work / "console.go").touch()
    marks = work / "console.marks"
    proc = subprocess.Popen(["wine", PYTHON, win_path(WINE_DIR / "billing_sync.py"), r"C:\herder-it\console.marks",
                             r"C:\herder-it\console.go", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=windows.env)
    try:
        wait_until("the program ready", lambda: marks.exists() and "ready" in marks.read_text(), timeout=60)
        assert " mode console" in marks.read_text()
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=60)
    assert b"Traceback" not in out, out
