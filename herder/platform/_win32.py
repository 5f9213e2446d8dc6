"""The pywin32 seam for installing services: the only module that imports pywin32.

Everything above it (``windows.py``) calls these few methods, so tests substitute a
fake that records the calls and their arguments. The real class is not run on Windows
in this project's CI (docs/install.md says so); its calls follow the Win32 API
signatures that pywin32 exposes one to one.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

# winsvc.h values, spelled out so the logic and its tests need no pywin32.
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
SERVICE_STOPPED, SERVICE_RUNNING = 1, 4
SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"


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
    def stop(self, name: str, timeout: float) -> None: ...
    def delete(self, name: str) -> None: ...
    def query(self, name: str) -> tuple[int, int]: ...


class PyWin32Api:
    """The real SCM through pywin32 (win32service) and winreg. Not run in CI."""

    def __init__(self) -> None:
        import win32service

        self._ws: Any = win32service

    def _scm(self) -> Any:
        return self._ws.OpenSCManager(None, None, self._ws.SC_MANAGER_ALL_ACCESS)

    def _open(self, name: str) -> tuple[Any, Any]:
        scm = self._scm()
        try:
            return scm, self._ws.OpenService(scm, name, self._ws.SERVICE_ALL_ACCESS)
        except Exception:
            self._ws.CloseServiceHandle(scm)
            raise

    def _close(self, scm: Any, svc: Any) -> None:
        self._ws.CloseServiceHandle(svc)
        self._ws.CloseServiceHandle(scm)

    def exists(self, name: str) -> bool:
        try:
            scm, svc = self._open(name)
        except Exception:  # noqa: BLE001 - pywintypes.error 1060: does not exist
            return False
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
        import winreg

        path = SERVICES_KEY + "\\" + name + (("\\" + subkey) if subkey else "")
        with winreg.CreateKey(winreg.HKEY_LOCAL_MACHINE, path) as key:
            kind = winreg.REG_DWORD if isinstance(value, int) else winreg.REG_SZ
            winreg.SetValueEx(key, value_name, 0, kind, value)

    def get_value(self, name: str, subkey: str, value_name: str) -> str | int | None:
        import winreg

        path = SERVICES_KEY + "\\" + name + (("\\" + subkey) if subkey else "")
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path) as key:
                return winreg.QueryValueEx(key, value_name)[0]  # type: ignore[no-any-return]
        except OSError:
            return None

    def start(self, name: str) -> None:
        scm, svc = self._open(name)
        try:
            self._ws.StartService(svc, None)
        finally:
            self._close(scm, svc)

    def stop(self, name: str, timeout: float) -> None:
        """Ask it to stop and wait (bounded) for STOPPED, so a following start or delete works."""
        scm, svc = self._open(name)
        try:
            if self._ws.QueryServiceStatus(svc)[1] != SERVICE_STOPPED:
                self._ws.ControlService(svc, self._ws.SERVICE_CONTROL_STOP)
            deadline = time.monotonic() + timeout
            while self._ws.QueryServiceStatus(svc)[1] != SERVICE_STOPPED and time.monotonic() < deadline:
                time.sleep(0.25)  # the SCM has no wait-for-state call; bounded by the stop timeout
        finally:
            self._close(scm, svc)

    def delete(self, name: str) -> None:
        scm, svc = self._open(name)
        try:
            self._ws.DeleteService(svc)
        finally:
            self._close(scm, svc)

    def query(self, name: str) -> tuple[int, int]:
        scm, svc = self._open(name)
        try:
            st = self._ws.QueryServiceStatusEx(svc)
            return int(st["CurrentState"]), int(st["ProcessId"])
        finally:
            self._close(scm, svc)
