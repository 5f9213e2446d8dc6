"""Checks of a service against this machine: its account, its program, its folder.

A value that parses can still make every start fail: a user that does not exist, a
program that is not installed or not executable (by the account it runs as), a working
directory that is not there. `herder check`, `up` and `reload` report those up front,
as errors, rather than as a service that burns its start limit at 3 a.m.

What only run time can settle is a warning instead: when the service waits for others
(`depends_on`), one of them may create the program or the folder before it starts.
Values with `{replica}` are checked for each replica. The loader skips all of this when
it is asked not to look at the machine (`check_accounts=False`: rendering for another host).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from herder.config.model import ServiceSpec
from herder.process.which import which

Report = Callable[[tuple[str, ...], str], None]


@dataclass(frozen=True)
class Account:
    uid: int
    gids: frozenset[int]

    def may(self, st: os.stat_result, bit: int) -> bool:
        """Whether this account has permission `bit` (4 r, 2 w, 1 x) on a file of mode st."""
        if self.uid == 0:
            return bit != 1 or bool(st.st_mode & 0o111) or stat.S_ISDIR(st.st_mode)
        if st.st_uid == self.uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid in self.gids:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)


def account_of(spec: ServiceSpec) -> Account | None:
    """The account the service runs as (herder's own when no user/group is set); None if
    unknown, or where there are no POSIX accounts (Windows: permissions are not checked)."""
    try:
        import grp
        import pwd
    except ImportError:
        return None
    try:
        if spec.user is None:
            gids = set(os.getgroups()) | {os.getegid()}
            if spec.group is not None:
                gids = {grp.getgrnam(spec.group).gr_gid}
            return Account(os.geteuid(), frozenset(gids))
        pw = pwd.getpwnam(spec.user)
        gid = grp.getgrnam(spec.group).gr_gid if spec.group is not None else pw.pw_gid
        return Account(pw.pw_uid, frozenset(os.getgrouplist(pw.pw_name, gid)) | {gid})
    except (KeyError, ValueError, OSError):
        return None


def _stat(path: Path) -> os.stat_result | str:
    """path's stat, or why there is none ("No such file or directory", "File name too long" …)."""
    try:
        return path.stat()
    except OSError as e:
        return e.strerror or str(e)
    except ValueError as e:    # NUL (reported by the loader already)
        return str(e)


def _unreachable(path: Path, who: Account) -> Path | None:
    """The first folder on the way to path that `who` may not enter, or None."""
    for parent in reversed(path.parents):
        st = _stat(parent)
        if isinstance(st, str):
            return None       # reported as missing by the caller
        if not who.may(st, 1):
            return parent
    return None


def _replicas(spec: ServiceSpec) -> list[int | None]:
    return list(range(spec.replicas)) if spec.replicas > 1 else [None]


def check_service(spec: ServiceSpec, here: tuple[str, ...], where: Callable[[tuple[str, ...]], tuple[str, ...]],
                  error: Report, warn: Report) -> None:
    """Report what would make every start of this service fail (see the module docstring)."""
    soft = bool(spec.depends_on)
    report = warn if soft else error
    later = "; it may appear before the service starts (it waits for its dependencies)" if soft else ""
    who = account_of(spec)
    if who is None and (spec.user is not None or spec.group is not None) and hasattr(os, "geteuid"):
        return     # an unknown account: the loader reports it
    as_whom = f" by {spec.user}" if spec.user else ""
    for replica in _replicas(spec):
        def sub(s: str, replica: int | None = replica) -> str:
            return s.replace("{replica}", str(replica if replica is not None else 0))

        cwd = sub(spec.cwd) if spec.cwd else None
        if cwd is not None:
            p = Path(cwd)
            st = _stat(p)
            if isinstance(st, str) or not stat.S_ISDIR(st.st_mode):
                why = f" ({st})" if isinstance(st, str) else ""
                report(where((*here, "cwd")), f"{cwd} is not a folder{why}{later}; expected an existing directory")
                return
            if who is not None and (blocked := _unreachable(p / "x", who)) is not None:
                report(where((*here, "cwd")), f"{blocked} cannot be entered{as_whom}; expected a folder the "
                       "service's account can reach")
                return
        prog = sub(spec.command[0])
        env_path = spec.env.get("PATH", os.environ.get("PATH", os.defpath))
        if "/" in prog:
            found = Path(cwd or os.getcwd(), prog) if not os.path.isabs(prog) else Path(prog)
        else:
            hit = which(prog, env_path, os.F_OK)
            if hit is None:
                report(where((*here, "command")), f"command not found: {prog} (searched PATH={env_path}){later}; "
                       "expected an installed program, or its full path")
                return
            found = Path(hit)
        st = _stat(found)
        if isinstance(st, str):
            what = "no such file" if st == os.strerror(2) else st
            report(where((*here, "command")), f"{prog}: {what}{later}; expected an installed program")
            return
        if stat.S_ISDIR(st.st_mode) or (who is not None and not who.may(st, 1)):
            report(where((*here, "command")), f"{found} is not executable{as_whom} (mode "
                   f"{stat.S_IMODE(st.st_mode):04o}); expected `chmod +x {found}` or another program")
            return
        if who is not None and (blocked := _unreachable(found, who)) is not None:
            report(where((*here, "command")), f"{blocked} cannot be entered{as_whom}, so {found} cannot be run; "
                   "expected a program in a folder the service's account can reach")
            return
