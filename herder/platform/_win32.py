"""The pywin32 seam for installing services: the only module that imports pywin32.

Everything above it (``windows.py``) calls these few methods, so the logic is tested on
Linux against a fake that records the calls and their arguments
(tests/platform/test_install_windows_seam.py), and the real class runs through real
pywin32 against Wine's SCM in the Windows tier (tests/platform/test_windows_install.py).
Its calls follow the Win32 API signatures that pywin32 exposes one to one.

Waiting: the SCM has no "wait for this state" call that works everywhere
(NotifyServiceStatusChange is not in Wine), so ``start`` and ``stop`` poll
QueryServiceStatusEx the way Microsoft's own sample and ``net start`` do: every tenth
of the wait hint (here 0.1-0.25 s: a command line waits on it), for as long as the
checkpoint keeps advancing.

Done means gone: ``stop`` returns once the service's process has exited, not when the
status first says STOPPED (the process is still winding down then, and until it exits it
holds its handle to the service); ``delete`` returns once the SCM has removed the
service, not when DeleteService marked it. A service marked for deletion stays listed
(and cannot be created again: 1072) until the last handle to it closes, so an uninstall
that returned at the mark left the service behind whenever its process was slow to end
(seen under load).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# winsvc.h / winerror.h values, spelled out so the logic and its tests need no pywin32.
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_AUTO_START, SERVICE_DEMAND_START, SERVICE_DISABLED = 2, 3, 4
SERVICE_ERROR_NORMAL = 1
SERVICE_NO_CHANGE = 0xFFFFFFFF
SERVICE_CONFIG_DESCRIPTION = 1
SERVICE_CONFIG_FAILURE_ACTIONS = 2
SERVICE_CONFIG_DELAYED_AUTO_START_INFO = 3
SERVICE_CONFIG_FAILURE_ACTIONS_FLAG = 4
SERVICE_CONFIG_SERVICE_SID_INFO = 5
SERVICE_CONFIG_PRESHUTDOWN_INFO = 7
SERVICE_SID_TYPE_UNRESTRICTED = 1
SC_ACTION_NONE, SC_ACTION_RESTART = 0, 1
SERVICE_STOPPED, SERVICE_START_PENDING, SERVICE_STOP_PENDING, SERVICE_RUNNING = 1, 2, 3, 4
SERVICE_CONTROL_STOP = 1
ERROR_INVALID_LEVEL = 124
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_SPECIFIC_ERROR = 1066
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
SYNCHRONIZE, WAIT_OBJECT_0 = 0x00100000, 0
SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"
#: The longest a start or stop is waited for while its checkpoint keeps advancing.
MAX_PENDING = 600.0
#: How long ``delete`` waits for the SCM to remove a service marked for deletion.
DELETE_WAIT = 30.0


class ServiceTimeout(Exception):
    """A start or stop that made no progress within its wait hint (or its deadline)."""


@dataclass(frozen=True)
class ServiceStatus:
    """The fields of SERVICE_STATUS_PROCESS that herder looks at."""

    state: int
    pid: int = 0
    win32_exit_code: int = 0
    service_exit_code: int = 0
    checkpoint: int = 0
    wait_hint_ms: int = 0

    def exit_text(self) -> str:
        if self.win32_exit_code == ERROR_SERVICE_SPECIFIC_ERROR:
            return f"it exited with code {self.service_exit_code}"
        return f"Win32 error {self.win32_exit_code}"


class ServiceApi(Protocol):
    """What the installer needs from the SCM."""

    def exists(self, name: str) -> bool: ...
    def create(self, name: str, display: str, start_type: int, bin_path: str, dependencies: list[str],
               account: str | None, password: str | None) -> None: ...
    def change(self, name: str, display: str, start_type: int, bin_path: str, dependencies: list[str],
               account: str | None, password: str | None) -> None: ...
    def config2(self, name: str, level: int, value: Any) -> None: ...
    def set_value(self, name: str, subkey: str, value_name: str, value: str | int) -> None: ...
    def get_value(self, name: str, subkey: str, value_name: str) -> str | int | None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str, timeout: float, *, missing_ok: bool = False) -> None: ...
    def delete(self, name: str, *, missing_ok: bool = False) -> None: ...
    def query(self, name: str) -> ServiceStatus: ...


def _code(e: BaseException) -> int | None:
    code = getattr(e, "winerror", None)
    return code if isinstance(code, int) else None


class PyWin32Api:
    """The real SCM through pywin32 (win32service) and winreg."""

    def __init__(self) -> None:
        import win32api
        import win32event
        import win32service

        self._ws: Any = win32service
        self._api: Any = win32api
        self._event: Any = win32event

    def _scm(self) -> Any:
        return self._ws.OpenSCManager(None, None, self._ws.SC_MANAGER_ALL_ACCESS)

    def _open(self, name: str) -> tuple[Any, Any]:
        scm = self._scm()
        try:
            return scm, self._ws.OpenService(scm, name, self._ws.SERVICE_ALL_ACCESS)
        except Exception:
            self._ws.CloseServiceHandle(scm)
            raise

    def _open_unless_missing(self, name: str, missing_ok: bool) -> tuple[Any, Any] | None:
        try:
            return self._open(name)
        except Exception as e:
            if missing_ok and _code(e) == ERROR_SERVICE_DOES_NOT_EXIST:
                return None
            raise

    def _close(self, scm: Any, svc: Any) -> None:
        self._ws.CloseServiceHandle(svc)
        self._ws.CloseServiceHandle(scm)

    def exists(self, name: str) -> bool:
        try:
            scm, svc = self._open(name)
        except Exception as e:
            if _code(e) == ERROR_SERVICE_DOES_NOT_EXIST:
                return False
            raise
        self._close(scm, svc)
        return True

    def create(self, name: str, display: str, start_type: int, bin_path: str, dependencies: list[str],
               account: str | None, password: str | None) -> None:
        scm = self._scm()
        try:
            svc = self._ws.CreateService(scm, name, display, self._ws.SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                                         start_type, SERVICE_ERROR_NORMAL, bin_path, None, 0,
                                         dependencies or None, account, password)
            self._ws.CloseServiceHandle(svc)
        finally:
            self._ws.CloseServiceHandle(scm)

    def change(self, name: str, display: str, start_type: int, bin_path: str, dependencies: list[str],
               account: str | None, password: str | None) -> None:
        scm, svc = self._open(name)
        try:
            self._ws.ChangeServiceConfig(svc, SERVICE_NO_CHANGE, start_type, SERVICE_NO_CHANGE, bin_path, None, 0,
                                         dependencies, account, password, display)
        finally:
            self._close(scm, svc)

    def config2(self, name: str, level: int, value: Any) -> None:
        scm, svc = self._open(name)
        try:
            self._ws.ChangeServiceConfig2(svc, level, value)
        finally:
            self._close(scm, svc)

    def set_value(self, name: str, subkey: str, value_name: str, value: str | int) -> None:
        reg: Any = __import__("winreg")   # Windows only; Any keeps mypy on Linux from the win32-only stubs
        path = SERVICES_KEY + "\\" + name + (("\\" + subkey) if subkey else "")
        with reg.CreateKey(reg.HKEY_LOCAL_MACHINE, path) as key:
            kind = reg.REG_DWORD if isinstance(value, int) else reg.REG_SZ
            reg.SetValueEx(key, value_name, 0, kind, value)

    def get_value(self, name: str, subkey: str, value_name: str) -> str | int | None:
        reg: Any = __import__("winreg")
        path = SERVICES_KEY + "\\" + name + (("\\" + subkey) if subkey else "")
        try:
            with reg.OpenKey(reg.HKEY_LOCAL_MACHINE, path) as key:
                value: str | int = reg.QueryValueEx(key, value_name)[0]
                return value
        except OSError:
            return None

    def _status(self, svc: Any) -> ServiceStatus:
        st = self._ws.QueryServiceStatusEx(svc)
        return ServiceStatus(int(st["CurrentState"]), int(st["ProcessId"]), int(st["Win32ExitCode"]),
                             int(st["ServiceSpecificExitCode"]), int(st["CheckPoint"]), int(st["WaitHint"]))

    def _wait(self, svc: Any, done: Callable[[ServiceStatus], bool], pending: int, timeout: float) -> ServiceStatus:
        """Poll until `done`. While the state is `pending` the wait goes on as long as the
        checkpoint advances within the wait hint (up to MAX_PENDING); otherwise up to `timeout`."""
        start = time.monotonic()
        st = self._status(svc)
        progress_at, checkpoint = start, st.checkpoint
        while not done(st):
            now = time.monotonic()
            if st.checkpoint != checkpoint:
                progress_at, checkpoint = now, st.checkpoint
            hint = max(st.wait_hint_ms / 1000, 1.0)
            if st.state == pending:
                if now - progress_at > hint or now - start > MAX_PENDING:
                    break
            elif now - start > timeout:
                break
            time.sleep(min(max(hint / 10, 0.1), 0.25))
            st = self._status(svc)
        return st

    def start(self, name: str) -> None:
        """StartService, then wait (as ``net start`` does) until it is no longer START_PENDING;
        raises when it stopped instead of running. Already running is success."""
        scm, svc = self._open(name)
        try:
            try:
                self._ws.StartService(svc, None)
            except Exception as e:
                if _code(e) != ERROR_SERVICE_ALREADY_RUNNING:
                    raise
            st = self._wait(svc, lambda s: s.state != SERVICE_START_PENDING, SERVICE_START_PENDING, 30.0)
            if st.state == SERVICE_START_PENDING:
                raise ServiceTimeout(f"{name} is still starting (START_PENDING, checkpoint {st.checkpoint}) and "
                                     f"made no progress within its wait hint of {st.wait_hint_ms} ms")
            if st.state == SERVICE_STOPPED:
                raise ServiceTimeout(f"{name} stopped while starting: {st.exit_text()}")
        finally:
            self._close(scm, svc)

    def _process(self, pid: int) -> Any:
        """A handle to wait on the service's process, or None (no pid, already gone, or not
        ours to open). Taken before the stop, so the pid cannot be reused meanwhile."""
        if not pid:
            return None
        try:
            return self._api.OpenProcess(SYNCHRONIZE, False, pid)
        except Exception as e:   # pywintypes.error: gone (87), not ours to open (5)
            if _code(e) is None:
                raise
            return None

    def stop(self, name: str, timeout: float, *, missing_ok: bool = False) -> None:
        """Ask it to stop and wait (bounded by `timeout` and its wait hints) for STOPPED and
        then for its process to exit, so a following start or delete works. Already
        stopped is success; so is a missing service with ``missing_ok``."""
        opened = self._open_unless_missing(name, missing_ok)
        if opened is None:
            return
        scm, svc = opened
        process = None
        try:
            st = self._status(svc)
            if st.state != SERVICE_STOPPED:
                process = self._process(st.pid)
                try:
                    self._ws.ControlService(svc, SERVICE_CONTROL_STOP)
                except Exception as e:
                    if _code(e) != ERROR_SERVICE_NOT_ACTIVE:
                        raise
            start = time.monotonic()
            st = self._wait(svc, lambda s: s.state == SERVICE_STOPPED, SERVICE_STOP_PENDING, timeout)
            if st.state != SERVICE_STOPPED:
                raise ServiceTimeout(f"{name} did not stop within {timeout:g}s (state {st.state}, "
                                     f"checkpoint {st.checkpoint})")
            if process is not None:
                left = max(timeout - (time.monotonic() - start), 1.0)
                if self._event.WaitForSingleObject(process, round(left * 1000)) != WAIT_OBJECT_0:
                    raise ServiceTimeout(f"{name} is STOPPED but its process is still running {left:.0f}s "
                                         "later")
        finally:
            if process is not None:
                process.Close()
            self._close(scm, svc)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """DeleteService, then wait until the SCM has removed it (up to DELETE_WAIT). A
        service that is not there is fine with ``missing_ok`` (uninstall); one already
        marked for deletion (an uninstall run again) is waited for likewise."""
        opened = self._open_unless_missing(name, missing_ok)
        if opened is None:
            return
        scm, svc = opened
        try:
            try:
                self._ws.DeleteService(svc)
            except Exception as e:
                if _code(e) != ERROR_SERVICE_MARKED_FOR_DELETE:
                    raise
        finally:
            self._close(scm, svc)
        deadline = time.monotonic() + DELETE_WAIT
        while self.exists(name):
            if time.monotonic() > deadline:
                raise ServiceTimeout(
                    f"{name} is marked for deletion but still there after {DELETE_WAIT:g}s: the SCM removes a "
                    "service once every handle to it is closed (its process still running, a services.msc "
                    "window or another tool holding it open); close those, or run the uninstall again")
            time.sleep(0.1)

    def query(self, name: str) -> ServiceStatus:
        scm, svc = self._open(name)
        try:
            return self._status(svc)
        finally:
            self._close(scm, svc)
