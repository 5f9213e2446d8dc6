"""The operator's hour (issue 17): what an experienced operator hit first, each as a test
against real `herder up -d` supervisors and the real CLI (pipes and a real pty)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

from ctl_harness import HERDER, run

PY = sys.executable
CRASHER = (f'command = ["{PY}", "-c", "import sys; '
           'sys.stderr.write(\'Traceback: boom\\\\nValueError: bad value\\\\n\'); sys.exit(3)"]')
SLEEPER = 'command = ["sleep", "1000"]'


def run_tty(*args: str, cols: int = 100, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with a real terminal (pty) as stdin/stdout/stderr; all it printed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    e = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    e.update({"TERM": "xterm", **(env or {})})
    p = subprocess.Popen([HERDER, *args], stdin=slave, stdout=slave, stderr=slave, env=e, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return p.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def failed_herd(herd: Any) -> Any:
    h = herd(f"""
[services.db]
{SLEEPER}
[services.bad]
{CRASHER}
backoff = {{ initial = "10ms", max = "10ms" }}
start_limit = {{ burst = 1, interval = "60s" }}
""")
    assert h.up().returncode == 1
    return h


def test_status_aligned_full_reason_cpu_memory_and_last_stderr(herd: Any) -> None:
    h = failed_herd(herd)
    r = h.cli("status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "CPU", "MEM", "EXIT"]
    cols = [line.index(word) for line, word in ((lines[0], "CPU"), (lines[1], lines[1].split()[6]))]
    assert cols[0] == cols[1], "columns are aligned"
    db = next(x for x in lines if x.startswith("db "))
    assert re.search(r"\s\d+\.\d%\s+\d+(\.\d)?[KMG]\s", db), db   # CPU % and RSS of a running instance
    bad = next(x for x in lines if x.startswith("bad "))
    # in a pipe: one line per instance, the reason whole (it was cut at 80), then the last stderr line
    assert "Fix it, then `herder start bad`" in bad and bad.endswith("stderr: ValueError: bad value")
    assert "\x1b[" not in r.stdout, "no colour in a pipe"
    rows = {x["name"]: x for x in json.loads(h.cli("status", "--json").stdout)}
    assert rows["db"]["rss"] > 0 and rows["db"]["cpu"] is not None and rows["db"]["procs"] == 1
    assert rows["bad"]["cpu"] is None and rows["bad"]["last_stderr"] == "ValueError: bad value"
    # the same figures in /metrics
    from ctl_harness import request

    status, text = request(h.sock, "GET", "/metrics")
    assert status == 200
    assert re.search(r'herder_instance_memory_rss_bytes\{instance="db",service="db"\} [1-9]', text)
    assert 'herder_instance_cpu_seconds_total{instance="db",service="db"}' in text


def test_status_on_a_terminal_is_coloured_and_wrapped_unless_told_not_to(herd: Any) -> None:
    h = failed_herd(herd)
    code, out = run_tty("status", "-c", str(h.config), cols=90)
    assert code == 0 and "\x1b[32mrunning" in out and "\x1b[31mfailed" in out
    assert all(len(re.sub(r"\x1b\[[0-9;]*m", "", x)) <= 90 for x in out.splitlines()), out
    assert "`herder start bad`" in re.sub(r"\s+", " ", re.sub(r"\x1b\[[0-9;]*m", "", out))  # wrapped, not cut
    assert "\x1b[" not in run_tty("status", "-c", str(h.config), env={"NO_COLOR": "1"})[1]
    assert "\x1b[" not in run_tty("status", "--no-color", "-c", str(h.config))[1]
    wide = run_tty("status", "--wide", "--no-color", "-c", str(h.config), cols=60)[1]
    assert any("Fix it, then `herder start bad`" in x for x in wide.splitlines())


def test_text_events_carry_the_last_stderr_lines(herd: Any) -> None:
    h = failed_herd(herd)
    out = h.cli("events", "bad").stdout
    assert "exit 3" in out and "    stderr: Traceback: boom\n" in out and "    stderr: ValueError: bad value" in out


def test_start_reports_failures_on_the_way_and_exits_1(herd: Any) -> None:
    """The first run exits 2 before it is ready, the second gets ready: failed on the way,
    whatever the machine's load (readiness, not timing, says when a run counts)."""
    h = herd(f"[services.a]\n{SLEEPER}\n")
    count = h.dir / "n"
    prog = (f"import os,sys,time; p={str(count)!r}; n=int(open(p).read()) if os.path.exists(p) else 0; "
            "open(p,'w').write(str(n+1)); n < 1 and sys.exit(2); print('up', flush=True); time.sleep(1000)")
    h.write(f"""
[services.flaky]
command = [{json.dumps(PY)}, "-c", {json.dumps(prog)}]
autostart = false
ready = {{ log = "up" }}
min_uptime = "300ms"
backoff = {{ initial = "10ms", max = "10ms" }}
""")
    assert h.up().returncode == 0
    r = h.cli("start", "flaky")
    assert r.returncode == 1, (r.stdout, r.stderr)        # it runs now, but failed on the way
    assert "flaky: exit 2 after" in r.stdout
    assert re.search(r"flaky: ready in [\d.]+s \(pid \d+\)", r.stdout), r.stdout
    assert "1 failed on the way (flaky" in r.stderr
    assert h.status()["flaky"]["state"] == "running"


def test_start_of_a_failing_service_follows_it_until_it_failed_for_good(herd: Any) -> None:
    """The answer comes when the instance first runs; it then crashes, backs off, runs,
    crashes …: the command follows all of it on the event stream until the start limit
    parks it (not only until the first backoff)."""
    h = herd(f"[services.a]\n{SLEEPER}\n")
    late_crash = f'command = ["{PY}", "-c", "import sys, time; time.sleep(0.2); sys.exit(4)"]'
    h.write(f"""
[services.doomed]
{late_crash}
autostart = false
min_uptime = "60s"
backoff = {{ initial = "10ms", max = "10ms" }}
start_limit = {{ burst = 2, interval = "60s" }}
""")
    assert h.up().returncode == 0
    r = h.cli("start", "doomed")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.count("doomed: exit 4 after") == 3, r.stdout
    assert "doomed: failed: 3 failed starts within 60s" in r.stdout, r.stdout
    assert h.status()["doomed"]["state"] == "failed"     # it was followed to the end


def test_restart_all_signal_confirms_reload_says_applied(herd: Any) -> None:
    h = herd(f"""
[services.a]
{SLEEPER}
[services.b]
{SLEEPER}
""")
    assert h.up().returncode == 0
    before = h.status()
    r = h.cli("restart", "all")
    assert r.returncode == 0, r.stderr
    after = h.status()
    assert all(after[n]["pid"] != before[n]["pid"] for n in ("a", "b"))
    assert "restart: 2 instances (2 running)" in r.stderr
    r = h.cli("signal", "USR1", "a")
    assert r.returncode == 0 and r.stdout.strip() == f"a: sent SIGUSR1 to pid {after['a']['pid']}"
    r = h.cli("reload", "--dry-run")
    assert r.returncode == 0 and "dry run: nothing was changed" in r.stderr
    h.write(f"[services.a]\n{SLEEPER}\n[services.b]\ncommand = [\"sleep\", \"1001\"]\n")
    r = h.cli("reload")
    assert r.returncode == 0, r.stderr
    assert "~ restart  b" in r.stdout and "reload applied (1 change)" in r.stderr
    assert "b: started in" in r.stdout
    r = h.cli("restart", "aa")
    assert r.returncode == 2 and "did you mean aa → a?" in r.stderr


def test_live_progress_on_a_terminal_redraws_in_place(herd: Any) -> None:
    h = herd(f"[services.a]\n{SLEEPER}\n")
    assert h.up().returncode == 0
    code, out = run_tty("restart", "a", "-c", str(h.config))
    assert code == 0, out
    assert "\x1b[1F\x1b[2K" in out and "stopping…" in out and re.search(r"a  .*started in [\d.]+s", out)
    assert "restart: 1 instance (1 running)" in out


def test_up_d_names_what_it_left_stopped_and_the_leftovers_it_stopped(herd: Any) -> None:
    h = herd(f"[services.a]\n{SLEEPER}\n[services.b]\n{SLEEPER}\n")
    assert h.up().returncode == 0
    assert h.cli("stop", "b").returncode == 0
    leftover = h.status()["a"]["pid"]
    os.kill(h.holder() or 0, 9)
    r = h.up()
    assert r.returncode == 0, r.stderr
    assert "b: left stopped: it was stopped by hand" in r.stderr
    assert "left running by a previous herder" in r.stderr and ": a;" in r.stderr
    assert h.status()["a"]["pid"] != leftover
    # herder.log is one format: JSON lines
    for line in (h.state / "herder.log").read_text().splitlines():
        json.loads(line)


def test_logs_n_is_per_instance(herd: Any) -> None:
    h = herd(f"""
[services.w]
command = ["{PY}", "-c", "import time; [print(f'line {{i}}', flush=True) for i in range(5)]; time.sleep(1000)"]
replicas = 3
ready = {{ log = "line 4" }}
""")
    assert h.up().returncode == 0
    out = h.cli("logs", "-n", "2", "w").stdout.splitlines()
    assert len(out) == 6, out
    assert sorted(x.split(" | ")[0].strip() for x in out) == ["w.0", "w.0", "w.1", "w.1", "w.2", "w.2"]


def test_a_supervisor_with_herder_state_dir_is_found_and_advice_never_starts_a_second(herd: Any) -> None:
    h = herd(f"[services.a]\n{SLEEPER}\n")
    h.config.write_text(f"[services.a]\n{SLEEPER}\n")          # no state_dir in the file
    env = {**os.environ, "HERDER_STATE_DIR": str(h.state)}
    r = run("up", "-d", "-c", str(h.config), env=env)
    assert r.returncode == 0, r.stderr
    r = run("status", "-c", str(h.config))                       # a shell without HERDER_STATE_DIR
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("a "), r.stderr
    r = run("up", "-d", "-c", str(h.config), env=env)            # a second one is refused …
    assert r.returncode == 1 and "already running" in r.stderr
    r = run("status", "-c", str(h.config))                       # … and leaves the first one's note alone
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("a "), r.stderr
    assert run("down", "-c", str(h.config)).returncode == 0
    r = run("status", "-c", str(h.config))
    assert r.returncode == 3 and "herder up -d" in r.stderr
    # a herder that holds the state dir but does not answer is named, not doubled
    from herder.store.lock import acquire

    (h.dir / ".herder").mkdir(exist_ok=True)
    fd = acquire(h.dir / ".herder")
    try:
        r = run("status", "-c", str(h.config))
        assert r.returncode == 3 and "holds" in r.stderr and "herder up -d" not in r.stderr
    finally:
        os.close(fd)


def test_status_texts_are_live_only_never_in_the_journal_or_herder_log(herd: Any) -> None:
    """ctx.status() may be called many times a second: each text is streamed live and the
    last one is in `status`, but none becomes a journal event or a herder.log line."""
    from herder.control.client import Client

    h = herd(f"[services.a]\n{SLEEPER}\n")
    prog = h.dir / "chatty.py"
    prog.write_text("from herder.service import Service\n"
                    "svc = Service('chatty')\n"
                    "@svc.main\n"
                    "def main(ctx):\n"
                    "    for i in range(300):\n"
                    "        ctx.status(f'step {i}')\n"
                    "    ctx.ready()\n"
                    "    ctx.status('serving')\n"
                    "    ctx.stopping.wait()\n"
                    "svc.run()\n")
    h.write(f"[services.a]\n{SLEEPER}\n[services.chatty]\ncommand = [{json.dumps(PY)}, {json.dumps(str(prog))}]\n"
            "autostart = false\nready = { notify = true }\n")
    assert h.up().returncode == 0
    live = Client(h.sock, timeout=60).stream("events", query={"follow": True, "limit": 0}, timeout=60)
    assert h.cli("start", "chatty").returncode == 0
    texts = []
    for e in live:                      # the live stream has them (bounded by the stream's timeout)
        if e["kind"] == "status" and e["instance"] == "chatty":
            texts.append(e["status"])
            if e["status"] == "serving":
                break
    assert texts[0] == "step 0" and texts[-1] == "serving" and len(texts) > 100
    assert h.status()["chatty"]["status"] == "serving"
    journal = [json.loads(x) for x in h.cli("events", "--json", "-n", "100000").stdout.splitlines()]
    assert any(e["instance"] == "chatty" and e["kind"] == "spawn" for e in journal)
    assert not [e for e in journal if e["kind"] == "status"], "STATUS= texts reached the journal"
    own = [json.loads(x) for x in (h.state / "herder.log").read_text().splitlines()]
    assert any(e["instance"] == "chatty" for e in own)
    assert not [e for e in own if e["kind"] == "status"], "STATUS= texts reached herder.log"


def test_no_broken_pipe_traceback() -> None:
    r, w = os.pipe()
    os.close(r)       # the reader is gone before herder writes a byte
    p = subprocess.run([HERDER, "install", "--dry-run", "--manager", "systemd"], stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=60, cwd=Path(__file__).parents[2] / "examples/demo")
    os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipeError" not in p.stderr, p.stderr
    assert p.returncode == 141


def test_check_did_you_mean_in_file_order_with_a_line_for_every_error(tmp_path: Path) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text('[services.web]\ncomand = "x"\nrestart = "allways"\n[service.typo]\ncommand = "y"\n'
                   '[services.db]\ncommand = "z"\nstop_timout = "1s"\n')
    r = run("check", "-c", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.splitlines()[:-1]
    numbers = [int(x.split(":")[1]) for x in lines]
    assert numbers == sorted(numbers) and len(lines) == 5, lines
    assert f'{cfg}:2: services.web.comand: unknown key (did you mean "command"?)' in r.stderr
    assert f'{cfg}:4: service: unknown table (did you mean "services"?)' in r.stderr
    assert f'{cfg}:8: services.db.stop_timout: unknown key (did you mean "stop_timeout"?)' in r.stderr
    assert '"allways" (did you mean "always"?)' in r.stderr


def test_install_dry_run_shows_a_short_record_and_warns_about_temp_folders(tmp_path: Path) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text(f"[services.a]\n{SLEEPER}\n")
    r = run("install", "--dry-run", "--system", "--manager", "systemd", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("# run: systemctl enable --now herder.service\n")
    # every file whole (interface.md), the record too, but only what differs from the defaults:
    # it once was 130 lines of JSON that buried the unit
    unit, record = r.stdout.split("# file: /var/lib/herder/installed/herder.json\n")
    record = record.split("# run: ")[0]
    assert unit.startswith("# file: /etc/systemd/system/herder.service\n") and "ExecStart=" in unit
    assert json.loads(record)["service"]["command"][-1] == str(cfg.resolve())
    assert record.count("\n") < 40 and '"health"' not in record, record
    assert f"its config {cfg.resolve()} is under a temporary folder" in r.stderr and "PrivateTmp=yes" in r.stderr


def test_service_install_user_is_the_scope_account_is_the_account() -> None:
    r = run("service", "install", "web", "--user", "--dry-run", "--manager", "systemd", "--", "/bin/true")
    assert r.returncode == 0, r.stderr
    assert "/.config/systemd/user/web.service" in r.stdout and "User=" not in r.stdout
    r = run("service", "install", "--user", "web", "--dry-run", "--manager", "systemd", "--", "/bin/true")
    assert r.returncode == 0 and "/.config/systemd/user/web.service" in r.stdout
    r = run("service", "install", "web", "--system", "--account", "nobody", "--dry-run", "--manager", "systemd",
            "--", "/bin/true")
    assert r.returncode == 0 and "User=nobody" in r.stdout, r.stderr
    r = run("service", "install", "web", "--system", "--user", "nobody", "--dry-run", "--manager", "systemd",
            "--", "/bin/true")   # the old spelling: still the account, with a warning
    assert r.returncode == 0 and "User=nobody" in r.stdout and "is now `--account nobody`" in r.stderr


def test_bash_completion_lists_commands_flags_and_running_services(herd: Any) -> None:
    h = herd(f"[services.web]\n{SLEEPER}\n[services.worker]\n{SLEEPER}\nreplicas = 2\n")
    assert h.up().returncode == 0
    script = run("completion", "bash").stdout
    env = {**os.environ, "PATH": f"{Path(HERDER).parent}:{os.environ['PATH']}", "HERDER_SOCKET": h.sock}

    def complete(*words: str) -> list[str]:
        cmd = (f"source /dev/stdin; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
               f"COMP_CWORD={len(words) - 1}; _shtab_herder; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        out = subprocess.run(["bash", "-c", cmd], input=script, capture_output=True, text=True, env=env, timeout=60)
        return out.stdout.split()

    assert "restart" in complete("herder", "res")
    assert "--wide" in complete("herder", "status", "--w")
    assert complete("herder", "restart", "w") == ["web", "worker", "worker.0", "worker.1"]
    assert "all" in complete("herder", "stop", "")
    for shell in ("zsh", "fish"):
        assert "status --names" in run("completion", shell).stdout


def test_man_page_is_generated_from_the_parser() -> None:
    from herder.cli import _parser
    from herder.cli.completion import manpage

    page = Path(__file__).parents[2] / "docs" / "herder.1"
    assert page.read_text() == manpage(_parser()), "docs/herder.1 is stale: run `make man`"
    for command in ("status", "top", "completion", "restart", "install"):
        assert f"\\fBherder\\fR \\fI\\,{command}\\/\\fR" in page.read_text()
