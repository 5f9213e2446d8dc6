"""Golden files for every manager, plus the checks each manager's format allows on Linux.

systemd: each golden unit passes `systemd-analyze verify` with EMPTY stderr (exit 0 is
not enough: soft errors such as unknown keys exit 0). launchd: plistlib round-trip and
key/type checks (nothing on Linux validates launchd semantics). Windows: the sc.exe
lines. Regenerate with HERDER_UPDATE_GOLDEN=1 after a deliberate change, and review the diff.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from install_specs import specs

from herder.config.model import ServiceSpec
from herder.platform import launchd, systemd, windows
from herder.platform.spec import InstallSpec

GOLDEN = Path(__file__).parent / "golden"
V252, V254 = systemd.Features(252), systemd.Features(254)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("HERDER_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file (HERDER_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("key", sorted(specs()))
def test_systemd_golden(key: str) -> None:
    _golden(f"{key}.service", systemd.render_unit(specs()[key], V252))


def test_systemd_v254_adds_restart_steps() -> None:
    text = systemd.render_unit(specs()["full"], V254)
    assert "RestartSec=500ms\nRestartSteps=5\nRestartMaxDelaySec=60s\n" in text
    assert "RestartSteps" not in systemd.render_unit(specs()["full"], V252)
    _golden("full-v254.service", text)


def _verify(tmp_path: Path, units: dict[str, str], user: bool = False) -> subprocess.CompletedProcess[str]:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    env = dict(os.environ)
    cmd = ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in units)]
    if user:
        rt = tmp_path / "xdg"
        rt.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(rt)
        cmd.insert(1, "--user")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("key", sorted(specs()))
def test_systemd_units_verify_with_empty_stderr(tmp_path: Path, key: str) -> None:
    """Rendered for the host's own systemd version (252 here: no RestartSteps)."""
    spec = specs()[key]
    units = {f"{spec.name}.service": systemd.render_unit(spec, systemd.detect_features())}
    res = _verify(tmp_path, units, user=spec.scope == "user")
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_systemd_quoting_keeps_arguments_literal() -> None:
    assert systemd.quote_arg("plain-arg_1.txt") == "plain-arg_1.txt"
    assert systemd.quote_arg("two words") == '"two words"'
    assert systemd.quote_arg("50%") == '"50%%"'
    assert systemd.quote_arg("$HOME") == '"$$HOME"'
    assert systemd.quote_arg('a"b\\c') == '"a\\"b\\\\c"'
    assert systemd.quote_env("K", 'v "x" 1%') == '"K=v \\"x\\" 1%%"'


def test_restart_steps_from_backoff() -> None:
    assert systemd.restart_steps(0.1, 2.0, 30.0) == 9      # 0.1 · 2^9 = 51.2 ≥ 30
    assert systemd.restart_steps(1.0, 1.0, 30.0) == 0      # no growth: no steps
    assert systemd.restart_steps(5.0, 2.0, 1.0) == 0


# ---- launchd -------------------------------------------------------------------------

_TYPES = {"Label": str, "ProgramArguments": list, "EnvironmentVariables": dict, "RunAtLoad": bool,
          "ThrottleInterval": int, "ExitTimeOut": int, "KeepAlive": (bool, dict), "Disabled": bool,
          "WorkingDirectory": str, "UserName": str, "GroupName": str, "StandardOutPath": str,
          "StandardErrorPath": str, "ProcessType": str}


@pytest.mark.parametrize("key", sorted(specs()))
def test_launchd_golden_round_trip_and_types(key: str) -> None:
    spec = specs()[key]
    text = launchd.render_plist(spec, home=Path("/Users/ann"))
    _golden(f"{key}.plist", text)
    data = plistlib.loads(text.encode())
    assert plistlib.loads(plistlib.dumps(data)) == data
    assert data["Label"] == spec.name and data["ProgramArguments"] == list(spec.service.command)
    for k, v in data.items():
        assert k in _TYPES, f"unexpected key {k}"
        assert isinstance(v, _TYPES[k]) and not (isinstance(v, bool) and _TYPES[k] is int), (k, v)
    for k in ("StandardOutPath", "StandardErrorPath", "WorkingDirectory"):
        if k in data:
            assert data[k].startswith("/"), (k, data[k])
    assert all(isinstance(v, str) for v in data["EnvironmentVariables"].values())


def test_launchd_keepalive_per_restart_policy() -> None:
    s = specs()
    assert launchd.job(s["plain"])["KeepAlive"] == {"SuccessfulExit": False}   # on-failure
    assert launchd.job(s["full"])["KeepAlive"] is True                        # always
    assert launchd.job(s["notify-manual"])["KeepAlive"] is False               # never
    assert launchd.job(s["notify-manual"])["RunAtLoad"] is False               # manual
    assert launchd.job(s["disabled-user"])["Disabled"] is True
    assert "UserName" not in launchd.job(s["disabled-user"])                  # agents run as the user


# ---- Windows (sc.exe lines) -------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(k for k, v in specs().items() if v.scope == "system"
                                       and v.kind == "program"))
def test_windows_sc_golden(key: str) -> None:
    spec = specs()[key]
    lines = [subprocess.list2cmdline(list(argv)) for argv in windows.render_sc(spec, r"C:\Python311\python.exe")]
    update = [subprocess.list2cmdline(list(a))
              for a in windows.render_sc(spec, r"C:\Python311\python.exe", update=True)]
    _golden(f"{key}.sc.txt", "\n".join(lines) + "\n# update in place:\n" + "\n".join(update) + "\n")


def test_windows_bin_path_hosts_or_runs_directly() -> None:
    s = specs()
    assert windows.bin_path(s["plain"], r"C:\Py\python.exe") == r"C:\Py\python.exe -m herder.platform.winhost web"
    # a herder.service Python program: the host, with the program's own interpreter, runs it in-process
    assert windows.bin_path(s["notify-manual"], "python.exe") == "/usr/bin/python3 -m herder.platform.winhost napp"
    exe = InstallSpec("svc", ServiceSpec(command=(r"C:\svc\agent.exe", "--service")), notify=True)
    assert windows.bin_path(exe, "python.exe") == r"C:\svc\agent.exe --service"   # a real service exe: as is


def test_record_round_trip() -> None:
    for spec in specs().values():
        back = InstallSpec.from_record(spec.to_record())
        assert back == spec
        # the file holds only what differs from the defaults (a dry run shows it whole: issue 17)
        text = spec.dumps()
        assert InstallSpec.from_record(json.loads(text)) == spec
        assert text.count("\n") < json.dumps(spec.to_record(), indent=2).count("\n"), text
    assert specs()["plain"].dumps().count("\n") < 25
    with_password = InstallSpec("x", specs()["plain"].service, password="s3cret")
    assert "s3cret" not in with_password.dumps()


def test_service_install_carries_hooks_security_and_exit_codes(tmp_path: Path) -> None:
    """`herder service install` renders [hooks], [security] and the exit-code policies as the
    systemd directives of the same meaning (docs/hooks.md), once each next to the hardening."""
    from herder.config.lifecycle import Hook, Hooks, Security

    py = shutil.which("python3") or "/usr/bin/python3"
    spec = ServiceSpec(command=(py, "-m", "http.server", "80"), user="www-data",
                       restart_prevent_exit_codes=(78, "SIGABRT"), restart_force_exit_codes=(0,),
                       hooks=Hooks(pre_start=Hook((py, "-c", "print('migrate')")), pre_stop=Hook(("/bin/true",)),
                                   post_stop=Hook(("/bin/rm", "-f", "/run/web.sock"), privileged=True)),
                       security=Security(no_new_privileges=True, capabilities=("NET_BIND_SERVICE",), umask=0o27,
                                         private_tmp=True, read_only_paths=("/etc",)))
    text = systemd.render_unit(InstallSpec("web", spec), systemd.detect_features())
    for line in ("ExecStartPre=", "ExecStop=/bin/true", "ExecStopPost=+/bin/rm -f /run/web.sock",
                 "RestartPreventExitStatus=78 SIGABRT", "RestartForceExitStatus=0", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "UMask=0027", "PrivateTmp=yes", "ReadOnlyPaths=/etc"):
        assert line in text, line
    assert text.count("NoNewPrivileges=yes") == 1 and text.count("PrivateTmp=yes") == 1   # not again by hardening
    res = _verify(tmp_path, {"web.service": text})
    assert res.returncode == 0 and res.stderr == "", res.stderr
