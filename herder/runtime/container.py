"""Is herder a container's init? PID 1, the container around it, and what that changes.

Why herder asks: as the ENTRYPOINT of a multi-process image (`herder up -c FILE`, no other
flag) herder is PID 1 of the container's pid namespace, and three things differ there:

- Every orphan of the container is re-parented to PID 1. herder reaps them anyway (its
  one reaper calls waitpid(-1), and elsewhere it is a child subreaper), so nothing more is
  needed for reaping; PID 1 is reported so users can see which process owns that duty.
- The kernel delivers to PID 1 only the signals it has a handler for; all others (SIGHUP
  from `docker kill -s HUP` when no handler is set, SIGWINCH from a resized terminal, …)
  are dropped, not acted on with their default action. herder handles SIGTERM and the
  first SIGINT (ordered stop), a second SIGINT (forced stop), SIGHUP (reload), SIGUSR1
  (reopen logs) and, as PID 1 only, SIGPWR (the halt signal of LXC and Incus). It forwards
  none of them to the services: each is a request to herder, which stops the services
  itself, in order (docs/container.md).
- The engine collects the container's stdout and stderr; per-service files would only
  fill the container's writable layer. So `console` and `log_files` default to the
  container's way there (herder.logs.console_mode).

"A container's init" is PID 1, or the main process of a container started with a tiny
init in front (`docker run --init`: tini as PID 1, herder its child), or a child of
herder's own keeper process as PID 1 (where herder splits into a keeper and a decision
process). herder under
systemd inside a container (systemd-nspawn, a system install) is not one: systemd is the
init and the journal takes stdout. The engine is named from the usual markers:
/.dockerenv, /run/.containerenv (podman), $container (systemd's convention, set by
podman, LXC and nspawn), $KUBERNETES_SERVICE_HOST, or a cgroup namespace of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TINY_INITS = frozenset({"tini", "docker-init", "dumb-init", "catatonit"})
KEEPER = "herder.keeper"     # `python -m herder.keeper`: a herder process that keeps the services' pipes
TERMINATION_LOG = Path("/dev/termination-log")   # Kubernetes' default terminationMessagePath


@dataclass(frozen=True)
class Init:
    pid1: bool                      # herder is PID 1 of its pid namespace
    engine: str | None              # docker, podman, kubernetes, the value of $container, "container", or None
    under: str | None               # the tiny init in front of herder (tini …), when it is not PID 1 itself

    @property
    def container_init(self) -> bool:
        """herder is the init (or main process) of a container: it reaps for the whole
        namespace and the engine collects its stdout."""
        return self.pid1 or self.under is not None

    def describe(self) -> str:
        """For herder's first event: "PID 1 of a docker container" …"""
        where = f"a {self.engine} container" if self.engine and self.engine != "container" else "a container"
        if self.pid1:
            return f"PID 1 of {where}" if self.engine else "PID 1 of its pid namespace"
        if self.under is not None:
            return f"the main process of {where}, under {self.under} (PID 1)"
        return f"in {where}" if self.engine else "not in a container"


def detect(*, pid: int | None = None, ppid: int | None = None, environ: Mapping[str, str] | None = None,
           root: Path = Path("/")) -> Init:
    """Read what this process is (the arguments let tests describe another machine)."""
    pid = os.getpid() if pid is None else pid
    ppid = os.getppid() if ppid is None else ppid
    env = os.environ if environ is None else environ
    engine = _engine(env, root)
    under = None
    if pid != 1 and ppid == 1 and engine is not None:
        comm = _read(root / "proc/1/comm").strip()
        if comm in TINY_INITS:
            under = comm
        elif KEEPER in _read(root / "proc/1/cmdline"):
            under = "herder's keeper"     # herder's own PID 1 (issue 12): the container is herder's
    return Init(pid == 1, engine, under)


def _engine(env: Mapping[str, str], root: Path) -> str | None:
    if (root / ".dockerenv").exists():
        return "docker"
    if (root / "run/.containerenv").exists():
        return "podman"
    if env.get("container"):
        return env["container"]
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if _read(root / "proc/self/cgroup").strip() == "0::/":   # cgroup v2 with a namespace of its own
        return "container"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def write_termination_message(text: str, path: Path = TERMINATION_LOG) -> bool:
    """Kubernetes shows this file's content as the reason a container ended (`kubectl
    describe pod`: Last State, Message). Written only where the kubelet mounted one."""
    if not text or not path.is_file():
        return False
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[:4096] + "\n")        # the kubelet keeps at most 4096 bytes
    except OSError:
        return False
    return True
