"""Start and stop one program with its whole tree, for the Windows service host.

Windows: a service has no console, so a Ctrl+Break or Ctrl+C sent "to the child's process
group" from the service fails (there is no console to carry it). The child therefore gets
a console of its own (CREATE_NEW_CONSOLE, window hidden), and a polite stop is NSSM's:
the host attaches to that console, ignores Ctrl+C itself, generates CTRL_C_EVENT for the
whole console (the child and every descendant attached to it: Python sees SIGINT /
KeyboardInterrupt, Node and Go see their interrupt), and detaches. Proven from a real
service under Wine's SCM (tests/platform/test_windows_install.py); CTRL_BREAK_EVENT is
not used because Wine cannot deliver it (error 6). The child is also put in a Job Object
with KILL_ON_JOB_CLOSE, so after ``stop_timeout`` TerminateJobObject ends every process
it started — and so does the host's own death. When the Ctrl+C cannot be delivered at
all, the tree is terminated at once and the log says why.

POSIX (how the wrapper logic is tested on Linux): its own session, the stop signal to
the process group, then SIGKILL to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, Any

from herder.units import parse_signal


@dataclass(frozen=True)
class Stopped:
    """How a stop went: the exit code, and a sentence for the log."""

    code: int
    how: str


class Child:
    def __init__(self, proc: asyncio.subprocess.Process, job: Any = None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._job = job

    async def wait(self) -> int:
        return await self.proc.wait()

    async def stop(self, stop_signal: str, timeout: float) -> Stopped:
        """Polite stop, then the whole tree killed after `timeout`."""
        if self.proc.returncode is not None:
            return Stopped(self.proc.returncode, "had already exited")
        polite = "Ctrl+C" if sys.platform == "win32" else stop_signal
        problem = self._polite(stop_signal)
        if problem is None:
            try:
                async with asyncio.timeout(timeout):
                    code = await self.proc.wait()
                return Stopped(code, f"exited after {polite}")
            except TimeoutError:
                problem = f"did not exit within {timeout:g}s of {polite}"
        what = self._kill_tree()
        code = await self.proc.wait()
        return Stopped(code, f"{problem}; {what}")

    def _polite(self, stop_signal: str) -> str | None:
        """Send the polite stop; None when sent, else why it could not be."""
        if sys.platform == "win32":
            return _console_ctrl_c(self.pid)
        try:
            os.killpg(self.pid, parse_signal(stop_signal))
        except (ProcessLookupError, PermissionError) as e:
            return f"could not send {stop_signal} ({e.strerror or e})"
        return None

    def _kill_tree(self) -> str:
        """Kill everything the child started; says how."""
        with contextlib.suppress(ProcessLookupError, OSError):
            if sys.platform == "win32" and self._job is not None:
                import win32job

                win32job.TerminateJobObject(self._job, 1)
                return "terminated its process tree (Job Object)"
            if sys.platform == "win32":
                self.proc.kill()
                return "terminated it (no Job Object: its children may be left)"
            os.killpg(self.pid, signal.SIGKILL)
            return "sent SIGKILL to its process group"
        return "it was already gone"


def _console_ctrl_c(pid: int) -> str | None:
    """CTRL_C_EVENT to every process on `pid`'s console (NSSM's method); None when sent."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    kernel32.FreeConsole()   # a service has none; a console run of the host must let go of its own
    last_error = ctypes.get_last_error  # type: ignore[attr-defined,unused-ignore]
    if not kernel32.AttachConsole(pid):
        return f"could not send Ctrl+C: AttachConsole({pid}) failed with error {last_error()}"
    try:
        # Ignore Ctrl+C in this process for good: the event reaches every process on the
        # console, us included, until we detach. The host never starts a child after a stop.
        kernel32.SetConsoleCtrlHandler(None, True)
        if not kernel32.GenerateConsoleCtrlEvent(0, 0):   # CTRL_C_EVENT, the whole console
            return f"could not send Ctrl+C: GenerateConsoleCtrlEvent failed with error {last_error()}"
    finally:
        kernel32.FreeConsole()
    return None


async def start(argv: tuple[str, ...], env: dict[str, str], cwd: str | None, log: IO[bytes]) -> Child:
    if sys.platform == "win32":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        info.wShowWindow = 0   # SW_HIDE: its console exists only to carry Ctrl+C
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd,
            creationflags=subprocess.CREATE_NEW_CONSOLE, startupinfo=info)
        return Child(proc, _job_for(proc.pid))
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd,
        start_new_session=True)
    return Child(proc)


def _job_for(pid: int) -> Any:
    """A Job Object that kills its processes when closed; None when pywin32 is missing.

    The child is assigned just after it started: a grandchild it spawns in that instant
    (a few hundred microseconds) would escape the job; its console still gets the Ctrl+C.
    """
    try:
        import win32api
        import win32con
        import win32job
    except ImportError:
        return None
    job = win32job.CreateJobObject(None, "")
    info = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
    info["BasicLimitInformation"]["LimitFlags"] |= win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, info)
    handle = win32api.OpenProcess(win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE, False, pid)
    win32job.AssignProcessToJobObject(job, handle)
    return job
