"""herder install / herder service install against a real systemd (systemd-nspawn).

The tests share one container and run in order: install herder → kill it → reboot →
install two programs (one plain, one herder.service with Type=notify) → uninstall
everything and check nothing is left. Needs root; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nspawn_harness import Container, rootfs, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = """\
[services.tick]
command = ["/usr/bin/python3", "-c",
           "import os, time; open('/run/tick.pid', 'w').write(str(os.getpid())); time.sleep(100000)"]
restart = "always"

[services.front]
command = ["/usr/bin/python3", "-c",
           "import os, time; open('/run/front.pid', 'w').write(str(os.getpid())); time.sleep(100000)"]
depends_on = ["tick"]
"""

NOTIFY_APP = """\
import os
from herder.service import Service

svc = Service("napp")


@svc.main
def main(ctx):
    # Not ready until the test says so: proves systemd waits for READY=1.
    while not os.path.exists("/run/napp-go") and not ctx.stopping.wait(0.05):
        pass
    ctx.status("serving")
    ctx.ready()
    ctx.stopping.wait()


if __name__ == "__main__":
    svc.run()
"""


@pytest.fixture(scope="module")
def ct() -> Iterator[Container]:
    root, why = rootfs()
    if root is None:
        pytest.skip(why)
    # Not pytest's tmp_path: the overlay's upper dir is root-owned and large; it goes at the end.
    work = Path(tempfile.mkdtemp(prefix="herder-it-", dir="/var/tmp"))
    c = Container(root, work, f"hit{uuid.uuid4().hex[:8]}")
    try:
        c.boot()
        yield c
    finally:
        c.poweroff()
        shutil.rmtree(work, ignore_errors=True)


def _alive(ct: Container, pid: str) -> bool:
    return pid not in ("", "0") and ct.sh(f"kill -0 {pid}", check=False).returncode == 0


def test_herder_install_is_active_and_supervises(ct: Container) -> None:
    ct.write("/etc/herder/herder.toml", CONFIG)
    res = ct.run(["herder", "install", "--system", "-c", "/etc/herder/herder.toml"])
    assert "herder: installing (systemd, system)" in res.stdout
    # Type=notify: enable --now returned, so herder has sent READY=1 (tick is running)
    assert ct.show("herder.service", "ActiveState") == "active"
    assert ct.show("herder.service", "Type") == "notify"
    assert "2/2 running" in ct.show("herder.service", "StatusText")
    # running is herder's word for "started and not failed"; the program writes its pid file
    # a moment later (a cold python3 in a fresh overlay, under load: up to seconds)
    tick = wait_until("tick's pid file", lambda: ct.sh("cat /run/tick.pid", check=False).stdout.strip() or None)
    assert _alive(ct, tick)
    assert ct.exists("/var/lib/herder/herder.pid")   # state_dir under /var/lib/herder
    assert ct.exists("/etc/systemd/system/multi-user.target.wants/herder.service")


def test_install_twice_updates_in_place(ct: Container) -> None:
    res = ct.run(["herder", "install", "--system", "-c", "/etc/herder/herder.toml"])
    assert "nothing changed" in res.stdout
    res = ct.run(["herder", "install", "--system", "-c", "/etc/herder/herder.toml", "--watchdog", "40s"])
    assert "updating in place" in res.stdout and "+ WatchdogSec=40s" in res.stdout
    assert ct.show("herder.service", "ActiveState") == "active"


def main_pid(ct: Container, unit: str) -> str:
    pid = ct.show(unit, "MainPID")
    assert pid.isdigit() and int(pid) > 1, f"{unit} has no main process (MainPID={pid!r})"
    return pid


def _pids(ct: Container) -> dict[str, str]:
    return {n: ct.sh(f"cat /run/{n}.pid").stdout.strip() for n in ("tick", "front")}


def _listed(ct: Container) -> dict[str, str] | None:
    """What herder's status lists (name → pid), or None while it does not answer."""
    r = ct.run(["herder", "status", "--json", "-c", "/etc/herder/herder.toml"], check=False)
    return {x["name"]: str(x["pid"]) for x in json.loads(r.stdout)} if r.returncode == 0 and r.stdout else None


def _settled(ct: Container) -> dict[str, str] | None:
    pids = _pids(ct)
    return pids if _listed(ct) == pids and all(_alive(ct, x) for x in pids.values()) else None


def test_systemctl_kill_of_herders_main_process_leaves_every_service_running(ct: Container) -> None:
    """Issue 12, point 5: `systemctl kill --kill-who=main -s KILL herder` kills herder's keeper
    (the unit's main process). ExitType=cgroup keeps the unit while its services run; the
    decision process becomes the keeper and names itself with MAINPID=; herder supervises
    again with every service on its original pid, and systemd restarted nothing."""
    # The update in place before this restarted the unit: each service writes its pid file
    # shortly after it starts, so wait until the files name what herder lists, all alive.
    before = wait_until("the services' pid files to name what herder lists", lambda: _settled(ct))
    old = main_pid(ct, "herder.service")
    ct.run(["systemctl", "kill", "--kill-who=main", "-s", "KILL", "herder.service"])
    new = wait_until("herder's new main process", lambda: (p := ct.show("herder.service", "MainPID")) not in ("0", old)
                     and ct.show("herder.service", "ActiveState") == "active" and p)
    assert ct.show("herder.service", "NRestarts") == "0", "systemd restarted herder"
    listed = wait_until("herder answering again", lambda: _listed(ct))
    assert listed == before, "a service was restarted or lost"
    assert _pids(ct) == before and all(_alive(ct, p) for p in before.values())
    assert "herder.keeper" in ct.sh(f"cat /proc/{new}/cmdline").stdout      # the keeper it became


def test_systemctl_stop_stops_every_service_in_order_and_leaves_nothing(ct: Container) -> None:
    """After the keeper's kill, `systemctl stop herder` still reaches herder (its new main
    process): every service stopped in reverse dependency order, nothing left in the unit."""
    pids = _pids(ct)
    ct.run(["systemctl", "stop", "herder.service"], timeout=120)
    # systemd keeps the first result of a run: the old main process was killed by a signal, so the
    # unit ends "failed" (Result=signal) though herder stopped everything and exited 0 (documented)
    state, result = ct.show("herder.service", "ActiveState"), ct.show("herder.service", "Result")
    assert (state, result) in (("inactive", "success"), ("failed", "signal")), (
        ct.sh("journalctl -u herder.service --no-pager -n 40", check=False).stdout)
    assert "every service stopped; exit code 0" in ct.sh("journalctl -u herder.service --no-pager -n 40").stdout
    ct.run(["systemctl", "reset-failed", "herder.service"], check=False)
    assert not any(_alive(ct, p) for p in pids.values())
    cg = ct.show("herder.service", "ControlGroup")
    assert not cg or ct.sh(f"cat /sys/fs/cgroup{cg}/cgroup.procs 2>/dev/null", check=False).stdout.strip() == ""
    events = ct.run(["herder", "events", "-n", "200", "-c", "/etc/herder/herder.toml"], check=False).stdout
    lines = events.splitlines()
    last = {n: max((i for i, x in enumerate(lines) if re.search(rf" {n}: \w+ -> stopped\b", x)), default=-1)
            for n in ("front", "tick")}
    assert 0 <= last["front"] < last["tick"], f"front (which depends on tick) must stop first:\n{events}"
    ct.run(["systemctl", "start", "herder.service"])       # the tests after this one expect it running
    wait_until("tick running again", lambda: ct.exists("/run/tick.pid") and _alive(ct, _pids(ct)["tick"]))


def test_reboot_brings_herder_back(ct: Container) -> None:
    ct.reboot()
    assert ct.show("herder.service", "ActiveState") == "active"
    wait_until("tick running after the reboot",
               lambda: ct.exists("/run/tick.pid") and _alive(ct, ct.sh("cat /run/tick.pid").stdout.strip()))


def test_service_install_plain_command(ct: Container) -> None:
    res = ct.run(["herder", "service", "install", "sleeper", "--restart", "always", "--env", "GREETING=hi there",
                  "--", "python3", "-c", "import time; time.sleep(100000)"])
    assert "sleeper: installing" in res.stdout
    assert ct.show("sleeper.service", "ActiveState") == "active"
    assert "GREETING=hi there" in ct.show("sleeper.service", "Environment")
    old = main_pid(ct, "sleeper.service")
    ct.sh(f"kill -9 {old}")
    wait_until("sleeper restarted by systemd",
               lambda: ct.show("sleeper.service", "MainPID") not in ("0", old)
               and ct.show("sleeper.service", "ActiveState") == "active")


def test_service_install_refuses_a_name_herder_did_not_create(ct: Container) -> None:
    res = ct.run(["herder", "service", "install", "dbus", "--", "/bin/true"], check=False)
    assert res.returncode == 1
    assert "taken by /lib/systemd/system/dbus.service" in res.stderr
    assert not ct.exists("/etc/systemd/system/dbus.service")


def test_service_install_notify_program_is_not_active_before_ready(ct: Container) -> None:
    ct.write("/opt/napp/app.py", NOTIFY_APP)
    proc = ct.popen(["herder", "service", "install", "napp", "--cwd", "/opt/napp", "--", "python3", "app.py"])
    try:
        wait_until("napp activating", lambda: ct.show("napp.service", "ActiveState") == "activating")
        assert ct.show("napp.service", "Type") == "notify"
        assert proc.poll() is None, "install returned before READY=1"
        ct.sh("touch /run/napp-go")
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert ct.show("napp.service", "ActiveState") == "active"
    assert ct.show("napp.service", "StatusText") == "serving"


def test_uninstall_leaves_nothing(ct: Container) -> None:
    tick = ct.sh("cat /run/tick.pid").stdout.strip()
    for argv in (["herder", "service", "uninstall", "sleeper"], ["herder", "service", "uninstall", "napp"],
                 ["herder", "uninstall"]):
        ct.run(argv)
    for unit in ("herder", "sleeper", "napp"):
        assert not ct.exists(f"/etc/systemd/system/{unit}.service")
        assert not ct.exists(f"/var/lib/herder/installed/{unit}.json")
        assert ct.show(f"{unit}.service", "LoadState") == "not-found"
    links = ct.sh("find /etc/systemd -name 'herder.service' -o -name 'sleeper.service' -o -name 'napp.service'")
    assert links.stdout.strip() == ""
    listed = ct.run(["systemctl", "list-units", "--all", "--no-legend", "herder.service", "sleeper.service",
                     "napp.service"]).stdout
    assert listed.strip() == ""
    assert not _alive(ct, tick)
    assert not ct.exists("/var/lib/herder/installed")
    res = ct.run(["herder", "uninstall"], check=False)
    assert res.returncode == 1 and "not installed" in res.stderr


def test_not_root_is_refused_and_changes_nothing(ct: Container) -> None:
    res = ct.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "herder", "service", "install",
                  "--scope", "system", "x", "--", "/bin/true"], check=False)
    assert res.returncode == 1 and "needs root" in res.stderr, res.stderr
    assert not ct.exists("/etc/systemd/system/x.service")

