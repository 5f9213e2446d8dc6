"""Start and stop one program with its whole tree, for the Windows service host.

Windows: the child gets its own console process group (CREATE_NEW_PROCESS_GROUP) so
CTRL_BREAK_EVENT reaches it and its children, and it is put in a Job Object with
KILL_ON_JOB_CLOSE, so TerminateJobObject after the stop timeout — or the host dying —
ends every process it started. POSIX (how the wrapper logic is tested on Linux): its
own session, the stop signal to the process group, then SIGKILL to the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import IO, Any

from herder.units import parse_signal


class Child:
    def __init__(self, proc: asyncio.subprocess.Process, job: Any = None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._job = job

    async def wait(self) -> int:
        return await self.proc.wait()

    async def stop(self, stop_signal: str, timeout: float) -> int:
        """Polite stop, then the whole tree killed after `timeout`; returns the exit code."""
        if self.proc.returncode is None:
            self._polite(stop_signal)
            try:
                async with asyncio.timeout(timeout):
                    return await self.proc.wait()
            except TimeoutError:
                pass
        self._kill_tree()
        return await self.proc.wait()

    def _polite(self, stop_signal: str) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if sys.platform == "win32":
                self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                os.killpg(self.pid, parse_signal(stop_signal))

    def _kill_tree(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if sys.platform == "win32" and self._job is not None:
                import win32job  # type: ignore[import-untyped]

                win32job.TerminateJobObject(self._job, 1)
            elif sys.platform == "win32":
                self.proc.kill()
            else:
                os.killpg(self.pid, signal.SIGKILL)


async def start(argv: tuple[str, ...], env: dict[str, str], cwd: str | None, log: IO[bytes]) -> Child:
    if sys.platform == "win32":
        import subprocess

        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        return Child(proc, _job_for(proc.pid))
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd,
        start_new_session=True)
    return Child(proc)


def _job_for(pid: int) -> Any:
    """A Job Object that kills its processes when closed; None when pywin32 is missing."""
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
