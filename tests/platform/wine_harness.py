"""A Windows machine for the tests: a Wine prefix with the PSF's Windows CPython and real pywin32.

setup-wine.sh builds the prefix once per machine (cached, content-hashed); each test
module copies it, points the Windows Python at this working tree (a ``.pth`` file in its
site-packages: herder is imported from the checkout, as ``pip install -e`` would, with no
copy and no shim), and boots Wine's service control manager:

- ``wineserver -p`` (persistent: else services die ~2 s after the last Wine process), then
  ``wine cmd /c exit 0`` with stdin/stdout on /dev/null, which starts services.exe. System
  processes inherit that command's stdio, so a pipe there would hang every later caller.
  Its stderr goes to ``services.err`` with ``WINEDEBUG=-all,+eventlog``: every service
  inherits it, so each ReportEventW a service makes (the Event Log) shows up there.
- Windows python's stdout is always a pipe (a regular file kills it at start-up under Wine 8).
- A "reboot" is ``wineserver -k`` then a new boot: services.exe starts the ``start= auto``
  services again (Wine never sends SHUTDOWN or PRESHUTDOWN on the way down).

The SCM is observed through one long-lived Windows process (wine/scm_agent.py, real
pywin32), so a status query costs milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SRC = HERE.parent.parent
WINE_DIR = HERE / "wine"
PYTHON = r"C:\py\python.exe"
STATES = {"STOPPED": 1, "START_PENDING": 2, "STOP_PENDING": 3, "RUNNING": 4, "CONTINUE_PENDING": 5,
          "PAUSE_PENDING": 6, "PAUSED": 7}


def win_path(path: Path | str) -> str:
    """The Windows name of a Linux path (Wine maps Z: to /)."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


def template() -> tuple[Path | None, str]:
    """(the cached prefix, why-not). Runs setup-wine.sh: quick once the cache exists."""
    if os.environ.get("HERDER_TEST_WINE") == "0":
        return None, "HERDER_TEST_WINE=0"
    if os.geteuid() != 0:
        return None, "the Windows tier needs root (apt, a Wine prefix under /var/cache/herder-it)"
    if not os.environ.get("HERDER_TEST_WINE") and not shutil.which("wine"):
        return None, ("Wine is not installed; HERDER_TEST_WINE=1 make test (or make test-wine) sets the Windows "
                      "tier up from nothing: apt wine, the Windows CPython and pywin32 (~1.4 GB, about a minute)")
    res = subprocess.run([str(HERE / "setup-wine.sh")], capture_output=True, text=True, timeout=1500,
                         env={**os.environ, "HERDER_PY": os.environ.get("HERDER_PY", sys.executable)})
    if res.returncode != 0:
        return None, f"setup-wine.sh failed (exit {res.returncode}): {res.stderr.strip()[-800:]}"
    return Path(res.stdout.strip().splitlines()[-1]), ""


class Agent:
    """The SCM agent: JSON lines over a pipe to a Windows python running wine/scm_agent.py."""

    def __init__(self, machine: WindowsMachine) -> None:
        self.proc = subprocess.Popen(["wine", PYTHON, win_path(WINE_DIR / "scm_agent.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=machine.env)
        self._buf = b""
        self.noise: list[str] = []
        hello = self._read(60)
        assert "ready" in hello, hello

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text.startswith("{"):
                    return dict(json.loads(text))
                if text:
                    self.noise.append(text)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the SCM agent did not answer within {timeout:g}s; it said: {self.noise[-5:]}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"the SCM agent ended (exit {self.proc.wait()}); it said: {self.noise[-10:]}")
                self._buf += chunk

    def ask(self, wait: float = 30, **req: Any) -> dict[str, Any]:
        """Send one request; its answer within `wait` seconds (plus a margin for a loaded machine)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(wait + 30)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class WindowsMachine:
    def __init__(self, work: Path, template: Path) -> None:
        self.work = work
        self.prefix = work / "prefix"
        t = time.monotonic()
        subprocess.run(["cp", "-a", str(template), str(self.prefix)], check=True, timeout=300)
        self.copy_seconds = time.monotonic() - t
        (self.prefix / "drive_c/py/Lib/site-packages/herder-worktree.pth").write_text(win_path(SRC) + "\r\n")
        self.drive_c = self.prefix / "drive_c"
        self.events = work / "services.err"     # the services' stderr: Wine's +eventlog trace
        self.env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WINEDEBUG", "PYTHONPATH")}
        self.env.update(WINEPREFIX=str(self.prefix), WINEDEBUG="-all", HOME=str(work),
                        WINEDLLOVERRIDES="winemenubuilder.exe=d;mscoree=d;mshtml=d")
        self._agent: Agent | None = None
        self.boots: list[float] = []

    # ---- the machine ------------------------------------------------------------------

    def _quiet(self, *argv: str, timeout: float, env: dict[str, str] | None = None, stderr: Any = None) -> int:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=stderr or subprocess.DEVNULL, env=env or self.env, timeout=timeout).returncode

    def boot(self) -> None:
        t = time.monotonic()
        self._quiet("wineserver", "-p", timeout=30)
        with open(self.events, "ab") as err:
            rc = self._quiet("wine", "cmd", "/c", "exit", "0", timeout=300, stderr=err,
                             env={**self.env, "WINEDEBUG": "-all,+eventlog"})
        assert rc == 0, f"booting Wine failed (exit {rc})"
        self.boots.append(time.monotonic() - t)

    def shutdown(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None
        self._quiet("wineserver", "-k", timeout=60)
        self._quiet("wineserver", "-w", timeout=120)

    def reboot(self) -> None:
        self.shutdown()
        self.boot()

    # ---- running Windows programs --------------------------------------------------------

    def python(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """The Windows CPython with these arguments; output as text with CRLF undone."""
        res = subprocess.run(["wine", PYTHON, *args], stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=timeout, env=self.env)
        out = res.stdout.decode(errors="replace").replace("\r\n", "\n")
        err = res.stderr.decode(errors="replace").replace("\r\n", "\n")
        return subprocess.CompletedProcess(res.args, res.returncode, out, err)

    def herder(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "herder", *args, timeout=timeout)

    @contextlib.contextmanager
    def herder_running(self, *args: str) -> Iterator[subprocess.Popen[bytes]]:
        """`herder ARGS` in the background while the block runs (stdout and stderr in one
        pipe: read it with ``communicate``); killed if still running when the block ends."""
        proc = subprocess.Popen(["wine", PYTHON, "-m", "herder", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def herder_ok(self, *args: str, timeout: float = 180) -> str:
        res = self.herder(*args, timeout=timeout)
        assert res.returncode == 0, f"herder {' '.join(args)}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    # ---- the SCM -------------------------------------------------------------------------

    @property
    def agent(self) -> Agent:
        if self._agent is None or self._agent.proc.poll() is not None:
            self._agent = Agent(self)
        return self._agent

    def query(self, name: str) -> dict[str, Any]:
        return self.agent.ask(op="query", name=name)

    def control(self, name: str, code: int) -> dict[str, Any]:
        return self.agent.ask(op="control", name=name, code=code)

    def watch(self, name: str, until: str, timeout: float = 30, checkpoint: int = 0) -> dict[str, Any]:
        """Every distinct [state, checkpoint, wait hint, controls] until the state is `until`
        with at least `checkpoint` (or the timeout)."""
        return self.agent.ask(wait=timeout, op="watch", name=name, until=STATES[until], timeout=timeout,
                              checkpoint=checkpoint)

    def wait_state(self, name: str, state: str, timeout: float = 30, checkpoint: int = 0) -> dict[str, Any]:
        got = self.watch(name, state, timeout, checkpoint)
        assert got.get("reached"), f"{name} did not reach {state} within {timeout:g}s: {got}"
        return got

    def exists(self, name: str) -> bool:
        got = self.query(name)
        if got.get("error") == 1060:   # ERROR_SERVICE_DOES_NOT_EXIST
            return False
        assert "error" not in got, got
        return True

    def sc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Wine's own sc.exe (output as text)."""
        return subprocess.run(["wine", "sc", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120, env=self.env)

    def registry(self, key: str) -> str:
        """`reg query KEY`'s output, or "" when the key does not exist. Any other failure is
        raised with what reg.exe and Wine said: a CI run once got "" for a key written a moment
        before, and an empty answer hid why."""
        res = subprocess.run(["wine", "reg", "query", key], stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=60, env=self.env)
        out = res.stdout.decode(errors="replace").replace("\r\n", "\n")
        if res.returncode == 0:
            return out
        err = res.stderr.decode(errors="replace")
        assert "Unable to find the specified registry key" in out + err, \
            f"wine reg query {key}: exit {res.returncode}, stdout {out!r}, stderr {err!r}"
        return ""

    def event_lines(self) -> list[str]:
        """What services passed to ReportEventW, in order (Wine prints it, it does not store it)."""
        try:
            text = self.events.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line.split("ReportEventW ", 1)[1] for line in text.splitlines() if ":ReportEventW " in line]


def open_machine() -> tuple[WindowsMachine | None, str]:
    path, why = template()
    if path is None:
        return None, why
    work = Path(tempfile.mkdtemp(prefix="herder-it-windows-", dir="/var/tmp"))
    machine = WindowsMachine(work, path)
    machine.boot()
    return machine, ""


def close_machine(machine: WindowsMachine) -> None:
    try:
        machine.shutdown()
    finally:
        shutil.rmtree(machine.work, ignore_errors=True)
