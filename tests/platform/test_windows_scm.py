"""herder.service under Wine's real SCM: the docs/service.md example, hosted by the library.

Real: the PSF's Windows CPython 3.13, real pywin32 312, Wine 8's services.exe, and herder
from this working tree (wine_harness.py). The program is installed with `herder service
install` (it imports herder.service, so it runs directly as the service) and watched
through QueryServiceStatusEx and ControlService. What Wine cannot do (SHUTDOWN and
PRESHUTDOWN are never sent) stays with the fake seam in tests/service/test_svc_scm.py.
"""

from __future__ import annotations

import itertools

import pytest
from nspawn_harness import wait_until
from wine_harness import PYTHON, WINE_DIR, WindowsMachine, win_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

START_PENDING, STOP_PENDING, RUNNING, PAUSED = 2, 3, 4, 7
CONTROL_STOP, CONTROL_PAUSE, CONTROL_CONTINUE, CONTROL_PARAMCHANGE = 1, 2, 3, 6
# STOP | PAUSE_CONTINUE | SHUTDOWN | PARAMCHANGE | PRESHUTDOWN: the example has every hook
ALL_CONTROLS = 0x1 | 0x2 | 0x4 | 0x8 | 0x100


class Example:
    """The example program installed as service `name`, with its marks and go files."""

    def __init__(self, windows: WindowsMachine, name: str, exit_code: str, *options: str) -> None:
        self.windows, self.name = windows, name
        work = windows.drive_c / "herder-it"
        work.mkdir(exist_ok=True)
        self.marks, self.go = work / f"{name}.marks", work / f"{name}.go"
        windows.herder_ok("service", "install", name, "--start", "manual", "--cwd", r"C:\herder-it",
                          "--env", "BILLING_REGION=eu", *options, "--", PYTHON,
                          win_path(WINE_DIR / "billing_sync.py"), rf"C:\herder-it\{name}.marks",
                          rf"C:\herder-it\{name}.go", exit_code)

    def lines(self) -> list[str]:
        return self.marks.read_text().splitlines() if self.marks.exists() else []

    def wait_mark(self, text: str) -> None:
        wait_until(f"{text!r} in {self.marks.name}", lambda: text in self.lines())

    def uninstall(self) -> None:
        self.windows.herder_ok("service", "uninstall", self.name)
        assert not self.windows.exists(self.name)


def _increasing(checkpoints: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(checkpoints))


def test_the_service_example_under_the_scm(windows: WindowsMachine) -> None:
    ex = Example(windows, "BillingSync", "0")
    image = windows.registry(r"HKLM\SYSTEM\CurrentControlSet\Services\BillingSync")
    assert r"C:\py\python.exe -m herder.platform.winhost BillingSync" in image   # the host runs it in-process
    with windows.herder_running("service", "start", "BillingSync") as starter:
        # start-up lasts until the go file exists: START_PENDING, checkpoints advancing, no controls
        early = windows.wait_state("BillingSync", "START_PENDING", timeout=60, checkpoint=3)
        pending = [s for s in early["seen"] if s[0] == START_PENDING and s[1] > 0]   # 0: the SCM's own
        checkpoints = [s[1] for s in pending]
        assert len(checkpoints) >= 3 and _increasing(checkpoints), early
        assert all(s[3] == 0 and s[2] >= 2000 for s in pending), early   # no controls; hint ≥ 2 s
        pid = windows.query("BillingSync")["ProcessId"]   # the program is the SCM's process, and knows it
        assert ex.lines() == ["db.connect", f"pid {pid} mode windows-scm", r"cwd C:\herder-it region eu"]
        ex.go.touch()
        running = windows.wait_state("BillingSync", "RUNNING")["final"]
        out, _ = starter.communicate(timeout=120)
    assert starter.returncode == 0 and b"BillingSync: start done" in out, out
    assert running["ControlsAccepted"] == ALL_CONTROLS, running
    ex.wait_mark("ready")

    windows.control("BillingSync", CONTROL_PARAMCHANGE)
    ex.wait_mark("reload")
    windows.control("BillingSync", CONTROL_PAUSE)
    windows.wait_state("BillingSync", "PAUSED")
    ex.wait_mark("pause")
    windows.control("BillingSync", CONTROL_CONTINUE)
    windows.wait_state("BillingSync", "RUNNING")
    ex.wait_mark("continue")

    windows.control("BillingSync", CONTROL_STOP)
    stop = windows.watch("BillingSync", "STOPPED", timeout=60)
    assert stop["reached"], stop
    stopping = [s for s in stop["seen"] if s[0] == STOP_PENDING]
    assert len(stopping) >= 2 and _increasing([s[1] for s in stopping]), stop
    assert all(s[3] == 0 and s[2] >= 2000 for s in stopping), stop
    hints = [s[2] for s in stopping]
    assert 30000 in hints and 5000 in hints, stop   # each step announces its own deadline (drain, then close)
    assert stop["final"]["Win32ExitCode"] == 0 and stop["final"]["ServiceSpecificExitCode"] == 0, stop
    # the shutdown steps ran in reverse order of registration
    assert ex.lines()[-3:] == ["stopping: SCM STOP", "server.drain", "db.close"], ex.lines()
    events = windows.event_lines()
    for line in ('"starting billing-sync (mode: windows-scm)"', '"billing-sync is ready"',
                 '"stopping billing-sync: SCM STOP"', '"billing-sync stopped (exit code 0)"'):
        assert f"L{line}" in events, events[-20:]
    ex.uninstall()


@pytest.mark.parametrize("exit_code,recorded", [("3", 3), ("raise", 1)])
def test_the_exit_code_is_recorded_by_the_scm(windows: WindowsMachine, exit_code: str, recorded: int) -> None:
    """The exit code the SCM keeps is the program's, however long its process takes to end
    after STOPPED (BILLING_LINGER: it waits for the service thread first). pywin32 used to
    report STOPPED again from that thread, with 0x20000001: a race the process's exit
    usually won, and lost under load; with the linger it lost every time."""
    name = f"BillingExit{exit_code.capitalize()}"
    ex = Example(windows, name, exit_code, "--env", "BILLING_LINGER=1")
    ex.go.touch()
    assert "start done" in windows.herder_ok("service", "start", name)
    windows.herder_ok("service", "stop", name)
    st = windows.query(name)
    assert (st["CurrentState"], st["Win32ExitCode"], st["ServiceSpecificExitCode"]) == (1, 1066, recorded), st
    status = windows.herder("service", "status", name)
    assert status.returncode == 3, status
    assert f"last exit: code {recorded} (service-specific error 1066)" in status.stdout
    ex.uninstall()


def test_a_stop_while_start_pending_is_refused_until_running(windows: WindowsMachine) -> None:
    """No controls are accepted while starting, so the SCM refuses a stop until RUNNING (Wine
    answers 1052 ERROR_INVALID_SERVICE_CONTROL; Windows documents 1061 ERROR_SERVICE_CANNOT_ACCEPT_CTRL)."""
    ex = Example(windows, "BillingEarlyStop", "0")
    with windows.herder_running("service", "start", "BillingEarlyStop") as starter:
        windows.wait_state("BillingEarlyStop", "START_PENDING", checkpoint=1)   # the program's own report
        refused = windows.control("BillingEarlyStop", CONTROL_STOP)
        assert refused.get("error") in (1052, 1061), refused
        ex.go.touch()
        windows.wait_state("BillingEarlyStop", "RUNNING")
        out, _ = starter.communicate(timeout=120)
        assert starter.returncode == 0, out
    ex.uninstall()   # stops it first
    assert ex.lines()[-2:] == ["server.drain", "db.close"]


def test_uninstall_waits_until_the_scm_has_removed_the_service(windows: WindowsMachine) -> None:
    """DeleteService only marks a service for deletion while a handle to it is open, and
    the service's own process holds one until it exits. Here the process lives on for a
    while after STOPPED (BILLING_LINGER) and the stop is Wine's sc, which does not wait for
    the process: the uninstall still returns only once the service is gone."""
    ex = Example(windows, "BillingGone", "0", "--env", "BILLING_LINGER=1")
    ex.go.touch()
    windows.herder_ok("service", "start", "BillingGone")
    assert windows.sc("stop", "BillingGone").returncode == 0
    windows.wait_state("BillingGone", "STOPPED")
    ex.uninstall()   # asserts that the SCM no longer knows it
    assert ex.lines()[-1] == "db.close"
