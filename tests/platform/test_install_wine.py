"""The sc.exe / reg.exe lines `--dry-run` prints, typed into Wine's real SCM.

A Windows user may prefer to run what `herder service install NAME --dry-run` prints by
hand (the docs put them side by side with herder's commands). This runs those exact lines
with Wine's sc.exe and reg.exe, for a herder.service program (run in-process by herder's host,
so `sc start` reaches RUNNING only when it reports so through the library); the record the
dry run prints as a file is written too.
Wine 8's sc has no `failureflag`, `sidtype`, `qc` or `config`, and stores nothing for
`sc failure`: those lines are run and their results printed, not asserted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from wine_harness import PYTHON, WINE_DIR, WindowsMachine, win_path

from herder.config.model import ServiceSpec
from herder.platform import windows as win
from herder.platform.spec import InstallSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NAME = "HerderItSc"
KNOWN_STUBS = {"failureflag", "sidtype"}     # not in Wine 8's sc.exe


def _run(windows: WindowsMachine, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["wine", *argv], capture_output=True, text=True, timeout=120, env=windows.env,
                         stdin=subprocess.DEVNULL)
    return res


@pytest.fixture(autouse=True)
def _no_service_left(windows: WindowsMachine) -> Iterator[None]:
    """Each test starts with no HerderItSc, whatever the test before it did: a failure half-way
    must not leave its service running into the next test (one CI failure cascaded so)."""
    yield
    if windows.exists(NAME):
        windows.sc("stop", NAME)
        windows.wait_state(NAME, "STOPPED", timeout=60)
        windows.sc("delete", NAME)
        assert not windows.exists(NAME), f"{NAME} could not be deleted after the test"


def _spec(windows: WindowsMachine, start: str) -> InstallSpec:
    work = windows.drive_c / "herder-it"
    work.mkdir(exist_ok=True)
    (work / f"{NAME}.go").touch()   # the example is ready at once
    command = (PYTHON, win_path(WINE_DIR / "billing_sync.py"), rf"C:\herder-it\{NAME}.marks",
               rf"C:\herder-it\{NAME}.go", "0")
    return InstallSpec(NAME, ServiceSpec(command=command, cwd=r"C:\herder-it"), notify=True, start=start,
                       account="LocalSystem", description="herder Wine tier service")


def _record(windows: WindowsMachine, spec: InstallSpec) -> None:
    """The one file the dry run prints besides the commands: the record the host reads."""
    path = windows.drive_c / "ProgramData/herder/installed" / f"{spec.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec.dumps())


def test_rendered_sc_lines_against_wines_scm(windows: WindowsMachine) -> None:
    spec = _spec(windows, "auto")
    _record(windows, spec)
    results = {}
    for argv in win.render_sc(spec, PYTHON):
        res = _run(windows, argv)
        results[" ".join(argv[:2])] = res.returncode
        if argv[1] in KNOWN_STUBS:
            continue
        assert res.returncode == 0, f"{argv}: rc {res.returncode} {res.stdout} {res.stderr}"
    print("sc results under Wine:", results)
    windows.wait_state(NAME, "RUNNING")
    marks = windows.drive_c / "herder-it" / f"{NAME}.marks"
    assert "ready" in marks.read_text().splitlines()
    reg = windows.registry(rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}")
    assert "herder Wine tier service" in reg and "PreshutdownTimeout" in reg
    marker = windows.registry(rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}\Parameters")
    assert "HerderManaged" in marker and "program" in marker

    for op in win.control_op("stop", spec):
        assert op.sc is not None and _run(windows, op.sc).returncode == 0
    windows.wait_state(NAME, "STOPPED")
    assert marks.read_text().splitlines()[-1] == "db.close"
    for op in win.uninstall_ops(spec):
        assert op.sc is not None
        _run(windows, op.sc)
    assert not windows.exists(NAME)
    (windows.drive_c / "ProgramData/herder/installed" / f"{NAME}.json").unlink()


def test_manual_start_type_is_not_started(windows: WindowsMachine) -> None:
    lines = win.render_sc(_spec(windows, "manual"), PYTHON)
    assert not any(a[1] == "start" for a in lines)
    for argv in lines:
        _run(windows, argv)
    assert windows.query(NAME)["CurrentState"] == 1
    reg = windows.registry(rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}")
    assert "0x3" in [line.split()[-1] for line in reg.splitlines() if line.strip().startswith("Start ")]
    for op in win.uninstall_ops(_spec(windows, "manual")):
        assert op.sc is not None
        _run(windows, op.sc)
    assert not windows.exists(NAME)
