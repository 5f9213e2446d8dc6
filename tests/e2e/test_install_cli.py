"""`herder install` / `herder service …` on this machine: dry runs and refusals (nothing is changed).

Real installs are exercised in tests/platform/test_install_nspawn.py (a booted systemd).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def herder(*args: str, env: dict[str, str] | None = None, user: int | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    return subprocess.run([*prefix, sys.executable, "-m", "herder", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


def test_service_install_dry_run_prints_files_and_commands() -> None:
    res = herder("service", "install", "web", "--dry-run", "--restart", "always", "--env", "A=1 2",
                 "--", "python3", "-m", "http.server", "8000")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("# file: /etc/systemd/system/web.service\n# Written by herder")
    assert "\nExecStart=/" in out and "python3 -m http.server 8000\n" in out   # resolved to an absolute path
    assert '\nEnvironment="A=1 2"\n' in out and "\nRestart=always\n" in out
    assert f"\nWorkingDirectory={ROOT}\n" in out
    assert "# file: /var/lib/herder/installed/web.json\n" in out
    assert out.endswith("# run: systemctl daemon-reload\n# run: systemctl enable --now web.service\n")
    assert not Path("/etc/systemd/system/web.service").exists()


def test_herder_install_dry_run(tmp_path: Path) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text('[services.a]\ncommand = ["/bin/sleep", "1000"]\n')
    res = herder("install", "--system", "-c", str(cfg), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"ExecStart={sys.executable} -m herder up -c {cfg}\n" in res.stdout
    assert 'Environment="HERDER_STATE_DIR=/var/lib/herder"' in res.stdout
    assert "Type=notify\n" in res.stdout and "KillMode=mixed\n" in res.stdout


def test_herder_install_with_a_bad_config_changes_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text('[services.a]\ncommand = ["/bin/sleep"]\nrestart = "allways"\n')
    res = herder("install", "-c", str(cfg), "--dry-run")
    assert res.returncode == 2
    assert "herder.toml:3: services.a.restart: unknown value \"allways\"" in res.stderr


def test_user_scope_paths(tmp_path: Path) -> None:
    res = herder("service", "install", "mine", "--scope", "user", "--dry-run", "--", "/bin/sleep", "100",
                 env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""})
    assert res.returncode == 0, res.stderr
    assert f"# file: {tmp_path}/.config/systemd/user/mine.service\n" in res.stdout
    assert "# run: systemctl --user enable --now mine.service\n" in res.stdout
    assert "WantedBy=default.target" in res.stdout and "PrivateTmp" not in res.stdout


def test_other_managers_render_on_dry_run_only() -> None:
    res = herder("service", "install", "web", "--manager", "windows", "--dry-run", "--start", "delayed", "--",
                 "app.exe")
    assert res.returncode == 0, res.stderr
    assert "# run: sc create web binPath= " in res.stdout and "start= delayed-auto" in res.stdout
    assert "# run: sc failure web reset= 60 actions= restart/100/restart/200/restart/400\n" in res.stdout
    res = herder("service", "install", "web", "--manager", "launchd", "--dry-run", "--", "/bin/sleep", "1")
    assert "<key>KeepAlive</key>" in res.stdout and "# run: launchctl bootstrap system " in res.stdout
    res = herder("service", "install", "web", "--manager", "windows", "--", "app.exe")
    assert res.returncode == 2 and "only --dry-run" in res.stderr


@pytest.mark.parametrize("args,code,message", [
    (["service", "install", "x", "--dry-run", "--", "no-such-command-xyz"], 2,
     "command not found: no-such-command-xyz"),
    (["service", "install", "x", "--dry-run", "--", "./nope.sh"], 2, "command not found: ./nope.sh"),
    (["service", "install", "x", "--dry-run", "--env", "NOEQUALS", "--", "/bin/true"], 2, "expected K=V"),
    (["service", "install", "x", "--dry-run", "--stop-timeout", "10", "--", "/bin/true"], 2,
     "--stop-timeout: expected a duration"),
    (["service", "install", "bad/name", "--dry-run", "--", "/bin/true"], 2, "invalid service name"),
    (["service", "install", "x", "--dry-run"], 2, "give the program after `--`"),
    (["service", "install", "x", "--dry-run", "--user", "no-such-user-xyz", "--", "/bin/true"], 2, "no account"),
    (["service", "uninstall", "no-such-service-xyz"], 1, "not installed by herder"),
    (["service", "stop", "no-such-service-xyz"], 1, "not installed by herder"),
])
def test_errors_are_clear(args: list[str], code: int, message: str) -> None:
    res = herder(*args)
    assert res.returncode == code, (res.stdout, res.stderr)
    assert message in res.stderr
    assert res.stdout == ""


def test_a_name_taken_by_another_package_is_refused() -> None:
    vendor = next((p for p in ("/lib/systemd/system/dbus.service", "/lib/systemd/system/systemd-journald.service")
                   if Path(p).exists()), None)
    if vendor is None:
        pytest.skip("no vendor unit on this machine to collide with")
    name = Path(vendor).stem
    res = herder("service", "install", name, "--dry-run", "--", "/bin/true")
    assert res.returncode == 1 and f"taken by {vendor}" in res.stderr and res.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_not_root_is_refused_for_a_system_service() -> None:
    res = herder("service", "install", "x", "--scope", "system", "--dry-run", "--", "/bin/true", user=65534)
    if "Permission denied" in res.stderr or "No module named" in res.stderr:
        pytest.skip("the checkout is not readable by uid 65534")
    assert res.returncode == 1 and "needs root" in res.stderr, res.stderr


def test_a_reinstall_starts_from_the_record(tmp_path: Path) -> None:
    """Re-running `herder service install NAME` once a record exists (issue 14: it failed on every
    platform with `--user: expected a string; got None`); with no command it re-renders from the record."""
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""}
    first = herder("service", "install", "again", "--scope", "user", "--dry-run", "--env", "A=1", "--",
                   "/bin/sleep", "100", env=env)
    assert first.returncode == 0, first.stderr
    record = tmp_path / ".local/state/herder/installed/again.json"
    text = first.stdout.split(f"# file: {record}\n", 1)[1].split("# run:", 1)[0].split("# file:", 1)[0]
    record.parent.mkdir(parents=True)
    record.write_text(text)
    for extra in ([], ["--restart", "always"], ["--", "/bin/sleep", "200"]):
        res = herder("service", "install", "again", "--dry-run", *extra, env=env)
        assert res.returncode == 0, (extra, res.stderr)
        unit = res.stdout.split(".service\n", 1)[1]
        assert "Environment=\"A=1\"" in unit   # kept from the record
        assert ("Restart=always" if extra[:1] == ["--restart"] else "Restart=on-failure") in unit
        assert ("/bin/sleep 200" if extra[:1] == ["--"] else "/bin/sleep 100") in unit


def test_herder_install_is_refused_for_windows(tmp_path: Path) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text('[services.a]\ncommand = ["/bin/sleep", "1000"]\n')
    res = herder("install", "-c", str(cfg), "--manager", "windows", "--dry-run")
    assert res.returncode == 2 and res.stdout == ""
    assert "the supervisor (`herder up`) runs on Linux today" in res.stderr
