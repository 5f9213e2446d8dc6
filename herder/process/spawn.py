"""Starting one instance's process.

Why subprocess.Popen and not os.posix_spawn: Popen sets the working directory, the
account (user, group, supplementary groups) and a new session in the child, and since
Python 3.10 it uses vfork() when no account switch is asked for, so a spawn costs well
under a millisecond of the loop's time. Popen's own reaping is never used: the runtime's
reaper owns waitpid(), and marks the Popen finished when it reaps the pid.

Every herder fd is created close-on-exec (PEP 446) and close_fds=True closes the rest, so
nothing of herder's leaks into a child; stdin is /dev/null.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from herder.errors import SpawnError
from herder.process import privilege as _privilege
from herder.process import rlimits as _rlimits
from herder.process.privilege import Privilege
from herder.process.which import which

if TYPE_CHECKING:   # the keeper runs `spawn` and never imports the config schema
    from herder.config.model import ServiceSpec

_MANAGER_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",     # herder's own manager's, and what
                 "HERDER_UPWARD", "HERDER_UPWARD_WATCHDOG", "HERDER_MANAGER_NOTIFY")   # its keeper says of it


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one instance, with {replica} substituted."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    user: str | None
    group: str | None
    rlimits: tuple[tuple[int, int], ...] = ()   # (RLIMIT_*, value) set soft = hard before exec
    cgroup_files: tuple[str, ...] = ()          # cgroup.procs files the child joins before exec
    privilege: Privilege | None = None          # [security]: applied by `spawn` (herder.process.privilege)

    # The seam between deciding and doing: the decision process plans a Launch, the keeper
    # (the services' parent) carries it out. It crosses the keeper's wire as plain data, so
    # every field must be JSON: what a new step between fork and exec needs is a new field
    # here plus its application in `spawn`.
    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Launch:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in raw.items() if k in known}
        d["argv"] = tuple(d["argv"])
        d["rlimits"] = tuple((int(a), int(b)) for a, b in d.get("rlimits", ()))
        d["cgroup_files"] = tuple(d.get("cgroup_files", ()))
        priv = d.get("privilege")
        if priv is not None:
            caps = priv.get("capabilities")
            d["privilege"] = Privilege(bool(priv.get("no_new_privileges", False)),
                                       tuple(caps) if caps is not None else None, priv.get("umask"),
                                       bool(priv.get("private_tmp", False)), tuple(priv.get("read_only_paths", ())))
        return cls(**d)


raise_nofile = _rlimits.raise_nofile


def base_environment() -> dict[str, str]:
    """herder's environment as every child starts from it, without what belongs to herder's
    own manager (its sd_notify socket and watchdog). The supervisor takes it once: copying
    os.environ (an encode/decode per variable) for each spawn cost ~0.3 ms."""
    env = dict(os.environ)
    for own in _MANAGER_ONLY:
        env.pop(own, None)
    return env


def plan(name: str, replica: int | None, spec: ServiceSpec, cookie: str,
         base_env: dict[str, str] | None = None) -> Launch:
    def sub(s: str) -> str:
        return s.replace("{replica}", str(replica if replica is not None else 0))

    env = dict(base_env) if base_env is not None else base_environment()
    if spec.security.clear_env:     # only what the config gives (env_file is merged into spec.env) and PATH
        env = {"PATH": env["PATH"]} if "PATH" in env else {}
    env.update({k: sub(v) for k, v in spec.env.items()})
    env.update({
        "HERDER_INSTANCE": name,
        "HERDER_SERVICE": name.split(".")[0] if replica is not None else name,
        "HERDER_INSTANCE_ID": cookie,
        "HERDER_STOP_TIMEOUT_USEC": str(int(spec.stop_timeout * 1_000_000)),
    })
    if replica is not None:
        env["HERDER_REPLICA"] = str(replica)
    if spec.user is not None:
        pw = pwd.getpwnam(spec.user)
        env.update({"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name})
    return Launch(name, tuple(sub(a) for a in spec.command), env,
                  sub(spec.cwd) if spec.cwd else None, spec.user, spec.group, _rlimits.from_spec(spec.limits),
                  privilege=_privilege.from_security(spec.security))


def spawn(launch: Launch, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    """Start the process in its own session. Raises SpawnError with the OS's reason."""
    kwargs: dict[str, Any] = {}
    argv, priv = launch.argv, launch.privilege
    switches = launch.user is not None or launch.group is not None
    steps: list[Any] = []
    if priv is not None:    # [security]: see herder.process.privilege for the mechanism
        why = _privilege.problem(priv, switches)
        if why:
            raise SpawnError(why)
        if priv.umask is not None:
            kwargs["umask"] = priv.umask
        if priv.mounts:
            steps.append(_privilege.mount_step(priv))
    if priv is not None and _privilege.uses_setpriv(priv, switches):
        _found(launch)     # setpriv would only fail after the spawn: say it as a failed spawn
        argv = _privilege.argv(priv, _ids(launch) if switches else None) + argv
    elif launch.user is not None:
        pw = pwd.getpwnam(launch.user)
        kwargs["user"] = pw.pw_uid
        kwargs["group"] = launch.group if launch.group is not None else pw.pw_gid
        kwargs["extra_groups"] = os.getgrouplist(pw.pw_name, pw.pw_gid)
    elif launch.group is not None:
        kwargs["group"] = launch.group
    if launch.rlimits or launch.cgroup_files:  # see herder.process.rlimits for why
        why = _rlimits.problem(launch.rlimits)
        if why:
            raise SpawnError(why)
        account = None
        if "user" in kwargs:
            gid = kwargs.pop("group")
            gid = gid if isinstance(gid, int) else _gid(gid)
            account = (kwargs.pop("user"), gid, kwargs.pop("extra_groups"))
        steps.append(_rlimits.preexec(launch.rlimits, launch.cgroup_files, account))
    if steps:
        kwargs["preexec_fn"] = steps[0] if len(steps) == 1 else _chain(steps)

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            cwd=launch.cwd, env=launch.env, start_new_session=True, close_fds=True,
            restore_signals=True, **kwargs)

    try:
        own_nofile = any(res == _rlimits.NAMES.get("nofile") for res, _ in launch.rlimits)
        if own_nofile:
            return popen()
        try:
            with _rlimits.children_nofile():   # the soft limit herder started with (see rlimits)
                return popen()
        except OSError as e:
            if not _rlimits.is_fd_exhaustion(e):
                raise
            return popen()                     # every low fd is in use: spawn with herder's raised limit
    except OSError as e:
        what = e.filename if e.filename else launch.argv[0]
        raise SpawnError(f"{what}: {e.strerror or e}") from None
    except (ValueError, KeyError) as e:  # unknown account, NUL in an argument
        raise SpawnError(str(e)) from None
    except subprocess.SubprocessError as e:  # the preexec step failed (a limit above the hard limit …)
        what = "set up the mount namespace of security.private_tmp / read_only_paths, " if priv and priv.mounts \
            else ""
        raise SpawnError(f"cannot {what}apply limits.* or join the cgroup before exec: {e}") from None


def _found(launch: Launch) -> None:
    prog = launch.argv[0]
    if "/" in prog:
        path = prog if os.path.isabs(prog) or launch.cwd is None else os.path.join(launch.cwd, prog)
        if not os.path.exists(path):
            raise SpawnError(f"{prog}: No such file or directory")
    elif which(prog, launch.env.get("PATH", os.defpath)) is None:
        raise SpawnError(f"{prog}: No such file or directory (not on PATH)")


def _chain(steps: list[Any]) -> Any:
    def child() -> None:
        for step in steps:
            step()
    return child


def _ids(launch: Launch) -> tuple[int, int]:
    """(uid, gid) for setpriv: uid -1 when only the group changes."""
    if launch.user is None:
        return -1, _gid(launch.group or "")
    pw = pwd.getpwnam(launch.user)
    return pw.pw_uid, _gid(launch.group) if launch.group is not None else pw.pw_gid


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid
