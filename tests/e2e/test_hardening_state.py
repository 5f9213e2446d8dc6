"""Issue 13, state: a hostile neighbour's state_dir, forged and corrupt state files, an unusable
journal. Real `herder up -d` supervisors, real processes; the neighbour is the real `nobody`
account (setpriv), so these run as root and are skipped otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ctl_harness import HERDER, NO_MIN_UPTIME, Herd, run
from herdertest import ROOT, alive, wait_until

pytestmark = pytest.mark.skipif(not ROOT or not shutil.which("setpriv"), reason="needs root (and setpriv for nobody)")
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def as_nobody(*argv: str) -> None:
    subprocess.run([*NOBODY, *argv], check=True, capture_output=True, timeout=30)


def start_time(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rindex(b")") + 2:].split()[19])


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A root process that is not herder's: herder must never kill it."""
    p = subprocess.Popen(["sleep", "1000"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-writable sticky folder, like /tmp, of this test's own."""
    d = Path(tempfile.mkdtemp(prefix="herder-hard-"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def forged_run_json(pid: int, cgroup: str | None = None) -> str:
    return json.dumps({"supervisor_pid": 1, "instances": {"a": {
        "pid": pid, "start_time": start_time(pid), "cgroup": cgroup, "cookie": "forged"}}})


def test_a_state_dir_planted_by_another_user_is_refused(shared_tmp: Path, victim: subprocess.Popen[bytes]) -> None:
    """The audit's reproduction: nobody pre-creates state/ (0777) with a run.json naming a root
    process; root's `herder up -d` with that state_dir killed it and kept using the folder."""
    state = shared_tmp / "state"
    as_nobody("mkdir", "-m", "0777", str(state))
    as_nobody("sh", "-c", f"cat > {state}/run.json <<'EOF'\n{forged_run_json(victim.pid)}\nEOF")
    cfg = shared_tmp / "herder.toml"
    cfg.write_text(f'[herder]\nstate_dir = "{state}"\n[services.a]\ncommand = ["sleep", "1000"]\n')
    r = run("up", "-d", "-c", str(cfg), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"state_dir {state} belongs to nobody (uid 65534)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert alive(victim.pid)
    assert sorted(os.listdir(state)) == ["run.json"]          # herder wrote nothing there
    os.chown(state, 0, 0)                                     # root's now, but still 0777
    r = run("up", "-d", "-c", str(cfg), timeout=60)
    assert r.returncode == 2 and f"state_dir {state} is writable by its group and others (mode 0777)" in r.stderr
    assert f"chmod go-w {state}" in r.stderr
    assert alive(victim.pid)


def test_a_folder_above_state_dir_that_others_may_write_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)                                         # no sticky bit: nobody could swap state/
    cfg = tmp_path / "herder.toml"
    cfg.write_text(f'[herder]\nstate_dir = "{loose / "state"}"\n[services.a]\ncommand = ["sleep", "1000"]\n')
    r = run("up", "-d", "-c", str(cfg), timeout=60)
    assert r.returncode == 2 and f"{loose} (above state_dir) is writable by its group and others" in r.stderr
    assert not (loose / "state").exists()


def test_a_symlinked_entry_in_state_dir_is_refused(herd: Callable[..., Herd], tmp_path: Path) -> None:
    h = herd('[services.a]\ncommand = ["sleep", "1000"]\n')
    h.state.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    (h.state / "herder.log").symlink_to(target)
    r = h.up()
    assert r.returncode == 2 and f"{h.state / 'herder.log'} is a symlink" in r.stderr, r.stderr
    assert target.read_text() == "precious\n"


def test_a_forged_run_json_never_kills_a_process_that_is_not_herders(herd: Callable[..., Herd],
                                                                     victim: subprocess.Popen[bytes]) -> None:
    """A record with the victim's real pid and start time (readable by anyone), and a cgroup path
    aimed at the test's own cgroup: neither proves anything without herder's cookie/subtree."""
    own = Path("/proc/self/cgroup").read_text().strip().partition("::")[2]
    h = herd('[services.a]\ncommand = ["sleep", "1000"]\n')
    h.state.mkdir()
    (h.state / "run.json").write_text(forged_run_json(victim.pid, cgroup=f"/sys/fs/cgroup{own}"))
    (h.state / "run.json").chmod(0o600)
    r = h.up()
    assert r.returncode == 0, r.stderr
    assert alive(victim.pid)
    events = h.cli("events", "--json", "-n", "100").stdout
    assert "run.json names processes that are not herder's; left alone: a (pid" in events


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "directory"])
@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "cookies"])
def test_a_corrupt_run_json_is_moved_aside_and_leftovers_are_still_found(
        herd: Callable[..., Herd], damage: str, cgroups: bool) -> None:
    """The audit: a truncated/garbage/empty run.json → services duplicated, no message. Now the
    leftovers are found in herder's cgroups, or by their cookies when there are none, and
    adopted (issue 12)."""
    h = herd(NO_MIN_UPTIME + '[services.a]\ncommand = ["sleep", "1000"]\nreplicas = 2\n',
             "" if cgroups else "cgroups = false\n")
    assert h.up().returncode == 0
    old = {r["pid"] for r in h.status().values()}
    run_json = h.state / "run.json"

    def recorded() -> bool:   # run.json is written within milliseconds of the spawns
        with contextlib.suppress(OSError, ValueError):
            return len(json.loads(run_json.read_text() or "{}").get("instances", {})) == 2
        return False

    wait_until("both instances in run.json", recorded, timeout=30, interval=0.01)
    h.kill_herder()
    assert all(alive(p) for p in old)
    text = run_json.read_text()
    if damage == "directory":
        run_json.unlink()
        run_json.mkdir()
    else:
        run_json.write_text({"truncated": text[: len(text) // 2], "garbage": "\x00\xff{{{", "empty": ""}[damage])
    r = h.up()
    assert r.returncode == 0, r.stderr
    st = h.status()
    new = {x["pid"] for x in st.values()}
    assert new == old, "the leftovers were not adopted (same pids, no second copy)"
    aside = [p.name for p in h.state.iterdir() if p.name.startswith("run.json.corrupt-")]
    assert len(aside) == 1, sorted(os.listdir(h.state))
    r = h.cli("status")
    assert f"herder: warning: {run_json}" in r.stderr and f"moved aside to {aside[0]}" in r.stderr
    events = h.cli("events", "-n", "200").stdout
    assert "a killed herder left running" in events and f"moved aside to {aside[0]}" in events
    log = (h.state / "herder.log").read_text()
    assert f"moved aside to {aside[0]}" in log


@pytest.mark.parametrize("which", ["intent.json", "intent.prev.json"])
def test_stopped_by_hand_survives_a_corrupt_intent_file(herd: Callable[..., Herd], which: str) -> None:
    """The audit: a corrupt intent.json → a service stopped by hand came back."""
    h = herd(NO_MIN_UPTIME + '[services.a]\ncommand = ["sleep", "1000"]\n[services.b]\ncommand = ["sleep", "1000"]\n')
    assert h.up().returncode == 0
    assert h.cli("stop", "a").returncode == 0
    assert h.cli("down").returncode == 0
    (h.state / which).write_text('{"stopped": ["a"')         # truncated
    assert h.up().returncode == 0
    st = h.status()
    assert st["a"]["state"] == "stopped" and st["b"]["state"] == "running"
    r = h.cli("status")
    assert f"{h.state / which}: is not valid JSON" in r.stderr, r.stderr
    both = [json.loads((h.state / f).read_text())["stopped"] for f in ("intent.json", "intent.prev.json")]
    assert both == [["a"], ["a"]]                              # written twice again


def test_a_corrupt_journal_is_moved_aside_and_a_new_one_started(herd: Callable[..., Herd]) -> None:
    h = herd(NO_MIN_UPTIME + '[services.a]\ncommand = ["sleep", "1000"]\n')
    assert h.up().returncode == 0
    assert h.cli("down").returncode == 0
    db = h.state / "journal.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = os.urandom(3996)                         # the header and the first page
    db.write_bytes(bytes(data))
    assert h.up().returncode == 0
    events = h.cli("events", "-n", "50").stdout
    assert f"{db}: is " in events and "moved aside to journal.db.corrupt-" in events
    assert "herder: supervising 1 instance(s)" in events      # the new journal has the start-up
    assert h.status()["a"]["state"] == "running"


def test_a_journal_that_is_a_directory_does_not_stop_herder(herd: Callable[..., Herd]) -> None:
    """The audit: journal.db a directory → `herder up` and `herder events` crashed with tracebacks."""
    h = herd('[services.a]\ncommand = ["sleep", "1000"]\n')
    h.state.mkdir()
    (h.state / "journal.db").mkdir()
    r = h.up()
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert h.status()["a"]["state"] == "running"
    assert "moved aside to journal.db.corrupt-" in h.cli("events").stdout
    assert h.cli("down").returncode == 0
    (h.state / "journal.db").unlink()
    (h.state / "journal.db").mkdir()                           # again, with no supervisor running
    r = h.cli("events")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"the journal {h.state / 'journal.db'} is not a regular file" in r.stderr


def test_herder_runs_on_without_a_journal_it_cannot_write(herd: Callable[..., Herd]) -> None:
    """As nobody (root may write any file): a journal.db herder may not write (0400) is
    reported; supervision goes on, and `herder events` answers from memory."""
    h = herd('[services.a]\ncommand = ["sleep", "1000"]\n')
    shutil.chown(h.dir, "nobody")
    shutil.chown(h.config, "nobody")
    herder = [*NOBODY, str(Path(HERDER))]
    env = {**os.environ, "HOME": "/"}
    r = subprocess.run([*herder, "up", "-d", "-c", str(h.config)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*herder, "down", "-c", str(h.config)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    (h.state / "journal.db").chmod(0o400)
    r = subprocess.run([*herder, "up", "-d", "-c", str(h.config)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    st = subprocess.run([*herder, "status", "-c", str(h.config)], capture_output=True, text=True, timeout=60, env=env)
    assert "running" in st.stdout and "herder runs without a journal" in st.stderr, st.stdout + st.stderr
    ev = subprocess.run([*herder, "events", "-c", str(h.config)], capture_output=True, text=True, timeout=60, env=env)
    assert ev.returncode == 0 and "herder: supervising 1 instance(s)" in ev.stdout, ev.stdout + ev.stderr


def test_logs_are_private_by_default_and_their_modes_configurable(herd: Callable[..., Herd]) -> None:
    """The audit: herder.log (which carries services' stderr) and service logs were 0644 in 0755
    folders. Now 0640 in 0750, set by logs.file_mode and herder.log_dir_mode."""
    svc = '[services.a]\ncommand = ["sh", "-c", "echo secret; exec sleep 1000"]\n'
    h = herd(svc)
    h.state.mkdir()
    (h.state / "logs").mkdir(mode=0o755)
    (h.state / "logs" / "a.log").write_text("from an older herder\n")
    (h.state / "logs" / "a.log").chmod(0o644)
    assert h.up().returncode == 0
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(h.state / "logs" / "a.log") == 0o640 and mode(h.state / "herder.log") == 0o640
    h2 = herd(svc.replace('exec sleep 1000"]', 'exec sleep 1000"]\nlogs = { file_mode = "0600" }'),
              'log_dir_mode = "0700"\n')
    assert h2.up().returncode == 0
    assert mode(h2.state / "logs") == 0o700 and mode(h2.state / "logs" / "a.log") == 0o600
    assert mode(h2.state / "herder.log") == 0o640
