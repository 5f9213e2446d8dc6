"""The sc.exe lines herder renders, run against Wine's real service control manager (opt-in).

`make test-wine` installs Wine + mingw (~1.2 GB, tests/platform/setup-wine.sh) and runs
it; `make test` runs it when they are already installed (or with HERDER_TEST_WINE=1, which
also installs them). Wine 8's SCM really creates, starts, queries, stops and deletes
services, stores descriptions and auto-starts on "boot"; it does NOT implement failure
actions (accepted and dropped), crash detection, or `sc failureflag/sidtype/qc/config`.
So those lines are run and their results recorded, not asserted. Nothing here runs on
real Windows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herder.config.model import ServiceSpec
from herder.platform import windows
from herder.platform.spec import InstallSpec

_HAVE_WINE = bool(shutil.which("wine") and shutil.which("x86_64-w64-mingw32-gcc"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(not _HAVE_WINE,
                                 reason="wine + mingw are not installed; `make test-wine` or HERDER_TEST_WINE=1 "
                                        "installs them (~1.2 GB)")]
HERE = Path(__file__).parent
NAME = "HerderItSvc"
KNOWN_STUBS = {"failureflag", "sidtype"}     # not in Wine 8's sc.exe


class Wine:
    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        self.env.update(WINEPREFIX=str(prefix), WINEDEBUG="-all", WINEDLLOVERRIDES="winemenubuilder.exe=d",
                        HOME=str(prefix.parent))

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wine", *argv], capture_output=True, text=True, timeout=timeout, env=self.env,
                              stdin=subprocess.DEVNULL)

    def quiet(self, *argv: str, timeout: float = 300) -> int:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=self.env, timeout=timeout).returncode

    def boot(self) -> None:
        """A persistent wineserver, then services.exe started with stdio on /dev/null (else callers hang)."""
        self.quiet("wineserver", "-p", timeout=30)
        self.quiet("wine", "cmd", "/c", "exit", "0", timeout=120)

    def shutdown(self) -> None:
        self.quiet("wineserver", "-k", timeout=30)
        self.quiet("wineserver", "-w", timeout=60)

    def state(self, name: str) -> str | None:
        res = self.run("sc", "query", name)
        for line in res.stdout.replace("\r", "").splitlines():
            if "STATE" in line:
                return line.split()[-1]
        return None

    def wait_state(self, name: str, want: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.state(name)) != want:
            assert time.monotonic() < deadline, f"{name} is {got}, expected {want}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def wine() -> Iterator[Wine]:
    if not shutil.which("wine") or not shutil.which("x86_64-w64-mingw32-gcc"):
        pytest.skip("wine/mingw missing: run tests/platform/setup-wine.sh (make test-wine does)")
    work = Path(tempfile.mkdtemp(prefix="herder-it-wine-", dir="/var/tmp"))
    w = Wine(work / "prefix")
    try:
        assert w.quiet("wine", "wineboot", "--init") == 0
        w.quiet("wineserver", "-w", timeout=60)
        exe_dir = w.prefix / "drive_c" / "herder-it"
        exe_dir.mkdir(parents=True)
        subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(exe_dir / "hsvc.exe"), str(HERE / "wine/hsvc.c"),
                        "-ladvapi32"], check=True, timeout=120)
        w.boot()
        yield w
    finally:
        w.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def _spec(start: str) -> InstallSpec:
    # A program that speaks the SCM protocol runs directly (binPath = its command line)
    return InstallSpec(NAME, ServiceSpec(command=(r"C:\herder-it\hsvc.exe",)), notify=True, start=start,
                       account="LocalSystem", description="herder Wine tier service")


def test_rendered_sc_lines_against_wines_scm(wine: Wine) -> None:
    log = wine.prefix / "drive_c" / "herder-it" / "svc.log"
    results = {}
    for argv in windows.render_sc(_spec("auto"), "python.exe"):
        res = wine.run(*argv)
        results[" ".join(argv[:2])] = res.returncode
        if argv[1] in KNOWN_STUBS:
            continue
        assert res.returncode == 0, f"{argv}: rc {res.returncode} {res.stdout} {res.stderr}"
    print("sc results under Wine:", results)
    wine.wait_state(NAME, "RUNNING")
    assert "running" in log.read_text()
    reg = wine.run("reg", "query", rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}").stdout
    assert "herder Wine tier service" in reg and "PreshutdownTimeout" in reg
    marker = wine.run("reg", "query", rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}\Parameters").stdout
    assert "HerderManaged" in marker and "program" in marker

    for op in windows.control_op("stop", _spec("auto")):
        assert wine.run(*op.sc).returncode == 0  # type: ignore[misc]
    wine.wait_state(NAME, "STOPPED")
    assert "control STOP" in log.read_text()

    # auto-start on "boot": the wine machine goes down and comes back
    wine.run("sc", "start", NAME)
    wine.wait_state(NAME, "RUNNING")
    wine.shutdown()
    wine.boot()
    wine.wait_state(NAME, "RUNNING")

    for op in windows.uninstall_ops(_spec("auto")):
        wine.run(*op.sc)  # type: ignore[misc]
    assert wine.run("sc", "query", NAME).returncode != 0


def test_manual_start_type_is_not_started(wine: Wine) -> None:
    lines = windows.render_sc(_spec("manual"), "python.exe")
    assert not any(a[1] == "start" for a in lines)
    for argv in lines:
        wine.run(*argv)
    assert wine.state(NAME) == "STOPPED"
    reg = wine.run("reg", "query", rf"HKLM\SYSTEM\CurrentControlSet\Services\{NAME}", "/v", "Start").stdout
    assert "0x3" in reg
    for op in windows.uninstall_ops(_spec("manual")):
        wine.run(*op.sc)  # type: ignore[misc]
