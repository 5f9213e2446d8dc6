"""`herder upgrade` (issue 12, point 3) where it can go wrong, with real processes.

What a user of systemd's daemon-reexec expects, tried here: an upgrade to a broken or
incompatible install is refused and changes nothing; a keeper that cannot start after its
exec still holds every service (no SIGPIPE, output still logged, SIGTERM still stops them);
services that exit during the swap have their statuses recorded; one still waiting on
ready.log is not restarted (nor after a kill -9 of the keeper); SIGTERM during the swap
stops everything in dependency order; repeated upgrades under log load keep every line once
(HERDER_SURVIVE_UPGRADES=N for more; HERDER_SURVIVE_REPORT=FILE appends the swap times).

The broken installs are real: a virtualenv of its own (no pip) whose site-packages puts a
copy of the herder package first and this venv's site-packages (the dependencies) after
it, so herder runs from the copy, which the test then breaks on disk as a half-finished
`pip install -U` would.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from ctl_harness import HERDER, Herd, request
from herdertest import alive, wait_until
from test_survive import PRINTER, _try, keeper_and_dp, marked, numbers, report, services

ROOT = Path(__file__).resolve().parents[2]
UPGRADES = int(os.environ.get("HERDER_SURVIVE_UPGRADES", "3"))    # more for a long run (figures)


def install(h: Herd) -> Path:
    """A venv running herder from a copy of this tree's package (returns its python)."""
    venv = h.dir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    shutil.copytree(ROOT / "herder", h.dir / "pkg" / "herder", ignore=shutil.ignore_patterns("__pycache__"))
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    # path entries only: this venv's .pth files (the editable install's finder) are not run
    Path(site, "herder-copy.pth").write_text(f"{h.dir / 'pkg'}\n{sysconfig.get_paths()['purelib']}\n")
    os.chmod(h.dir, 0o755)
    return py


def up_with(py: Path, h: Herd) -> None:
    # from the herd's dir: `-m` puts the working directory first on sys.path (not this tree)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}     # nothing ahead of the copy
    r = subprocess.run([str(py), "-m", "herder", "up", "-d", "-c", str(h.config)], capture_output=True, text=True,
                       timeout=300, cwd=h.dir, env=env)
    assert r.returncode == 0, r.stderr
    keeper, _ = keeper_and_dp(h)
    where = subprocess.run([str(py), "-c", "import herder; print(herder.__file__)"], capture_output=True, text=True,
                           cwd=f"/proc/{keeper}/cwd", timeout=60, env=env).stdout
    assert where.startswith(str(h.dir / "pkg")), where


def break_file(h: Herd, rel: str, old: str, new: str) -> None:
    path = h.dir / "pkg" / "herder" / rel
    text = path.read_text()
    assert old in text, f"{rel}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def pids(h: Herd) -> dict[str, int]:
    return {n: x["pid"] for n, x in services(h).items()}


def grows(h: Herd, name: str, tag: str) -> None:
    """The service's log gains lines (it is alive and its output is read)."""
    log = h.state / "logs" / f"{name}.log"
    n = len(numbers(log, tag)) if log.exists() else 0
    wait_until(f"{name}'s log to grow", lambda: len(numbers(log, tag)) > n + 5 or None, timeout=60, interval=0.02)


def talk_and_quiet(tag: str) -> str:
    return (f"[services.talk]\ncommand = {json.dumps(PRINTER.format(tag=tag))}\n"
            f'[services.quiet]\ncommand = ["sleep", "{70000 + random.randrange(20000)}"]\n')


def signal_and_wait(pid: int, sig: int, timeout: float) -> None:
    """Send sig, return once the process is gone (its pidfd is readable)."""
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, sig)
        assert select.select([fd], [], [], timeout)[0], f"pid {pid} still runs {timeout}s after {sig}"
    finally:
        os.close(fd)


def installed(herd: Callable[..., Herd], tag: str) -> tuple[Herd, dict[str, int], int, int]:
    """`talk` and `quiet` under a herder running from a copy of the package (install)."""
    h = herd(talk_and_quiet(tag))
    up_with(install(h), h)
    return h, pids(h), *keeper_and_dp(h)


def test_upgrade_to_a_broken_install_is_refused_and_changes_nothing(herd: Callable[..., Herd]) -> None:
    tag = f"broken{os.getpid()}x{random.randrange(10 ** 6)}"
    h, before, keeper, dp = installed(herd, tag)
    # the install on disk is now a half-written new version: the upgrade path does not even import
    break_file(h, "keeper/upgrade.py", '"""`herder upgrade`', 'def broken(:\n"""`herder upgrade`')
    t0 = time.monotonic()
    r = h.cli("upgrade")
    assert r.returncode == 1, r.stderr
    assert "upgrade refused" in r.stderr and "cannot take over" in r.stderr and "SyntaxError" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 60
    assert keeper_and_dp(h) == (keeper, dp)             # nothing was replaced
    now = services(h)
    assert {n: x["pid"] for n, x in now.items()} == before
    assert all(x["state"] == "running" and x["restarts"] == 0 for x in now.values())
    grows(h, "talk", tag)
    events = h.cli("events", "-n", "50").stdout
    assert "upgrade refused" in events and "nothing was changed" in events
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    got = numbers(h.state / "logs" / "talk.log", tag)
    assert got == list(range(1, len(got) + 1))


def test_a_keeper_that_cannot_start_after_its_exec_holds_every_service(herd: Callable[..., Herd]) -> None:
    """The installed keeper passes the check but fails once exec'd (a record it cannot read,
    a file changed in between): the trampoline holds the services, says so, and stops them
    on SIGTERM."""
    tag = f"hold{os.getpid()}x{random.randrange(10 ** 6)}"
    h, before, keeper, _ = installed(herd, tag)
    break_file(h, "keeper/__main__.py", "    opts = Options()\n",
               '    opts = Options()\n    if "--resume" in argv:\n        raise ImportError("half-installed")\n')
    r = h.cli("upgrade")
    assert r.returncode == 1, r.stderr
    assert "upgrade failed" in r.stderr and "holding the services" in r.stderr, r.stderr
    assert h.holder() == keeper and psutil.Process(keeper).is_running()
    assert all(alive(p) for p in before.values())        # `talk` got no SIGPIPE
    grows(h, "talk", tag)                                 # and its output is still logged
    out = (h.state / "herder.out").read_text()
    assert "ImportError: half-installed" in out and "Holding 2 service(s)" in out
    signal_and_wait(keeper, signal.SIGTERM, 60)       # the holding keeper stops every service
    assert not any(alive(p) for p in before.values())
    got = numbers(h.state / "logs" / "talk.log", tag)
    assert len(got) > 10 and got == list(range(1, len(got) + 1)), "a gap or a repeat in the held log"


def test_services_that_exit_during_an_upgrade_have_their_status_recorded(herd: Callable[..., Herd]) -> None:
    """Each service exits 3 the moment the old decision process is gone: the keeper reaps
    them in the same batch as that process, right before its exec."""
    flag = f"/tmp/survive-upgrade-exit-{os.getpid()}-{random.randrange(10 ** 6)}"
    script = (f"while [ ! -s {flag} ]; do sleep 0.01; done; p=$(cat {flag}); "
              "while kill -0 $p 2>/dev/null; do sleep 0.002; done; exit 3")
    conf = "".join(f'[services.e{i}]\ncommand = ["sh", "-c", {json.dumps(script)}]\nrestart = "never"\n'
                   for i in range(6))
    h = herd(conf)
    try:
        assert h.up().returncode == 0
        _, dp = keeper_and_dp(h)
        Path(flag).write_text(str(dp))
        r = h.cli("upgrade")
        assert r.returncode == 0, r.stderr

        def settled() -> dict[str, dict[str, object]] | None:
            now = services(h)
            return now if all(x["state"] in ("stopped", "failed", "exited") for x in now.values()) else None
        now = wait_until("every service's exit", settled, timeout=60, interval=0.05)
        assert {n: x["exit"] for n, x in now.items()} == {f"e{i}": 3 for i in range(6)}, now
        events = h.cli("events", "-n", "200").stdout
        assert "status unknown" not in events, events
    finally:
        Path(flag).unlink(missing_ok=True)


def _ready_log_config(go: Path) -> str:
    script = (f"echo booting; while [ ! -e {go} ]; do sleep 0.02; done; echo Application startup complete; "
              "exec sleep 100000")
    return (f'[services.app]\ncommand = ["sh", "-c", {json.dumps(script)}]\n'
            'ready = { log = "startup complete", timeout = "60s" }\n')


def _start_waiting(h: Herd) -> tuple[subprocess.Popen[bytes], int]:
    """`up -d` (it returns once app is ready: run in the background), app still starting."""
    up = subprocess.Popen([HERDER, "up", "-d", "-c", str(h.config)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)

    def starting() -> int | None:
        if not Path(h.sock).exists():
            return None
        code, body = request(h.sock, "GET", "/v1/services")
        x = body[0] if code == 200 and body else None
        return int(x["pid"]) if x is not None and x["state"] == "starting" and x["pid"] else None
    pid = wait_until("app to be starting", starting, timeout=60, interval=0.02)
    return up, pid


def _becomes_ready(h: Herd, go: Path, up: subprocess.Popen[bytes], pid: int) -> None:
    go.write_text("1")
    up.wait(timeout=120)     # (`up -d` follows the first decision process only: its code is not judged)

    def running() -> dict[str, object] | None:
        x = services(h)["app"]
        return x if x["state"] == "running" else None
    x = wait_until("app to be ready", running, timeout=60, interval=0.02)
    assert x["pid"] == pid and x["restarts"] == 0, x


def test_an_instance_waiting_on_ready_log_is_not_restarted_by_an_upgrade(herd: Callable[..., Herd]) -> None:
    h = herd("")
    go = h.dir / "go"
    h.write(_ready_log_config(go))
    up, pid = _start_waiting(h)
    r = h.cli("upgrade")
    assert r.returncode == 0, r.stderr
    _becomes_ready(h, go, up, pid)
    assert "not ready within" not in h.cli("events", "-n", "100").stdout


def test_an_instance_waiting_on_ready_log_is_not_restarted_when_the_keeper_dies(herd: Callable[..., Herd]) -> None:
    h = herd("")
    go = h.dir / "go"
    h.write(_ready_log_config(go))
    up, pid = _start_waiting(h)
    keeper, dp = keeper_and_dp(h)
    signal_and_wait(keeper, signal.SIGKILL, 30)
    wait_until("a new decision process", lambda: _try(lambda: keeper_and_dp(h)[1] != dp and h.holder() == dp),
               timeout=60, interval=0.02)
    _becomes_ready(h, go, up, pid)


def test_sigterm_during_an_upgrade_stops_everything_in_order(herd: Callable[..., Herd]) -> None:
    """SIGTERM to the keeper the moment the old decision process is gone (the exec is under
    way, signals blocked): the new keeper gets it and stops `b` before `a` (b needs a)."""
    order = Path(f"/tmp/survive-upgrade-order-{os.getpid()}-{random.randrange(10 ** 6)}")
    tag = f"term{os.getpid()}x{random.randrange(10 ** 6)}"

    def svc(name: str) -> str:
        return json.dumps(f"trap 'echo {name} >> {order}; exit 0' TERM; while :; do sleep 0.05; done; : {tag}")
    h = herd(f"[services.a]\ncommand = [\"sh\", \"-c\", {svc('a')}]\n"
             f"[services.b]\ncommand = [\"sh\", \"-c\", {svc('b')}]\ndepends_on = [\"a\"]\n")
    try:
        assert h.up().returncode == 0
        keeper, dp = keeper_and_dp(h)
        kfd, dfd = os.pidfd_open(keeper), os.pidfd_open(dp)
        try:
            code, body = request(h.sock, "POST", "/v1/upgrade")
            assert code == 200, body
            assert select.select([dfd], [], [], 60)[0], "the old decision process did not leave"
            os.kill(keeper, signal.SIGTERM)
            assert select.select([kfd], [], [], 120)[0], "herder did not stop"
        finally:
            os.close(kfd)
            os.close(dfd)
        wait_until("every service to stop", lambda: not marked(tag) or None, timeout=30, interval=0.02)
        assert order.read_text().split() == ["b", "a"]
    finally:
        order.unlink(missing_ok=True)


def _blocked(pid: int) -> int:
    """The signal mask of a process's main thread (/proc/PID/status SigBlk)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk for pid {pid}")


def test_repeated_upgrades_under_log_load_keep_every_line_once(herd: Callable[..., Herd]) -> None:
    tag = f"upg3x{os.getpid()}x{random.randrange(10 ** 6)}"
    conf = "".join(f"[services.p{i}]\ncommand = {json.dumps(PRINTER.format(tag=f'{tag}.{i}'))}\n" for i in range(10))
    h = herd(conf + f'[services.again]\ncommand = ["sleep", "{70000 + random.randrange(20000)}"]\n')
    assert h.up().returncode == 0
    before = pids(h)
    keeper, _ = keeper_and_dp(h)
    took = []
    for _ in range(UPGRADES):
        t0 = time.monotonic()
        r = h.cli("upgrade")
        took.append(time.monotonic() - t0)
        assert r.returncode == 0, r.stderr
        health = request(h.sock, "GET", "/v1/health")[1]
        assert health["started_by"] == "upgrade", health
    report("herder upgrade, 10 services printing every 20 ms (command's wall time)", took)
    now = services(h)
    assert {n: x["pid"] for n, x in now.items()} == before
    assert all(x["restarts"] == 0 and x["state"] == "running" for x in now.values())
    assert keeper_and_dp(h)[0] == keeper
    assert _blocked(keeper) == 0, "the keeper kept signals blocked after its exec"
    blobs = [os.readlink(f"/proc/{keeper}/fd/{n}") for n in os.listdir(f"/proc/{keeper}/fd")]
    assert not [b for b in blobs if b.startswith("/memfd:herder ")], "a resume record or trampoline fd leaked"
    r = h.cli("restart", "again")
    assert r.returncode == 0, r.stderr
    assert _blocked(services(h)["again"]["pid"]) == 0, "a service started after an upgrade has signals blocked"
    r = h.cli("down")
    assert r.returncode == 0, r.stderr
    for i in range(10):
        got = numbers(h.state / "logs" / f"p{i}.log", f"{tag}.{i}")
        assert len(got) > 10 and got == list(range(1, len(got) + 1)), f"p{i}: a gap or a repeat"


def test_a_log_writer_stuck_on_its_disk_calls_the_upgrade_off(herd: Callable[..., Herd]) -> None:
    """`talk` logs to a FIFO nobody reads yet (a disk that hangs): opening it blocks the writer
    thread, never the keeper's loop (the spawn is answered, `up -d` returns). An upgrade then
    cannot drain the writer: it is called off after the drain timeout (exit 1, the running
    version carries on) instead of exec'ing with unwritten bytes; once the 'disk' answers,
    every line arrives once."""
    tag = f"stuck{os.getpid()}x{random.randrange(10 ** 6)}"
    h = herd("")
    fifo = h.dir / "talk.fifo"
    os.mkfifo(fifo)
    h.write(f"[services.talk]\ncommand = {json.dumps(PRINTER.format(tag=tag))}\nlogs.stdout = \"{fifo}\"\n"
            f'[services.quiet]\ncommand = ["sleep", "{70000 + random.randrange(20000)}"]\n')
    assert h.up().returncode == 0
    before = pids(h)
    keeper, _ = keeper_and_dp(h)
    r = h.cli("upgrade")
    assert r.returncode == 1, r.stderr
    assert "upgrade failed" in r.stderr and "upgrade_failed" in r.stderr, r.stderr
    assert request(h.sock, "GET", "/v1/health")[1]["started_by"] == "upgrade_failed"
    assert keeper_and_dp(h)[0] == keeper
    assert "--resume" not in psutil.Process(keeper).cmdline()      # it never exec'd
    now = services(h)
    assert {n: x["pid"] for n, x in now.items()} == before
    assert all(x["restarts"] == 0 for x in now.values())
    events = h.cli("events", "-n", "100").stdout
    assert "did not write what it had read" in events, events
    got: list[int] = []
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)     # the disk answers: the writer's open returns
    try:
        buf = b""
        deadline = time.monotonic() + 60
        while len(got) < 100 and time.monotonic() < deadline:
            select.select([fd], [], [], 1)
            try:
                buf += os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            *lines, buf = buf.split(b"\n")
            got += [int(x.split()[-1]) for x in lines if x.split()[-2:-1] == [tag.encode()]]
        assert len(got) >= 100 and got == list(range(1, len(got) + 1)), got[:20]
    finally:
        r = h.cli("down")
        os.close(fd)
    assert r.returncode == 0, r.stderr
