"""Pure pieces: mode detection, durations, sd_notify addresses, the public surface."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from svc_harness import ROOT

from herder.service._modes import Detected, Mode, detect
from herder.service._notify import Notifier
from herder.units import seconds


def _detect(env: dict[str, str], platform: str = "linux", ppid: int = 100, scm: bool = False) -> Detected:
    return detect(env, platform=platform, pid=42, ppid=ppid, scm_child=scm)


@pytest.mark.parametrize(
    ("env", "platform", "ppid", "scm", "mode"),
    [
        ({}, "linux", 100, False, Mode.CONSOLE),
        ({"NOTIFY_SOCKET": "/run/n"}, "linux", 1, False, Mode.SYSTEMD),
        ({"INVOCATION_ID": "abc"}, "linux", 1, False, Mode.SYSTEMD),
        ({"NOTIFY_SOCKET": "/x", "HERDER_INSTANCE": "web.0"}, "linux", 9, False, Mode.HERDER),
        ({"XPC_SERVICE_NAME": "com.example.job"}, "darwin", 1, False, Mode.LAUNCHD),
        ({"XPC_SERVICE_NAME": "0"}, "darwin", 1, False, Mode.CONSOLE),
        ({"XPC_SERVICE_NAME": "com.example.job"}, "darwin", 77, False, Mode.CONSOLE),
        ({}, "win32", 5, True, Mode.WINDOWS_SCM),
        ({}, "win32", 5, False, Mode.CONSOLE),
    ],
)
def test_mode_detection(env: dict[str, str], platform: str, ppid: int, scm: bool, mode: Mode) -> None:
    assert _detect(env, platform, ppid, scm).mode is mode


def test_herder_mode_carries_the_same_settings_as_systemd() -> None:
    env = {
        "NOTIFY_SOCKET": "@herder/web",
        "HERDER_INSTANCE": "web.0",
        "HERDER_SERVICE": "web",
        "HERDER_STOP_TIMEOUT_USEC": "7500000",
        "WATCHDOG_USEC": "2000000",
        "WATCHDOG_PID": "42",
    }
    got = _detect(env)
    assert got == Detected(Mode.HERDER, "@herder/web", 2.0, 7.5, "web.0")


def test_systemd_stop_timeout_defaults_to_systemds_default_unless_told() -> None:
    assert _detect({"NOTIFY_SOCKET": "/n"}).stop_timeout == 90.0
    assert _detect({"NOTIFY_SOCKET": "/n", "HERDER_STOP_TIMEOUT_USEC": "3000000"}).stop_timeout == 3.0
    assert _detect({}).stop_timeout is None


def test_watchdog_for_another_pid_is_not_ours() -> None:
    assert _detect({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "7"}).watchdog_interval is None
    assert _detect({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "1000000"}).watchdog_interval == 1.0
    assert _detect({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "junk"}).watchdog_interval is None


@pytest.mark.parametrize(
    ("text", "value"), [("250ms", 0.25), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), (3, 3.0), ("1.5s", 1.5)]
)
def test_durations(text: str | int, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("bad", ["5", "five s", "-1s", -1, True])
def test_bad_durations_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError):
        seconds(bad)  # type: ignore[arg-type]


def test_sd_notify_to_a_path_and_to_an_abstract_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    abstract = f"herder-test-{id(path)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as by_path, socket.socket(
        socket.AF_UNIX, socket.SOCK_DGRAM
    ) as by_name:
        by_path.bind(str(path))
        by_name.bind("\0" + abstract)
        for address, sock in ((str(path), by_path), ("@" + abstract, by_name)):
            notifier = Notifier(address)
            assert notifier.send("READY=1")
            assert sock.recv(100) == b"READY=1"
            notifier.close()


def test_sd_notify_to_a_missing_socket_is_logged_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody"))
    assert not notifier.send("READY=1")
    assert not notifier.send("STATUS=x")
    notifier.close()
    assert len([r for r in caplog.records if "cannot notify" in r.message]) == 1


def test_public_surface_and_light_import() -> None:
    import herder.service

    assert sorted(herder.service.__all__) == [
        "AlreadyRunning", "Context", "Mode", "Service", "ServiceError", "Stopping",
    ]
    probe = (
        "import sys, herder.service; "
        "heavy = [m for m in ('daemon', 'win32service', 'servicemanager', 'psutil') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
