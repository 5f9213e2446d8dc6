"""s6 and runit: the daemontools family, the fastest supervisors a comparison can include.

Both are C, one small supervisor process per service (s6-supervise, runsv) under one
scanner (s6-svscan, runsvdir), configured by a directory per service holding an executable
`run`. They come from Debian's packages (`apt-get install s6 runit`, done by bench/setup.sh).
Each gets its own scan directory inside the session's workdir, so nothing here touches the
machine's /etc/service or a system-wide scanner.

`run` is a script, as both projects document it: execline for s6 (its own language,
`#!/usr/bin/execlineb -P`), `/bin/sh` for runit; either `exec`s the service, so the
service's pid is the supervised one. The script's interpreter start (~0.3–0.5 ms) is part of
their restart and start figures, as it is for their users.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from procs import alive
from tools import Session, Svc, Tool, tool_env


def _write_run(d: Path, text: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    run = d / "run"
    run.write_text(text)
    run.chmod(0o755)


def _deb_version(pkg: str) -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=30)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


class S6(Tool):
    name = "s6"
    settings = {"run": "execlineb script that execs the service", "timeout-kill": "stop timeout (ms)",
                "restart": "always (s6-supervise's only mode; it respawns ~1 s after a death, however long the "
                "service ran: measured after 3 s runs, with and without ./finish)", "down-signal": "SIGTERM (default)"}
    commands = {"launch": "s6-svscan SCANDIR", "stop": "s6-svscanctl -t SCANDIR (bring every service down, exit)",
                "exit": "s6-svscanctl -t SCANDIR",
                "status": "s6-svstat DIR for each of the N (sh loop: s6-svstat takes one service)"}
    stop_exits = True
    min_run_s = 1.1

    def available(self) -> str | None:
        missing = [x for x in ("s6-svscan", "s6-svscanctl", "s6-svstat", "execlineb") if not shutil.which(x)]
        return f"not installed ({', '.join(missing)}): apt-get install s6" if missing else None

    def version(self) -> str:
        return f"s6 {_deb_version('s6')} (Debian)"

    def scandir(self, workdir: Path) -> Path:
        return workdir / "scan"

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        scan = self.scandir(workdir)
        if scan.exists():
            shutil.rmtree(scan)
        for s in services:
            d = scan / s.name
            redirect = f"redirfd -w 1 {shlex.quote(str(s.log))}\n" if s.log else "redirfd -w 1 /dev/null\n"
            _write_run(d, f"#!{shutil.which('execlineb')} -P\nfdmove -c 2 1\n{redirect}"
                          f"{' '.join(shlex.quote(a) for a in s.argv)}\n")
            (d / "timeout-kill").write_text(f"{int(stop_timeout * 1000)}\n")

    def launch_argv(self, workdir: Path) -> list[str]:
        return ["s6-svscan", "-c", "4096", str(self.scandir(workdir))]

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        return self.ctl(["s6-svscanctl", "-t", str(self.scandir(s.workdir))], s.workdir)

    def status_argv(self, workdir: Path) -> list[str] | None:
        scan = shlex.quote(str(self.scandir(workdir)))
        return ["/bin/sh", "-c", f'for d in {scan}/*/; do printf "%s " "$d"; s6-svstat "$d" || exit 1; done']


class Runit(Tool):
    name = "runit"
    settings = {"run": "/bin/sh script that execs the service",
                "restart": "always (runsv's only mode; same 1 s rule as s6: restart trials let it run 1.1 s)",
                "stop": "sv -w T force-stop: TERM, then KILL after T = stop timeout"}
    commands = {"launch": "runsvdir SCANDIR", "stop": "sv -w 2 force-stop SCANDIR/* (TERM; KILL after 2 s)",
                "exit": "SIGHUP to runsvdir (each runsv stops its service and exits)",
                "status": "sv status SCANDIR/*"}
    min_run_s = 1.1

    def available(self) -> str | None:
        missing = [x for x in ("runsvdir", "runsv", "sv") if not shutil.which(x)]
        return f"not installed ({', '.join(missing)}): apt-get install runit" if missing else None

    def version(self) -> str:
        return f"runit {_deb_version('runit')} (Debian)"

    def scandir(self, workdir: Path) -> Path:
        return workdir / "service"

    def write_config(self, workdir: Path, services: list[Svc], stop_timeout: float) -> None:
        scan = self.scandir(workdir)
        if scan.exists():
            shutil.rmtree(scan)
        self._stop_timeout = stop_timeout
        for s in services:
            out = shlex.quote(str(s.log)) if s.log else "/dev/null"
            _write_run(scan / s.name, f"#!/bin/sh\nexec {shlex.join(s.argv)} >{out} 2>&1\n")

    def launch_argv(self, workdir: Path) -> list[str]:
        return ["runsvdir", "-P", str(self.scandir(workdir))]

    def env(self, workdir: Path) -> dict[str, str]:
        return tool_env(SVDIR=str(self.scandir(workdir)))

    def _dirs(self, workdir: Path) -> list[str]:
        return sorted(str(p) for p in self.scandir(workdir).iterdir())

    def begin_stop(self, s: Session) -> subprocess.Popen[bytes] | None:
        t = getattr(self, "_stop_timeout", 2.0)
        return self.ctl(["sv", "-w", f"{t:g}", "force-stop", *self._dirs(s.workdir)], s.workdir)

    def begin_exit(self, s: Session) -> subprocess.Popen[bytes] | None:
        if alive(s.launcher.pid):
            os.kill(s.launcher.pid, signal.SIGHUP)
        return None

    def status_argv(self, workdir: Path) -> list[str] | None:
        return ["sv", "status", *self._dirs(workdir)]


PEERS: list[type[Tool]] = [S6, Runit]
