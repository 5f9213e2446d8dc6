"""`herder service …` and `herder install` on Windows, through real pywin32 against Wine's SCM.

Every command is the real CLI run by the PSF's Windows CPython with herder from this
working tree (wine_harness.py); the SCM is Wine 8's services.exe. Covered: install /
status / stop / start / restart / uninstall of a wrapped console program (graceful stop
by Ctrl+C to its own console), re-install as an update in place, a failure half-way
rolled back (fresh install and update), a program slower to reach the dispatcher than
Wine's default 10 s (started: the prefix sets ServicesPipeTimeout), the "flash and exit"
program (1053 when registered directly; run and restarted with backoff when wrapped, the
NSSM case),
`start= auto` back after a Wine reboot, and `herder install` refused with its reason.

What Wine cannot show stays with the fake seam (tests/platform/test_install_windows_seam.py):
it accepts failure actions but keeps none (and never runs them), answers
ChangeServiceConfig2 levels 3/4/5 with error 124 (herder notes it and goes on), and
never notices a crashed service.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_harness import wait_until
from wine_harness import PYTHON, WINE_DIR, WindowsMachine, win_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RECORDS = Path("drive_c/ProgramData/herder/installed")
KEY = r"HKLM\SYSTEM\CurrentControlSet\Services"


INSTALLED: list[str] = []


@pytest.fixture(autouse=True)
def _remove_leftovers(windows: WindowsMachine) -> Iterator[None]:
    """A failed test must not leave its services to the next one."""
    yield
    while INSTALLED:
        name = INSTALLED.pop()
        if windows.exists(name):
            windows.herder("service", "uninstall", name)


class Program:
    """A test program (wine/NAME.py) and its marks file, as service `service`."""

    def __init__(self, windows: WindowsMachine, service: str, script: str) -> None:
        INSTALLED.append(service)
        self.windows, self.service = windows, service
        work = windows.drive_c / "herder-it"
        work.mkdir(exist_ok=True)
        self.marks = work / f"{service}.marks"
        self.marks.unlink(missing_ok=True)
        self.log = work / "logs" / f"{service}.log"
        self.argv = [PYTHON, win_path(WINE_DIR / script), rf"C:\herder-it\{service}.marks"]

    def install(self, *options: str, args: tuple[str, ...] = (), ok: bool = True) -> str:
        argv = ("service", "install", self.service, "--log-dir", r"C:\herder-it\logs", *options, "--",
                *self.argv, *args)
        if ok:
            return self.windows.herder_ok(*argv)
        res = self.windows.herder(*argv)
        assert res.returncode != 0, res.stdout
        return res.stderr

    def lines(self) -> list[str]:
        return self.marks.read_text().splitlines() if self.marks.exists() else []

    def starts(self) -> list[str]:
        return [line for line in self.lines() if line.startswith("start")]

    def wait_starts(self, n: int, timeout: float = 60) -> list[str]:
        return list(wait_until(f"{n} starts of {self.service}", lambda: len(self.starts()) >= n and self.starts(),
                             timeout))

    def record(self) -> Path:
        return self.windows.prefix / RECORDS / f"{self.service}.json"


def test_install_status_stop_start_restart_uninstall(windows: WindowsMachine) -> None:
    p = Program(windows, "Plain", "plain.py")
    out = p.install("--env", "GREETING=hello")
    assert "Plain: installing (windows, system)" in out
    assert "does not implement failure actions on non-crash exits" in out    # Wine: error 124, noted
    reg = windows.registry(rf"{KEY}\Plain")
    assert r"-m herder.platform.winhost Plain" in reg and "Plain (installed by herder)" in reg
    assert "HerderManaged" in windows.registry(rf"{KEY}\Plain\Parameters")
    assert p.record().exists()
    windows.wait_state("Plain", "RUNNING")
    first = p.wait_starts(1)[0]
    assert first.endswith("GREETING=hello")
    wait_until("the program's output in its log", lambda: p.log.exists() and "plain: tick 1" in p.log.read_text())
    assert f"herder: started pid {first.split()[1]}" in p.log.read_text()

    # the host is a herder.service program without pause or reload hooks: the SCM refuses those
    assert windows.query("Plain")["ControlsAccepted"] == 0x1 | 0x4 | 0x100   # STOP | SHUTDOWN | PRESHUTDOWN
    for control in (2, 6):   # PAUSE, PARAMCHANGE
        assert windows.control("Plain", control).get("error") == 1052   # ERROR_INVALID_SERVICE_CONTROL
    status = windows.herder("service", "status", "Plain")
    assert status.returncode == 0 and "Plain: RUNNING (pid " in status.stdout, status
    assert r"log: C:\herder-it\logs\Plain.log" in status.stdout

    assert "Plain: stop done" in windows.herder_ok("service", "stop", "Plain")
    assert windows.query("Plain")["CurrentState"] == 1
    assert p.lines()[-1] == "stop SIGINT"   # Ctrl+C reached it through its own console: a graceful stop
    assert f"stopped pid {first.split()[1]}: exited after Ctrl+C (exit 0)" in p.log.read_text()
    assert windows.herder("service", "status", "Plain").returncode == 3

    windows.herder_ok("service", "start", "Plain")
    assert windows.query("Plain")["CurrentState"] == 4
    p.wait_starts(2)
    windows.herder_ok("service", "restart", "Plain")
    starts = p.wait_starts(3)
    assert len({s.split()[1] for s in starts}) == 3   # three runs, three pids
    events = windows.event_lines()
    assert any("stopped pid" in e and "exited after Ctrl+C" in e for e in events), events[-10:]

    out = windows.herder_ok("service", "uninstall", "Plain")
    assert "Plain: removing (windows, system)" in out
    assert not windows.exists("Plain") and not p.record().exists()
    assert p.lines()[-1] == "stop SIGINT"
    assert not windows.registry(rf"{KEY}\Plain")


def test_reinstall_is_an_update_in_place(windows: WindowsMachine) -> None:
    p = Program(windows, "Upd", "plain.py")
    p.install("--env", "GREETING=one", "--description", "first")
    windows.wait_state("Upd", "RUNNING")
    pid = p.wait_starts(1)[0].split()[1]

    same = p.install("--env", "GREETING=one", "--description", "first")
    assert "Upd: already installed with these settings; nothing changed" in same
    assert len(p.starts()) == 1 and windows.query("Upd")["CurrentState"] == 4   # not restarted

    changed = p.install("--env", "GREETING=two")   # the description is kept from the record
    assert "Upd: updating in place; changed:" in changed
    assert re.search(r'- +"GREETING": "one"', changed) and re.search(r'\+ +"GREETING": "two"', changed), changed
    starts = p.wait_starts(2)
    assert starts[-1].endswith("GREETING=two") and starts[-1].split()[1] != pid   # restarted with the change
    assert "first" in windows.registry(rf"{KEY}\Upd")

    again = windows.herder_ok("service", "install", "Upd")   # no command: re-render from the record
    assert "nothing changed" in again

    # removed behind herder's back (sc delete): the record is noticed, the service made again
    windows.herder_ok("service", "stop", "Upd")
    assert windows.sc("delete", "Upd").returncode == 0 and not windows.exists("Upd")
    back = windows.herder_ok("service", "install", "Upd")
    assert "record was there but the service was not; creating it again" in back, back
    windows.wait_state("Upd", "RUNNING")
    assert p.wait_starts(3)[-1].endswith("GREETING=two")
    windows.sc("stop", "Upd")
    windows.wait_state("Upd", "STOPPED")
    assert windows.sc("delete", "Upd").returncode == 0
    gone = windows.herder_ok("service", "uninstall", "Upd")   # and uninstall still cleans up
    assert "Upd: removing" in gone and not p.record().exists()


def test_a_fresh_install_that_fails_half_way_leaves_nothing(windows: WindowsMachine) -> None:
    records = windows.prefix / RECORDS
    aside = records.with_name("installed.aside")
    if records.exists():
        records.rename(aside)
    records.write_text("not a directory: the record cannot be written\n")
    try:
        p = Program(windows, "Half", "plain.py")
        err = p.install(ok=False)
        # the SCM steps all succeeded; the record write (the last step) failed; all undone
        assert "cannot write C:\\ProgramData\\herder\\installed\\Half.json" in err, err
        assert "rolled back: nothing was changed" in err, err
        assert not windows.exists("Half")
        assert not windows.registry(rf"{KEY}\Half")
    finally:
        records.unlink()
        if aside.exists():
            aside.rename(records)


def test_an_update_that_fails_half_way_is_rolled_back(windows: WindowsMachine) -> None:
    p = Program(windows, "Held", "plain.py")
    p.install("--start", "manual", "--description", "first")
    before = p.record().read_text()
    held = r"C:\ProgramData\herder\installed\Held.json"
    windows.agent.ask(op="hold", path=held)   # like a backup tool holding the record open
    try:
        err = p.install("--start", "auto", "--description", "second", ok=False)
    finally:
        windows.agent.ask(op="release", path=held)
    assert "cannot write C:\\ProgramData\\herder\\installed\\Held.json" in err, err
    assert "rolled back: nothing was changed" in err, err
    reg = windows.registry(rf"{KEY}\Held")
    assert "first" in reg and "second" not in reg, reg   # the previous description is back
    assert re.search(r"Start\s+REG_DWORD\s+0x3", reg), reg  # and the previous start type (demand)
    assert p.record().read_text() == before
    assert windows.query("Held")["CurrentState"] == 1
    p.install("--start", "manual", "--description", "second")   # released: the same update now works
    assert "second" in windows.registry(rf"{KEY}\Held")
    windows.herder_ok("service", "uninstall", "Held")


def test_the_scm_waits_services_pipe_timeout_for_a_slow_start(windows: WindowsMachine) -> None:
    """The prefix's ServicesPipeTimeout is honoured: a service whose process needs longer than
    Wine's default 10 s to reach the dispatcher still starts (setup-wine.sh sets 60 s, as
    REG_SZ: the only type Wine 8 reads; what the SCM waits for when a loaded machine starts
    Windows CPython slowly)."""
    control = windows.registry(r"HKLM\SYSTEM\CurrentControlSet\Control")
    assert re.search(r"ServicesPipeTimeout\s+REG_SZ\s+60000", control), control
    p = Program(windows, "SlowStart", "slow_connect.py")
    go = windows.drive_c / "herder-it" / "SlowStart.go"
    go.unlink(missing_ok=True)
    p.install("--notify", "--start", "manual", args=(r"C:\herder-it\SlowStart.go",))
    with windows.herder_running("service", "start", "SlowStart") as starter:
        p.wait_starts(1, timeout=120)   # its process runs: the SCM's wait began before this
        # 11 s more without a dispatcher: under Wine's default the SCM gave up at 10 s (STOPPED, 1053)
        held = windows.watch("SlowStart", "STOPPED", timeout=11)
        assert not held["reached"] and {s[0] for s in held["seen"]} == {2}, held   # START_PENDING throughout
        assert starter.poll() is None
        go.touch()
        out, _ = starter.communicate(timeout=120)
    assert starter.returncode == 0 and b"SlowStart: start done" in out, out
    assert windows.query("SlowStart")["CurrentState"] == 4
    windows.herder_ok("service", "uninstall", "SlowStart")


def test_flash_and_exit_1053_direct_then_wrapped_with_backoff(windows: WindowsMachine) -> None:
    # registered directly (--notify: "it speaks the SCM protocol"), a program that never
    # calls the dispatcher fails to start: 1053, at the latest when ServicesPipeTimeout is
    # up, and under Wine as soon as its process ends without having connected
    p = Program(windows, "Flash", "flash.py")
    p.install("--notify", "--start", "manual", args=("1", "0"))
    res = windows.herder("service", "start", "Flash")
    assert res.returncode == 1 and "(error 1053)" in res.stderr, res
    assert windows.query("Flash")["CurrentState"] == 1 and p.starts() and p.lines()[-1] == "exit 0", p.lines()

    # the same program wrapped by herder's service host (the NSSM case): it runs, exits 3
    # at once each time, is restarted with backoff, and after the start limit (5 failed
    # starts in 60 s) the host gives up with its exit code, which the SCM records (1066/3)
    out = p.install("--no-notify", "--start", "auto", args=("0", "3"))
    assert "updating in place" in out
    assert "-m herder.platform.winhost Flash" in windows.registry(rf"{KEY}\Flash")
    final = windows.wait_state("Flash", "STOPPED", timeout=90)["final"]
    assert (final["Win32ExitCode"], final["ServiceSpecificExitCode"]) == (1066, 3), final
    log = p.log.read_text()
    delays = [float(d) for d in re.findall(r"restarting in ([0-9.]+)s", log)]
    # (a run counts as a failed start when shorter than min_uptime, 1 s: on a machine so loaded
    # that Windows python needs longer to start, there are more runs before the host gives up)
    runs = log.count("exited with code 3")
    assert runs >= 6 and len(p.starts()) == runs + 1, log   # once directly, then each wrapped run
    assert len(delays) == runs - 1 and delays[:5] == sorted(delays[:5]) and delays[4] > 4 * delays[0], log
    assert "gave up: more than 5 failed starts within 60s" in log
    status = windows.herder("service", "status", "Flash")
    assert "last exit: code 3 (service-specific error 1066)" in status.stdout, status
    windows.herder_ok("service", "uninstall", "Flash")


def test_start_auto_comes_back_after_a_reboot(windows: WindowsMachine) -> None:
    auto, manual = Program(windows, "Boot", "plain.py"), Program(windows, "NoBoot", "plain.py")
    auto.install()
    manual.install("--start", "manual")
    windows.wait_state("Boot", "RUNNING")
    auto.wait_starts(1)
    windows.reboot()   # wineserver -k, then services.exe again: it starts the start= auto services
    windows.wait_state("Boot", "RUNNING")
    starts = auto.wait_starts(2)
    assert starts[0].split()[1] != starts[1].split()[1]
    assert windows.query("NoBoot")["CurrentState"] == 1 and not manual.starts()
    for name in ("Boot", "NoBoot"):
        windows.herder_ok("service", "uninstall", name)


def test_herder_install_is_refused_on_windows(windows: WindowsMachine) -> None:
    work = windows.drive_c / "herder-it"
    work.mkdir(exist_ok=True)
    (work / "herder.toml").write_text('[services.web]\ncommand = ["python", "-V"]\n')
    for extra in ((), ("--dry-run",)):
        res = windows.herder("install", "-c", r"C:\herder-it\herder.toml", *extra)
        assert res.returncode == 2, res
        assert "the supervisor (`herder up`) runs on Linux today" in res.stderr
        assert "herder service install NAME -- CMD ARGS" in res.stderr
    assert not windows.exists("herder")
    assert not (windows.prefix / RECORDS / "herder.json").exists()
