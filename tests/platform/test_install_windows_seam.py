"""The pywin32 calls a Windows install makes, against a FAKE at the seam (herder.platform._win32).

The fake is kept for what Wine's SCM cannot show: the exact calls and arguments per
option (Wine accepts failure actions but keeps none, and answers the delayed-start,
failure-flag and SID levels with error 124), every error path of the rollback (Wine
cannot be made to fail a chosen step), and the order of steps. The same install runs
for real through pywin32 against Wine's SCM in tests/platform/test_windows_install.py.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath
from typing import Any

import pytest
from install_specs import specs

from herder.config.model import Backoff, ServiceSpec
from herder.platform import _win32 as w
from herder.platform import windows
from herder.platform.installer import Host, NameTaken, check_not_taken
from herder.platform.plan import Call, Commit, InstallError, WriteFile, execute
from herder.platform.spec import InstallSpec

PY = r"C:\Py\python.exe"


class FakeWinError(Exception):
    """Shaped like pywintypes.error: (winerror, funcname, strerror)."""

    def __init__(self, winerror: int, funcname: str, strerror: str) -> None:
        super().__init__(winerror, funcname, strerror)
        self.winerror, self.funcname, self.strerror = winerror, funcname, strerror


DENIED = FakeWinError(5, "ChangeServiceConfig2", "Access is denied.")


class FakeApi:
    """Records every call; `fail` maps (call name, occurrence) → the error it raises."""

    def __init__(self, existing: dict[str, dict[str, Any]] | None = None,
                 fail: dict[tuple[str, int], Exception] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.services = existing or {}
        self.fail = fail or {}

    def _rec(self, *call: Any) -> None:
        self.calls.append(call)
        n = sum(1 for c in self.calls if c[0] == call[0])
        error = self.fail.get((call[0], n)) or self.fail.get((call[0], 0))
        if error is not None:
            raise error

    def exists(self, name: str) -> bool:
        return name in self.services

    def create(self, *a: Any) -> None:
        self._rec("create", *a)

    def change(self, *a: Any) -> None:
        self._rec("change", *a)

    def config2(self, *a: Any) -> None:
        self._rec("config2", *a)
        if a[1] in self.fail.get(("level", 0), ()):   # type: ignore[operator]
            raise FakeWinError(w.ERROR_INVALID_LEVEL, "ChangeServiceConfig2", "Invalid level.")

    def set_value(self, *a: Any) -> None:
        self._rec("set_value", *a)

    def get_value(self, name: str, subkey: str, value_name: str) -> Any:
        return self.services.get(name, {}).get(value_name)

    def start(self, *a: Any) -> None:
        self._rec("start", *a)

    def stop(self, *a: Any, missing_ok: bool = False) -> None:
        self._rec("stop", *a)

    def delete(self, *a: Any, missing_ok: bool = False) -> None:
        self._rec("delete", *a)

    def query(self, name: str) -> w.ServiceStatus:
        return w.ServiceStatus(w.SERVICE_RUNNING, 1234)


def _plan(spec: InstallSpec, api: FakeApi, record: Path, old: str | None = None) -> Any:
    return windows.plan_install(spec, PY, lambda: api, old=old, record=(record, spec.dumps()))


def _install(spec: InstallSpec, api: FakeApi, old: str | None = None, record: Path | None = None) -> list[str]:
    """Run every step (the record goes to `record`, a real file); returns the notes printed."""
    said: list[str] = []
    execute(_plan(spec, api, record or Path("/nonexistent/never-written.json"), old) if record else
            _calls_only(_plan(spec, api, Path("/x.json"), old)), say=said.append)
    return said


def _calls_only(plan: Any) -> Any:
    plan.steps = [s for s in plan.steps if not isinstance(s, WriteFile)]
    return plan


def test_fresh_install_calls_in_order() -> None:
    api = FakeApi()
    _install(specs()["plain"], api)
    assert api.calls == [
        ("create", "web", "web", w.SERVICE_AUTO_START, rf"{PY} -m herder.platform.winhost web", [],
         r"NT SERVICE\web", None),
        ("config2", "web", w.SERVICE_CONFIG_DESCRIPTION, "web (installed by herder)"),
        ("config2", "web", w.SERVICE_CONFIG_FAILURE_ACTIONS,
         {"ResetPeriod": 60, "RebootMsg": None, "Command": None,
          "Actions": [(w.SC_ACTION_RESTART, 100), (w.SC_ACTION_RESTART, 200), (w.SC_ACTION_RESTART, 400)]}),
        ("config2", "web", w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True),
        ("config2", "web", w.SERVICE_CONFIG_SERVICE_SID_INFO, w.SERVICE_SID_TYPE_UNRESTRICTED),
        ("config2", "web", w.SERVICE_CONFIG_PRESHUTDOWN_INFO, 15000),
        ("set_value", "web", "Parameters", "HerderManaged", "program"),
        ("start", "web"),
    ]


def test_the_record_is_written_after_the_scm_accepted_everything_and_before_the_start(tmp_path: Path) -> None:
    plan = _plan(specs()["plain"], FakeApi(), tmp_path / "web.json")
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["Call"] * 7 + ["WriteFile", "Commit", "Call"]
    assert isinstance(plan.steps[-1], Call) and plan.steps[-1].shown == "sc start web"
    assert isinstance(plan.steps[-2], Commit)


@pytest.mark.parametrize("start,code,delayed", [("auto", 2, None), ("delayed", 2, True), ("manual", 3, None),
                                                ("disabled", 4, None)])
def test_start_types(start: str, code: int, delayed: bool | None) -> None:
    api = FakeApi()
    _install(InstallSpec("s", specs()["plain"].service, start=start), api)
    assert api.calls[0][3] == code
    flags = [c[3] for c in api.calls if c[0] == "config2" and c[2] == w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO]
    assert flags == ([] if delayed is None else [delayed])   # only asked for when it is wanted
    assert (("start", "s") in api.calls) == (start in ("auto", "delayed"))


def test_an_update_sets_the_delayed_flag_either_way() -> None:
    api = FakeApi()
    _install(InstallSpec("s", specs()["plain"].service, start="auto"), api, old='{"old": true}\n')
    assert ("config2", "s", w.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, False) in api.calls


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


def test_a_password_is_never_printed() -> None:
    spec = InstallSpec("s", specs()["plain"].service, account=r"CORP\svc", password="s3cret")
    shown = " ".join(" ".join(a) for a in windows.render_sc(spec))
    assert "password= ***" in shown and "s3cret" not in shown
    assert "s3cret" not in spec.dumps()


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


def test_herder_service_program_runs_in_the_host_with_its_own_python() -> None:
    api = FakeApi()
    _install(InstallSpec("n", ServiceSpec(command=(r"C:\App\python.exe", "app.py")), notify=True), api)
    assert api.calls[0][4] == r"C:\App\python.exe -m herder.platform.winhost n"


def test_uninstall_stops_then_deletes() -> None:
    api = FakeApi()
    plan = windows.plan_uninstall(specs()["plain"], lambda: api, PureWindowsPath(r"C:\ProgramData\x.json"))
    for step in plan.steps:
        if isinstance(step, Call):
            step.fn()
    assert api.calls == [("stop", "web", 15.0), ("delete", "web")]
    assert plan.dry_run().endswith(
        '# run: sc stop web\n# run: sc delete web\n# run: del /f "C:\\ProgramData\\x.json"\n')


def test_a_failing_call_names_the_sc_equivalent() -> None:
    api = FakeApi(fail={("create", 1): FakeWinError(5, "CreateService", "Access is denied.")})
    with pytest.raises(InstallError, match=r"`sc create web .*` failed: CreateService: Access is denied \(error 5\); "
                                           r"run it from an elevated prompt \(as Administrator\)"):
        _install(specs()["plain"], api)
    assert len(api.calls) == 1   # stopped at the first failure, nothing to undo


def test_a_failing_call_without_an_sc_form_is_named_too() -> None:
    """The delayed auto-start flag has no sc line of its own; its failure once printed as ``herder: `` failed``."""
    api = FakeApi(fail={("config2", 2): DENIED})
    spec = InstallSpec("s", specs()["plain"].service, start="delayed")
    with pytest.raises(InstallError, match=r"`ChangeServiceConfig2\(s, delayed auto-start True\)` failed: "
                                           r"ChangeServiceConfig2: Access is denied \(error 5\)"):
        _install(spec, api)


def test_a_setting_the_scm_does_not_implement_is_noted_and_skipped() -> None:
    """Wine answers levels 3, 4 and 5 with ERROR_INVALID_LEVEL; older Windows would too."""
    api = FakeApi(fail={("level", 0): (w.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, w.SERVICE_CONFIG_SERVICE_SID_INFO)})  # type: ignore[dict-item]
    said = _install(specs()["plain"], api)
    assert said == [
        "note: this service manager does not implement failure actions on non-crash exits (ChangeServiceConfig2: "
        "error 124, as under Wine); installed without it",
        "note: this service manager does not implement the service SID type (ChangeServiceConfig2: error 124, "
        "as under Wine); installed without it"]
    assert api.calls[-1] == ("start", "web")   # and the install went on


def test_a_fresh_install_failing_half_way_is_rolled_back(tmp_path: Path) -> None:
    api = FakeApi(fail={("config2", 3): DENIED})   # the failure-actions flag
    record = tmp_path / "installed" / "web.json"
    with pytest.raises(InstallError, match=r"`sc failureflag web 1` failed: .*; rolled back: nothing was changed"):
        _install(specs()["plain"], api, record=record)
    assert api.calls[-1] == ("delete", "web")     # the service it created is gone again
    assert not record.exists()                    # and no record was written
    assert ("start", "web") not in api.calls


def test_a_record_that_cannot_be_written_rolls_the_scm_back(tmp_path: Path) -> None:
    api = FakeApi()
    (tmp_path / "installed").write_text("a file where the directory should be")
    with pytest.raises(InstallError, match=r"cannot write .*web.json.*; rolled back: nothing was changed"):
        _install(specs()["plain"], api, record=tmp_path / "installed" / "web.json")
    assert api.calls[-1] == ("delete", "web") and ("start", "web") not in api.calls


def test_an_update_failing_half_way_puts_the_old_settings_back(tmp_path: Path) -> None:
    old_spec = InstallSpec("web", specs()["plain"].service, description="first", start="manual")
    new_spec = InstallSpec("web", specs()["plain"].service, description="second", start="auto")
    record = tmp_path / "web.json"
    record.write_text(old_spec.dumps())
    api = FakeApi(fail={("config2", 2): DENIED}, existing={"web": {"HerderManaged": "program"}})
    with pytest.raises(InstallError, match="rolled back: nothing was changed"):
        _install(new_spec, api, old=old_spec.dumps(), record=record)
    changes = [c for c in api.calls if c[0] == "change"]
    assert changes[0][3] == w.SERVICE_AUTO_START and changes[-1][3] == w.SERVICE_DEMAND_START   # back to manual
    descriptions = [c[3] for c in api.calls if c[0] == "config2" and c[2] == w.SERVICE_CONFIG_DESCRIPTION]
    assert descriptions == ["second", "first"]
    assert record.read_text() == old_spec.dumps()
    assert not any(c[0] in ("start", "stop") for c in api.calls)


def test_a_rollback_that_fails_says_what_is_left(tmp_path: Path) -> None:
    api = FakeApi(fail={("config2", 1): DENIED, ("delete", 1): FakeWinError(1072, "DeleteService",
                                                                           "The specified service has been marked "
                                                                           "for deletion.")})
    with pytest.raises(InstallError, match=r"the rollback was incomplete \(`sc create web .*`: DeleteService: "
                                           r"The specified service has been marked for deletion \(error 1072\)\): "
                                           r"fix that by hand"):
        _install(specs()["plain"], api, record=tmp_path / "web.json")


def test_a_start_that_fails_leaves_it_installed(tmp_path: Path) -> None:
    api = FakeApi(fail={("start", 1): w.ServiceTimeout("web stopped while starting: it exited with code 3")})
    record = tmp_path / "web.json"
    with pytest.raises(InstallError, match=r"`sc start web` failed: web stopped while starting: it exited with "
                                           r"code 3$"):
        _install(specs()["plain"], api, record=record)
    assert record.exists() and ("delete", "web") not in api.calls


def test_status_lines() -> None:
    spec = specs()["plain"]
    running = windows.describe(spec, w.ServiceStatus(w.SERVICE_RUNNING, 42))
    assert running[0] == "web: RUNNING (pid 42)" and running[-1] == r"  log: C:\ProgramData\herder\logs\web.log"
    failed = windows.describe(spec, w.ServiceStatus(w.SERVICE_STOPPED, 0, 1066, 3))
    assert failed[:2] == ["web: STOPPED", "  last exit: code 3 (service-specific error 1066)"]
    assert windows.describe(spec, w.ServiceStatus(w.SERVICE_STOPPED, 0, 1053))[1] == "  last exit: Win32 error 1053"


def test_name_taken_by_a_service_herder_did_not_create() -> None:
    api = FakeApi(existing={"Spooler": {}, "mine": {"HerderManaged": "program"}})
    host = Host("windows", local=True, win_api=lambda: api)  # type: ignore[arg-type,return-value]
    with pytest.raises(NameTaken, match="not created by herder"):
        check_not_taken(host, InstallSpec("Spooler", specs()["plain"].service), None)
    check_not_taken(host, InstallSpec("mine", specs()["plain"].service), None)


def test_the_supervisor_is_refused_on_windows() -> None:
    from herder.errors import UsageError
    from herder.platform.installer import plan_install

    host = Host("windows", local=False)
    with pytest.raises(UsageError, match="runs on Linux today"):
        plan_install(host, specs()["supervisor"])
