"""Least privilege for one launch ([services.NAME.security]), applied between fork and exec.

Which mechanism, and why:

- **account, capabilities, no_new_privileges: util-linux `setpriv` as an exec wrapper**
  (`setpriv --reuid … --init-groups --inh-caps=-all,+net_bind_service --ambient-caps=…
  --bounding-set=… --no-new-privs -- PROGRAM`). Keeping a capability across the switch
  from root to another user takes a precise dance (SECBIT_KEEP_CAPS, setresuid, capset,
  the ambient set, the bounding set, in that order), and setpriv is the maintained tool
  that does it; util-linux is on every Linux system. It costs one extra exec (setpriv
  execs the program, so the pid herder supervises is the program's), it keeps Popen's
  vfork fast path (no Python runs in the child), and it is a pure function of the Launch:
  any spawner (the keeper of issue 12 too) gets the same process by running `argv(…)`.
- **umask**: Popen's own `umask=` (set in the child; vfork is kept).
- **clear_env**: the Launch's environment itself (herder.process.spawn.plan).
- **private_tmp, read_only_paths**: a mount namespace, which no exec wrapper in
  util-linux sets up with bind mounts, so a small preexec step (`mount_step`): unshare
  (CLONE_NEWNS), make every mount private, a fresh tmpfs on /tmp and /var/tmp, read-only
  bind mounts, through libc (resolved in the parent: the child only makes syscalls). It
  runs as root before setpriv drops privileges; only services that ask for it pay for the
  fork that a preexec function costs (no vfork).

What cannot be applied fails the start with the reason (`problem`), checked in the parent
before each spawn and by `herder check` (`problems`): it never runs the program with less
protection than the config asks for.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from herder.process.capabilities import CAPABILITIES

if TYPE_CHECKING:
    from herder.config.lifecycle import Security

_CAP_SETPCAP = CAPABILITIES["SETPCAP"]
_CAP_SYS_ADMIN = CAPABILITIES["SYS_ADMIN"]
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_ST_FLAGS = {"ST_NOSUID": _MS_NOSUID, "ST_NODEV": _MS_NODEV, "ST_NOEXEC": _MS_NOEXEC}
PRIVATE_TMP = ("/tmp", "/var/tmp")


@dataclass(frozen=True)
class Privilege:
    """What a Launch asks for beyond its account (resolved from [security])."""

    no_new_privileges: bool = False
    capabilities: tuple[str, ...] | None = None    # the only ones kept; () = none; None = as they are
    umask: int | None = None
    private_tmp: bool = False
    read_only_paths: tuple[str, ...] = ()

    @property
    def wrapper(self) -> bool:
        """Needs setpriv."""
        return self.no_new_privileges or self.capabilities is not None

    @property
    def mounts(self) -> bool:
        return self.private_tmp or bool(self.read_only_paths)


def from_security(sec: Security) -> Privilege | None:
    priv = Privilege(sec.no_new_privileges, sec.capabilities, sec.umask, sec.private_tmp, sec.read_only_paths)
    return priv if priv != Privilege() else None


# ---- what this machine allows --------------------------------------------------------------------

@functools.cache
def setpriv_path() -> str | None:
    import shutil  # here: shutil (bz2, lzma) is not on the keeper's import path

    return shutil.which("setpriv") or next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(p, os.X_OK)),
                                           None)


def own_caps(field: str = "CapEff") -> int:
    """A capability set of herder itself (CapEff, CapBnd …), from /proc/self/status."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def _has(caps: int, name: str) -> bool:
    return bool(caps >> CAPABILITIES[name] & 1)


def problems(sec: Security, switches_account: bool = False) -> list[tuple[str, str]]:
    """(key under [security], what is wrong; expected …) for what this machine cannot apply."""
    priv = from_security(sec)
    return [] if priv is None else _problems(priv, switches_account)


def problem(priv: Privilege, switches_account: bool = False) -> str | None:
    """The first reason this launch cannot get the privileges it asks for, or None."""
    found = _problems(priv, switches_account)
    return None if not found else f"security.{found[0][0]}: {found[0][1]}"


def uses_setpriv(priv: Privilege, switches_account: bool) -> bool:
    """setpriv switches the account too when a mount namespace must be set up as root first."""
    return priv.wrapper or (priv.mounts and switches_account)


def _problems(priv: Privilege, switches_account: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if sys.platform != "linux":
        for key, on in (("no_new_privileges", priv.no_new_privileges), ("capabilities", priv.capabilities is not None),
                        ("private_tmp", priv.private_tmp), ("read_only_paths", bool(priv.read_only_paths))):
            if on:
                out.append((key, f"is Linux-only; this is {sys.platform}. Expected no {key} here"))
        return out
    if uses_setpriv(priv, switches_account) and setpriv_path() is None:
        key = "capabilities" if priv.capabilities is not None else \
            "no_new_privileges" if priv.no_new_privileges else "private_tmp" if priv.private_tmp else "read_only_paths"
        out.append((key, "needs util-linux's setpriv, which is not on PATH; expected util-linux installed "
                    "(apt install util-linux)"))
    if priv.capabilities is not None:
        eff, bnd = own_caps("CapEff"), own_caps("CapBnd")
        if not _has(eff, "SETPCAP"):
            out.append(("capabilities", f"herder (uid {os.geteuid()}) lacks CAP_SETPCAP, so it cannot drop "
                        "capabilities from the bounding set; expected herder running as root, or no "
                        "security.capabilities"))
        missing = [c for c in priv.capabilities if not (_has(eff, c) and _has(bnd, c))]
        if missing:
            out.append(("capabilities", f"herder itself does not hold CAP_{missing[0]}, so it cannot give it; "
                        "expected herder running as root with that capability (a container may need it added)"))
    if priv.mounts:
        key = "private_tmp" if priv.private_tmp else "read_only_paths"
        if os.geteuid() != 0 or not _has(own_caps("CapEff"), "SYS_ADMIN"):
            out.append((key, f"needs a mount namespace, which herder (uid {os.geteuid()}) may not create; expected "
                        "herder running as root with CAP_SYS_ADMIN, or no security." + key))
        for p in priv.read_only_paths:
            if not os.path.exists(p):
                out.append(("read_only_paths", f"{p} does not exist; expected existing paths"))
                break
            if priv.private_tmp and any(p == d or p.startswith(d + "/") for d in PRIVATE_TMP):
                out.append(("read_only_paths", f"{p} is under /tmp or /var/tmp, which private_tmp replaces with "
                            "an empty tmpfs; expected paths outside them, or no private_tmp"))
                break
    return out


# ---- applying it -------------------------------------------------------------------------------

def argv(priv: Privilege, account: tuple[int, int] | None, keep_groups: bool = False) -> tuple[str, ...]:
    """The setpriv prefix for this launch (empty when none is needed). `account` = (uid, gid)
    to switch to (supplementary groups from the user's entry, like login), or (-1, gid)
    for a group only (supplementary groups kept)."""
    if not uses_setpriv(priv, account is not None):
        return ()
    out = [setpriv_path() or "setpriv"]
    if account is not None:
        uid, gid = account
        if uid >= 0:
            out += [f"--reuid={uid}", f"--regid={gid}", "--init-groups"]
        else:
            out += [f"--regid={gid}", "--keep-groups"]
    if priv.capabilities is not None:
        caps = ",".join(["-all", *(f"+{c.lower()}" for c in priv.capabilities)])
        out += [f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]
    if priv.no_new_privileges:
        out.append("--no-new-privs")
    return (*out, "--")


def mount_step(priv: Privilege) -> Callable[[], None]:
    """The preexec step for private_tmp and read_only_paths (runs in the child, as root)."""
    import ctypes  # in the parent, before the fork; ctypes.util (tempfile, random) only for this
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    unshare, mount = libc.unshare, libc.mount
    unshare.argtypes = [ctypes.c_int]
    mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    calls: list[tuple[bytes | None, bytes, bytes | None, int, bytes | None]] = [
        (None, b"/", None, _MS_REC | _MS_PRIVATE, None)]
    for p in priv.read_only_paths:      # host paths first: private_tmp then hides /tmp and /var/tmp
        keep = _mount_flags(p)
        calls += [(p.encode(), p.encode(), None, _MS_BIND | _MS_REC, None),
                  (None, p.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None)]
    if priv.private_tmp:
        calls += [(b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=1777")
                  for d in PRIVATE_TMP if os.path.isdir(d)]

    def child() -> None:
        if unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        for src, target, fstype, flags, data in calls:
            if mount(src, target, fstype, flags, data) != 0:
                raise OSError(ctypes.get_errno(), f"mount {target!r}")

    return child


def _mount_flags(path: str) -> int:
    """nosuid/nodev/noexec of the mount `path` is on: a read-only remount must keep them."""
    try:
        flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    out = 0
    for name, ms in _ST_FLAGS.items():
        if flag & getattr(os, name, 0):
            out |= ms
    return out
