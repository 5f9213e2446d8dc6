"""One adapter per supervisor: how to configure, launch, ask for status and stop it.

Each adapter writes its tool's native config for the same list of services, with every
restart delay the tool lets us remove removed (`settings` records them for the report),
then launches the tool the way its users do. `Session` owns one launched tool: it knows
the tool's own processes (for CPU and RSS) and always cleans up by pid, even on failure.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from procs import Tracker, alive, stamps, tree, wait_until

HERE = Path(__file__).resolve().parent
BUILD = HERE / ".build"
VENV_BIN = BUILD / "venv" / "bin"
PM2_BIN = BUILD / "npm" / "node_modules" / ".bin" / "pm2"
CHILD_NAMES = ("stamp", "flood", "sh", "sleep", "orphans.sh")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for every tool: bytecode on (users have .pyc), PATH with the venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Svc:
    """A service as the benchmark means it: name, argv, and optionally its stdout file."""

    name: str
    argv: tuple[str, ...]
    log: Path | None = None


def stamp_services(n: int, out: Path, stubborn: bool = False) -> list[Svc]:
    """n services running bench/stamp.c, which appends its pid and start time to `out`."""
    argv = (str(BUILD / "stamp"), str(out), "stubborn") if stubborn else (str(BUILD / "stamp"), str(out))
    return [Svc(f"s{i}", argv) for i in range(n)]


@dataclass
class Session:
    """One launched tool with its services; `close` stops it and kills leftovers by pid."""

    tool: Tool
    workdir: Path
    services: list[Svc]
    launcher: subprocess.Popen[bytes]
    tracker: Tracker
    stamp_files: list[Path] = field(default_factory=list)
    stopper: subprocess.Popen[bytes] | None = None
    exiting: bool = False

    def roots(self) -> list[int]:
        return self.tool.roots(self)

    def own_processes(self) -> list[psutil.Process]:
        """The supervisor's own processes: its roots and their descendants minus services."""
        services = {pid for f in self.stamp_files for pid, _ in stamps(f)}
        own = []
        for p in tree(self.roots()):
            try:
                if p.pid not in services and p.name() not in CHILD_NAMES:
                    own.append(p)
            except psutil.Error:
                continue
        return own

    def begin_stop(self, exit: bool = False, tracked: bool = False) -> None:
        """Ask the tool to stop every service with its best command for that (or, `exit`,
        to stop everything and exit); returns at once. `tracked`: the caller has already put
        the tool's process tree in the tracker (a timed stop does it before its clock starts:
        the walk of every process on the machine took 10-55 ms, counted in every tool's figure)."""
        if not tracked:
            self.tracker.add_tree(self.roots())
        self.stopper = (self.tool.begin_exit if exit else self.tool.begin_stop)(self)
        self.exiting = exit or self.tool.stop_exits

    def close(self, timeout: float = 20.0) -> list[int]:
        """Stop (if not already asked), wait bounded, then SIGKILL anything left. Leftover pids."""
        for f in self.stamp_files:
            for pid, _ in stamps(f):
                self.tracker.add(pid, CHILD_NAMES)
        helpers: list[subprocess.Popen[bytes]] = []
        if not self.exiting:
            if self.stopper is not None:
                helpers.append(self.stopper)
                try:
                    self.stopper.wait(timeout=timeout)   # let "stop all" finish before asking to exit
                except subprocess.TimeoutExpired:
                    pass
            try:
                self.begin_stop(exit=True)
            except Exception as e:  # a broken tool must not leave processes behind
                print(f"bench: {self.tool.name}: stop failed: {e}", file=sys.stderr)
        roots = self.roots() + [self.launcher.pid]
        wait_until(lambda: not any(alive(p) for p in roots), timeout, 0.01)
        for proc in (*helpers, self.stopper, self.launcher):
            if proc is not None:
                try:
                    proc.wait(timeout=0.5)  # the bounded wait above is the grace period
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.tracker.add_tree(r for r in roots if alive(r))
        return self.tracker.kill_all()


class Tool(ABC):
    """A supervisor under test."""

    name: str
    settings: dict[str, str]
    # The command used for each job, named in the report: launch, stop (every service), exit
    # (stop everything and the tool itself), status.
    commands: dict[str, str]
    stop_exits = False   # True when the stop command also ends the tool
    exit_row = False     # measure the exit command's stop-all too, as its own row
    # restart trials kill a service that has run this long: s6 and runit hold back a restart
    # until a service has run 1 s (their guard against busy loops), which is not latency
    min_run_s = 0.2
    # the results this tool takes part in (compare.py's keys: restart_ms, start_ms, idle_cpu_s …);
    # None: all of them
    only: frozenset[str] | None = None

    def takes(self, measure: str) -> bool:
        return self.only is None or measure in self.only

    def begin_exit(self, s: Session) -> subprocess.Popen[bytes] | None:
        """Stop everything and make the tool exit (default: its stop command does both)."""
        return self.begin_stop(s)

    def __init__(self) -> None:
        self.notes: list[str] = []

    @abstractmethod
    def available(self) -> str | None:
        """None if installed, else why it is skipped."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None: ...

    @abstractmethod
    def launch_argv(self, workdir: Path) -> list[str]: ...

    def env(self, workdir: Path) -> dict[str, str]:
        return tool_env()

    def roots(self, s: Session) -> list[int]:
        """The supervisor's top processes (default: the launched process)."""
        return [s.launcher.pid] if alive(s.launcher.pid) else []

    @abstractmethod
    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None: ...

    @abstractmethod
    def status_argv(self, workdir: Path) -> list[str] | None:
        """The CLI that prints the status of every service; None while the tool has none."""

    def status_count(self, out: str) -> int:
        """How many services the status output lists (a sanity check on the timing)."""
        return sum(1 for line in out.splitlines() if line.strip())

    def launch(self, workdir: Path, services: list[Svc], stop_timeout: float, tracker: Tracker,
               stamp_files: list[Path]) -> Session:
        workdir.mkdir(parents=True, exist_ok=True)
        self.write_config(workdir, services, stop_timeout)
        out = open(workdir / f"{self.name}.out", "wb")
        try:
            p = subprocess.Popen(self.launch_argv(workdir), cwd=workdir, env=self.env(workdir),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        finally:
            out.close()
        tracker.add(p.pid)
        return Session(self, workdir, services, p, tracker, stamp_files)

    def ctl(self, argv: list[str], workdir: Path) -> subprocess.Popen[bytes]:
        """Run one of the tool's CLI commands in the background (its output to a file)."""
        out = open(workdir / f"{self.name}.ctl.out", "ab")
        try:
            return subprocess.Popen(argv, cwd=workdir, env=self.env(workdir), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=tool_env())
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


class Herder(Tool):
    name = "herder"
    settings = {"restart": "always", "min_uptime": "0s", "backoff.initial": "0s",
                "start_limit.burst": "100000", "kill": "tree (cgroup)"}
    commands = {"launch": "herder up -c FILE", "stop": "SIGTERM to `herder up` (= Ctrl+C: every service down, exit)",
                "status": "herder status -c FILE"}
    stop_exits = True

    def __init__(self) -> None:
        super().__init__()
        # $BENCH_HERDER: measure another build of herder (e.g. a branch installed elsewhere).
        self.exe = os.environ.get("BENCH_HERDER") or str(VENV_BIN / "herder")
        self._status: bool | None = None
        self._capture: bool | None = None

    def available(self) -> str | None:
        return None if Path(self.exe).exists() else "bench venv not installed (run bench/setup.sh)"

    def version(self) -> str:
        return _version([self.exe, "--version"])

    def has_status(self) -> bool:
        """`herder status` exists once the control API is merged; until then it is pending."""
        if self._status is None:
            r = subprocess.run([self.exe, "status", "--help"], capture_output=True, timeout=30, env=tool_env())
            self._status = r.returncode == 0
        return self._status

    def log_capture(self, workdir: Path) -> bool:
        """True once herder has its own log capture ([services.x.logs] timestamps/max_size)."""
        if self._capture is None:
            workdir.mkdir(parents=True, exist_ok=True)
            probe = workdir / "probe.toml"
            probe.write_text('[services.x]\ncommand = ["true"]\n'
                             '[services.x.logs]\nstdout = "x.log"\ntimestamps = false\nmax_size = "0"\n')
            r = subprocess.run([self.exe, "check", "-c", str(probe)], capture_output=True, timeout=30,
                               env=tool_env())
            self._capture = r.returncode == 0
        return self._capture

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        capture = any(s.log for s in services) and self.log_capture(workdir)
        text = ['[herder]\nstate_dir = "state"\n\n[defaults]\nrestart = "always"\nmin_uptime = "0s"\n'
                f'backoff = {{ initial = "0s" }}\nstart_limit = {{ burst = 100000 }}\n'
                f'stop_timeout = "{stop_timeout}s"\n']
        for s in services:
            text.append(f"\n[services.{s.name}]\ncommand = {json.dumps(list(s.argv))}\n")
            if s.log is None:
                text.append('logs = { stdout = "null" }\n')
            elif capture:
                text.append(f'[services.{s.name}.logs]\nstdout = {json.dumps(str(s.log))}\n'
                            'stderr = "auto"\ntimestamps = false\nmax_size = "0"\n')
            else:
                text.append(f"logs = {{ stdout = {json.dumps(str(s.log))} }}\n")
        (workdir / "herder.toml").write_text("".join(text))

    def logs_mode(self, workdir: Path) -> str:
        if self.log_capture(workdir):
            return ("captured through herder's pipes ([services.x.logs], timestamps = false, max_size = 0, "
                    "stderr = auto: stdout alone in its file, as a raw byte-exact log is)")
        return "direct: the child's stdout is the file (no capture yet in this build)"

    def launch_argv(self, workdir: Path) -> list[str]:
        return [self.exe, "up", "-c", str(workdir / "herder.toml")]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        if alive(s.launcher.pid):
            s.launcher.send_signal(signal.SIGTERM)   # = Ctrl+C: graceful down
        return None

    def status_argv(self, workdir: Path) -> list[str] | None:
        if not self.has_status():
            return None
        return [self.exe, "status", "-c", str(workdir / "herder.toml")]


class Supervisord(Tool):
    name = "supervisord"
    settings = {"autorestart": "true", "startsecs": "0", "startretries": "1000000",
                "stopasgroup/killasgroup": "false (defaults)", "stdout_logfile": "NONE (flood: file, maxbytes=0)"}
    commands = {"launch": "supervisord -n -c FILE", "stop": "supervisorctl stop all",
                "exit": "supervisorctl shutdown", "status": "supervisorctl status"}
    exit_row = True

    def available(self) -> str | None:
        return None if (VENV_BIN / "supervisord").exists() else "supervisor not installed"

    def version(self) -> str:
        return "supervisor " + _version([str(VENV_BIN / "supervisord"), "--version"])

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        w = workdir
        text = [f"""[unix_http_server]
file = {w}/supervisor.sock
[supervisord]
logfile = {w}/supervisord.log
pidfile = {w}/supervisord.pid
childlogdir = {w}
nodaemon = true
loglevel = warn
minfds = 4096
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl = unix://{w}/supervisor.sock
"""]
        for s in services:
            log = f"{s.log}\nstdout_logfile_maxbytes = 0\nstdout_logfile_backups = 0" if s.log else "NONE"
            text.append(f"""
[program:{s.name}]
command = {shlex.join(s.argv)}
autorestart = true
startsecs = 0
startretries = 1000000
stopwaitsecs = {stop_timeout:g}
redirect_stderr = true
stdout_logfile = {log}
""")
        (w / "supervisord.conf").write_text("".join(text))

    def launch_argv(self, workdir: Path) -> list[str]:
        return [str(VENV_BIN / "supervisord"), "-c", str(workdir / "supervisord.conf")]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        return self.ctl([str(VENV_BIN / "supervisorctl"), "-c", str(s.workdir / "supervisord.conf"), "stop", "all"],
                        s.workdir)

    def begin_exit(self, s: Session) -> subprocess.Popen[bytes] | None:
        return self.ctl([str(VENV_BIN / "supervisorctl"), "-c", str(s.workdir / "supervisord.conf"), "shutdown"],
                        s.workdir)

    def status_argv(self, workdir: Path) -> list[str] | None:
        return [str(VENV_BIN / "supervisorctl"), "-c", str(workdir / "supervisord.conf"), "status"]


class Circus(Tool):
    name = "circus"
    CHECK_DELAY = 0.1
    settings = {"respawn": "true", "warmup_delay": "0", "max_retry": "-1 (forever)",
                "check_delay": f"{CHECK_DELAY}s (default 5 s: circus notices deaths by polling)",
                "stop_children": "false (default)"}
    commands = {"launch": "circusd FILE", "stop": "circusctl quit (every watcher down, exit)",
                "status": "circusctl status"}
    stop_exits = True

    def available(self) -> str | None:
        return None if (VENV_BIN / "circusd").exists() else "circus not installed"

    def version(self) -> str:
        return "circus " + _version([str(VENV_BIN / "circusd"), "--version"])

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        w = workdir
        text = [f"""[circus]
endpoint = ipc://{w}/circus.ctl
pubsub_endpoint = ipc://{w}/circus.pub
check_delay = {self.CHECK_DELAY}
statsd = false
"""]
        for s in services:
            text.append(f"""
[watcher:{s.name}]
cmd = {s.argv[0]}
args = {shlex.join(s.argv[1:])}
numprocesses = 1
warmup_delay = 0
respawn = true
max_retry = -1
graceful_timeout = {stop_timeout:g}
""")
            if s.log:
                text.append(f"stdout_stream.class = FileStream\nstdout_stream.filename = {s.log}\n"
                            "stdout_stream.max_bytes = 0\n")
        (w / "circus.ini").write_text("".join(text))

    def launch_argv(self, workdir: Path) -> list[str]:
        return [str(VENV_BIN / "circusd"), "--log-level", "warning", str(workdir / "circus.ini")]

    def _ctl(self, workdir: Path, *args: str) -> list[str]:
        return [str(VENV_BIN / "circusctl"), "--endpoint", f"ipc://{workdir}/circus.ctl", "--timeout", "30", *args]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        return self.ctl(self._ctl(s.workdir, "quit"), s.workdir)

    def status_argv(self, workdir: Path) -> list[str] | None:
        return self._ctl(workdir, "status")


class PM2(Tool):
    name = "pm2"
    settings = {"autorestart": "true", "restart_delay": "0", "exp_backoff_restart_delay": "unset (off)",
                "min_uptime": "0", "max_restarts": "1000000",
                "kill_signal": "SIGTERM (default SIGINT; same signal as the others)", "treekill": "true (default)",
                "exec_mode": "fork", "interpreter": "none"}
    commands = {"launch": "pm2 start ecosystem.json", "stop": "pm2 kill (every app down, daemon exits)",
                "status": "pm2 jlist"}
    stop_exits = True

    def available(self) -> str | None:
        if not shutil.which("node"):
            return "node not found"
        return None if PM2_BIN.exists() else "pm2 not installed (npm install failed or skipped)"

    def version(self) -> str:
        try:
            v = json.loads((PM2_BIN.resolve().parent.parent / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            v = "?"
        return f"pm2 {v} (node {_version(['node', '--version'])})"

    def env(self, workdir: Path) -> dict[str, str]:
        # Its own PM2_HOME: the daemon, sockets and logs live in the session's directory.
        return tool_env(PM2_HOME=str(workdir / "pm2home"), PM2_DISCRETE_MODE="true")

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        apps = [{"name": s.name, "script": s.argv[0], "args": list(s.argv[1:]), "interpreter": "none",
                 "exec_mode": "fork", "autorestart": True, "restart_delay": 0, "min_uptime": 0,
                 "max_restarts": 1000000, "kill_timeout": int(stop_timeout * 1000), "kill_signal": "SIGTERM",
                 "out_file": str(s.log) if s.log else "/dev/null", "error_file": "/dev/null",
                 "merge_logs": True, "time": False} for s in services]
        (workdir / "ecosystem.json").write_text(json.dumps({"apps": apps}))

    def launch_argv(self, workdir: Path) -> list[str]:
        return [str(PM2_BIN), "start", str(workdir / "ecosystem.json")]

    def roots(self, s: Session) -> list[int]:
        try:
            pid = int((s.workdir / "pm2home" / "pm2.pid").read_text().strip())
        except (OSError, ValueError):
            return []
        if alive(pid):
            s.tracker.add(pid)
            return [pid]
        return []

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        return self.ctl([str(PM2_BIN), "kill"], s.workdir)

    def status_argv(self, workdir: Path) -> list[str] | None:
        return [str(PM2_BIN), "jlist"]

    def status_count(self, out: str) -> int:
        try:
            start = out.index("[")
            return len(json.loads(out[start:]))
        except ValueError:
            return 0


class Floor(Tool):
    """bench/floor.py: the least a Python supervisor does (its docstring says what that is), for the
    rows where the machine's floor explains herder's figure: restart, start-all, idle, stop-all."""

    name = "floor"
    settings = {"what": "bench/floor.py: one asyncio loop, Popen, restart at once, SIGTERM then SIGKILL "
                "after the stop timeout; no config, state, journal, logs, API, cgroup or second process"}
    commands = {"launch": "python bench/floor.py FILE", "stop": "SIGTERM to floor.py (every service down, exit)"}
    stop_exits = True
    only = frozenset({"restart_ms", "start_ms", "idle_cpu_s", "idle_rss_mb", "idle_pss_mb", "stop_ms"})

    def available(self) -> str | None:
        return None if (VENV_BIN / "python").exists() else "bench venv not installed (run bench/setup.sh)"

    def version(self) -> str:
        return "floor: bench/floor.py on " + _version([str(VENV_BIN / "python"), "--version"])

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        spec = {"stop_timeout": stop_timeout, "services": [list(s.argv) for s in services]}
        (workdir / "floor.json").write_text(json.dumps(spec))

    def launch_argv(self, workdir: Path) -> list[str]:
        return [str(VENV_BIN / "python"), str(HERE / "floor.py"), str(workdir / "floor.json")]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        if alive(s.launcher.pid):
            s.launcher.send_signal(signal.SIGTERM)
        return None

    def status_argv(self, workdir: Path) -> list[str] | None:
        return None


PYTHON_NODE: list[type[Tool]] = [Herder, Supervisord, Circus, PM2]
