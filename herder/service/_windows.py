"""The pywin32 seam: the only module that imports pywin32, and only when called.

It hosts the service from plain ``python.exe`` (``servicemanager.PrepareToHostSingle`` +
``StartServiceCtrlDispatcher``), the way frozen pywin32 services do, so the same file
installs with ``herder service install NAME -- python prog.py``. The SCM calls the
service's main on a thread of its own and control codes on the dispatcher (main) thread;
both are handed to :mod:`herder.service._scm` and the runtime.

pywin32's ``SvcRun`` reports RUNNING before ``SvcDoRun``; we override ``SvcRun`` so the
status sequence is ours. Our STOPPED (with 1066 and the exit code when it is not 0) is the
last word the SCM gets: after it, Windows may end the process at any moment and nothing
else may be reported. But pywin32 reports STOPPED once more when ``SvcRun`` returns (exit
0), or STOPPED with 1066/0x20000001 when it raised; and as soon as our STOPPED arrives,
``StartServiceCtrlDispatcher`` returns on the main thread, which exits the process. Which
of the two came first was a race: under load pywin32's report won, and the SCM showed
536870913 instead of the service's exit code; after a quick restart it could even stop
the *next* run's status, since the handle names the service, not the run. So once our
STOPPED is reported, ``SvcRun`` never returns: the service thread waits there until the
process ends (the main thread's exit ends it). Only when main failed before STOPPED was
reported does ``SvcRun`` raise, so that pywin32 reports the failure. Runs with real
pywin32 under Wine's SCM in the Windows tier (tests/platform/test_windows_scm.py); not
on a real Windows machine.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import PureWindowsPath
from typing import Any

from herder.service._scm import STOPPED, ScmStatus


def is_scm_child() -> bool:
    """True when the SCM started us: our parent process's image is services.exe.

    The same test as Go's ``svc.IsWindowsService`` and .NET's ``WindowsServiceHelpers``:
    the parent's pid from ``NtQueryInformationProcess(ProcessBasicInformation)``, its
    image from ``QueryFullProcessImageNameW`` (PROCESS_QUERY_LIMITED_INFORMATION is
    enough, even for a parent running as another account). Not psutil: its
    ``Process.name()`` fails under Wine; not ``os.getppid()``: it aborts a Wine process
    that has no Windows parent (started from Linux). Any failure means "not the SCM".
    """
    if sys.platform == "win32":
        try:
            image = _parent_image()
        except OSError:
            return False
        return image is not None and PureWindowsPath(image).name.lower() == "services.exe"
    return False


def _parent_image() -> str | None:
    """The full image path of our parent process, or None when there is none."""
    import ctypes
    from ctypes import wintypes

    class BasicInfo(ctypes.Structure):
        _fields_ = [("ExitStatus", ctypes.c_void_p), ("PebBaseAddress", ctypes.c_void_p),
                    ("AffinityMask", ctypes.c_void_p), ("BasePriority", ctypes.c_void_p),
                    ("UniqueProcessId", ctypes.c_void_p), ("InheritedFromUniqueProcessId", ctypes.c_void_p)]

    ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    info = BasicInfo()
    status = ntdll.NtQueryInformationProcess(ctypes.c_void_p(-1), 0, ctypes.byref(info), ctypes.sizeof(info), None)
    if status != 0 or not info.InheritedFromUniqueProcessId:
        return None
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.QueryFullProcessImageNameW.argtypes = [wintypes.HANDLE, wintypes.DWORD, wintypes.LPWSTR,
                                                    ctypes.POINTER(wintypes.DWORD)]
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, info.InheritedFromUniqueProcessId)
    if not handle:
        raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
    try:
        buf = ctypes.create_unicode_buffer(1024)
        size = wintypes.DWORD(len(buf))
        if not kernel32.QueryFullProcessImageNameW(handle, 0, buf, ctypes.byref(size)):
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
        return buf.value
    finally:
        kernel32.CloseHandle(handle)


_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000


class ExitCodeError(Exception):
    """Raised out of SvcRun when main ended without reporting STOPPED: pywin32 reports the failure."""


class PyWin32Seam:
    """Real seam over ``servicemanager`` / ``win32service`` / ``win32serviceutil``."""

    def __init__(self, name: str) -> None:
        import servicemanager
        import win32service

        self._name = name
        self._sm: Any = servicemanager
        self._ws: Any = win32service
        self._handle: Any = None
        self._stopped: ScmStatus | None = None   # our STOPPED, once the SCM has it

    def set_status(self, status: ScmStatus) -> None:
        self._ws.SetServiceStatus(
            self._handle,
            (
                self._ws.SERVICE_WIN32_OWN_PROCESS,
                status.state,
                status.controls_accepted,
                status.win32_exit_code,
                status.service_exit_code,
                status.checkpoint,
                status.wait_hint_ms,
            ),
        )
        if status.state == STOPPED:
            self._stopped = status

    def log_event(self, level: int, message: str) -> None:
        if level >= logging.ERROR:
            self._sm.LogErrorMsg(message)
        elif level >= logging.WARNING:
            self._sm.LogWarningMsg(message)
        else:
            self._sm.LogInfoMsg(message)

    def host(self, service_main: Callable[[], int], on_control: Callable[[int], int]) -> int:
        import win32serviceutil

        seam = self
        result: list[int] = []

        class _Framework(win32serviceutil.ServiceFramework):  # type: ignore[misc]
            _svc_name_ = self._name
            _svc_display_name_ = self._name

            def __init__(self, args: Any) -> None:
                super().__init__(args)
                seam._handle = self.ssh

            def ServiceCtrlHandlerEx(self, control: int, event_type: int, data: Any) -> int:
                return on_control(control)

            def SvcRun(self) -> None:
                try:
                    code = service_main()
                except Exception:   # after STOPPED nothing may reach the SCM; before it, pywin32 reports it
                    if seam._stopped is None:
                        raise
                    logging.getLogger("herder.service").exception("%s: error after STOPPED", seam._name)
                    code = seam._stopped.service_exit_code
                result.append(code)
                if seam._stopped is None:
                    raise ExitCodeError(f"{seam._name} ended (code {code}) without reporting STOPPED")
                # The SCM has our STOPPED: returning would let pywin32 report again. Wait
                # here; the dispatcher has returned on the main thread, whose exit ends us.
                threading.Event().wait()

        self._sm.Initialize()
        self._sm.PrepareToHostSingle(_Framework)
        self._sm.StartServiceCtrlDispatcher()
        if self._stopped is not None:   # the service thread may still be winding down
            return self._stopped.service_exit_code
        return result[0] if result else 1
