"""The pywin32 calls a Windows install makes, against a fake at the seam (herder.platform._win32).

NOT run on real Windows: these check the exact calls and arguments per option; the
Wine tier (test_install_wine.py, opt-in) runs the equivalent sc.exe lines against
Wine's real SCM.
"""

from __future__ import annotations

from pathlib import PureWindowsPath
from typing import Any

import pytest
from install_specs import specs

from herder.config.model import Backoff, ServiceSpec
from herder.platform import _win32 as w
from herder.platform import windows
from herder.platform.installer import Host, NameTaken, check_not_taken
from herder.platform.plan import InstallError, execute
from herder.platform.spec import InstallSpec

PY = r"C:\Py\python.exe"


class FakeApi:
    def __init__(self, existing: dict[str, dict[str, Any]] | None = None, fail: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.services = existing or {}
        self.fail = fail

    def _rec(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail == call[0]:
            raise OSError(5, "Access is denied")

    def exists(self, name: str) -> bool:
        return name in self.services

    def create(self, *a: Any) -> None:
        self._rec("create", *a)

    def change(self, *a: Any) -> None:
        self._rec("change", *a)

    def config2(self, *a: Any) -> None:
        self._rec("config2", *a)

    def set_value(self, *a: Any) -> None:
        self._rec("set_value", *a)

    def get_value(self, name: str, subkey: str, value_name: str) -> Any:
        return self.services.get(name, {}).get(value_name)

    def start(self, *a: Any) -> None:
        self._rec("start", *a)

    def stop(self, *a: Any) -> None:
        self._rec("stop", *a)

    def delete(self, *a: Any) -> None:
        self._rec("delete", *a)

    def query(self, name: str) -> tuple[int, int]:
        return (4, 1234)


def _install(spec: InstallSpec, api: FakeApi, old: str | None = None) -> None:
    plan = windows.plan_install(spec, PY, lambda: api, old=old, record=(PureWindowsPath("C:/x.json"), spec.dumps()))
    for step in plan.steps:   # the record file is not written here: only the SCM calls run
        if hasattr(step, "fn"):
            step.fn()


def test_fresh_install_calls_in_order() -> None:
    api = FakeApi()
    _install(specs()["plain"], api)
    assert api.calls == [
        ("create", "web", "web", w.SERVICE_AUTO_START, rf"{PY} -m herder.platform.winhost web", [],
         r"NT SERVICE\web", None),
        ("config2", "web", w.SERVICE_CONFIG_DESCRIPTION, "web (installed by herder)"),
        ("config2", "web", w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, False),
        ("config2", "web", w.SERVICE_CONFIG_FAILURE_ACTIONS,
         {"ResetPeriod": 60, "RebootMsg": None, "Command": None,
          "Actions": [(w.SC_ACTION_RESTART, 100), (w.SC_ACTION_RESTART, 200), (w.SC_ACTION_RESTART, 400)]}),
        ("config2", "web", w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True),
        ("config2", "web", w.SERVICE_CONFIG_SERVICE_SID_INFO, w.SERVICE_SID_TYPE_UNRESTRICTED),
        ("config2", "web", w.SERVICE_CONFIG_PRESHUTDOWN_INFO, 15000),
        ("set_value", "web", "Parameters", "HerderManaged", "program"),
        ("start", "web"),
    ]


@pytest.mark.parametrize("start,code,delayed", [("auto", 2, False), ("delayed", 2, True), ("manual", 3, False),
                                                ("disabled", 4, False)])
def test_start_types(start: str, code: int, delayed: bool) -> None:
    api = FakeApi()
    _install(InstallSpec("s", specs()["plain"].service, start=start), api)
    assert api.calls[0][3] == code
    assert ("config2", "s", w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, delayed) in api.calls
    assert (("start", "s") in api.calls) == (start in ("auto", "delayed"))


@pytest.mark.parametrize("account,api_account,password,sid", [
    (None, r"NT SERVICE\s", None, True),
    ("LocalService", r"NT AUTHORITY\LocalService", None, False),
    ("NetworkService", r"NT AUTHORITY\NetworkService", None, False),
    ("LocalSystem", None, None, False),
    (r"CORP\svc-web", r"CORP\svc-web", "pw", False),
])
def test_accounts(account: str | None, api_account: str | None, password: str | None, sid: bool) -> None:
    api = FakeApi()
    _install(InstallSpec("s", specs()["plain"].service, account=account, password=password), api)
    assert api.calls[0][6:] == (api_account, password)
    assert any(c[2] == w.SERVICE_CONFIG_SERVICE_SID_INFO for c in api.calls if c[0] == "config2") == sid


def test_dependencies_failure_actions_and_preshutdown() -> None:
    svc = ServiceSpec(command=("app.exe",), depends_on={"db": "started", "Tcpip": "started"}, restart="never",
                      stop_timeout=30.0, backoff=Backoff(initial=2.0))
    api = FakeApi()
    _install(InstallSpec("s", svc), api)
    assert api.calls[0][5] == ["db", "Tcpip"]
    assert ("config2", "s", w.SERVICE_CONFIG_FAILURE_ACTIONS,
            {"ResetPeriod": 0, "RebootMsg": None, "Command": None, "Actions": []}) in api.calls
    assert ("config2", "s", w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, False) in api.calls
    assert ("config2", "s", w.SERVICE_CONFIG_PRESHUTDOWN_INFO, 35000) in api.calls


def test_update_in_place_changes_config_and_restarts() -> None:
    api = FakeApi()
    spec = specs()["plain"]
    _install(spec, api, old='{"old": true}\n')
    assert api.calls[0][0] == "change"
    assert api.calls[-2:] == [("stop", "web", 15.0), ("start", "web")]
    api2 = FakeApi()
    _install(spec, api2, old=spec.dumps())   # same settings: only make sure it runs
    assert api2.calls == [("start", "web")]


def test_herder_service_program_runs_directly() -> None:
    api = FakeApi()
    _install(InstallSpec("n", ServiceSpec(command=(r"C:\Py\python.exe", "app.py")), notify=True), api)
    assert api.calls[0][4] == r"C:\Py\python.exe app.py"


def test_uninstall_stops_then_deletes() -> None:
    api = FakeApi()
    plan = windows.plan_uninstall(specs()["plain"], lambda: api, PureWindowsPath(r"C:\ProgramData\x.json"))
    for step in plan.steps:
        if hasattr(step, "fn"):
            step.fn()
    assert api.calls == [("stop", "web", 15.0), ("delete", "web")]
    assert plan.dry_run().endswith('# run: sc stop web\n# run: sc delete web\n'
                                   '# run: del /f "C:\\ProgramData\\x.json"\n')


def test_a_failing_call_names_the_sc_equivalent() -> None:
    api = FakeApi(fail="create")
    plan = windows.plan_install(specs()["plain"], PY, lambda: api, old=None,
                                record=(PureWindowsPath("C:/nowhere/x.json"), "{}"))
    plan.steps = [s for s in plan.steps if hasattr(s, "fn")]
    with pytest.raises(InstallError, match=r"sc create web .*Access is denied"):
        execute(plan)
    assert len(api.calls) == 1   # stopped at the first failure


def test_name_taken_by_a_service_herder_did_not_create() -> None:
    api = FakeApi(existing={"Spooler": {}, "mine": {"HerderManaged": "program"}})
    host = Host("windows", local=True, win_api=lambda: api)  # type: ignore[arg-type,return-value]
    with pytest.raises(NameTaken, match="not created by herder"):
        check_not_taken(host, InstallSpec("Spooler", specs()["plain"].service), None)
    check_not_taken(host, InstallSpec("mine", specs()["plain"].service), None)
