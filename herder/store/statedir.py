"""Whether a state_dir may be trusted: only when its owner and mode say it is herder's.

Everything in state_dir steers herder: run.json names the processes herder stops at
start-up, intent.json which services stay down, herder.sock is how operators reach it.
A folder another local user can write to lets that user plant those files (a run.json
naming any process, which a root herder then killed) or swap the socket. So, as ssh's
StrictModes does for ~/.ssh and systemd for RuntimeDirectory=:

- state_dir is a real directory owned by herder's effective user and not writable by
  group or others; the one exception is group write for the `socket_group` when that is
  the directory's group (its members operate this herder anyway). A symlink to it is
  followed only when root or herder's user made the link.
- every directory above it (of the path as written and as resolved) belongs to root or
  herder's user and is not writable by group or others, unless it is sticky (/tmp):
  otherwise whoever can write there can swap state_dir itself.
- the entries herder keeps in it are not symlinks and belong to herder's user (a file
  left from before the folder was made safe is not trusted either).

Anything else is refused before herder reads or writes a byte there, with the path and
the command that fixes it. A missing state_dir is created 0755 (0750 when herder's
umask says so): its files carry their own modes (run.json and the journal 0600, the
socket 0600 or 0660).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from herder.errors import HerderError

# what herder keeps in state_dir (name prefixes, with rotated and temporary files): each must
# be herder's own and never a link
ENTRIES = ("herder.", "notify.sock", "run.json", ".run.json", "intent", ".intent", "journal.db", "logs")


class UnsafeStateDir(HerderError):
    """state_dir (or a folder above it, or an entry in it) is not safely herder's."""

    exit_code = 2


def _who(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check_ancestor(path: Path, me: int) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (0, me):
            raise UnsafeStateDir(f"{path} is a symlink made by {_who(st.st_uid)}, who could point herder's "
                                 "state_dir anywhere; expected a link made by root or herder's user, or a real path")
        return
    if st.st_uid not in (0, me):
        raise UnsafeStateDir(f"{path} (above state_dir) belongs to {_who(st.st_uid)}, who could replace state_dir; "
                             f"expected a folder owned by root or {_who(me)}, or a state_dir elsewhere")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeStateDir(f"{path} (above state_dir) is writable by {_writers(st.st_mode)} (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}), who could replace state_dir; expected "
                             f"`chmod go-w {path}`, or a state_dir elsewhere")


def _writers(mode: int) -> str:
    return " and ".join(w for w, bit in (("its group", 0o020), ("others", 0o002)) if mode & bit)


def check(state_dir: Path, *, group_gid: int | None = None) -> Path:
    """Raise UnsafeStateDir unless state_dir (existing) is herder's; returns its resolved path."""
    if not hasattr(os, "geteuid"):   # Windows: the ACLs of %ProgramData% decide (docs/security.md)
        return Path(os.path.abspath(state_dir))
    me = os.geteuid()
    state_dir = Path(os.path.abspath(state_dir))
    for parent in state_dir.parents:
        _check_ancestor(parent, me)
    st = state_dir.lstat()
    if stat.S_ISLNK(st.st_mode):
        _check_ancestor(state_dir, me)   # the link itself: made by root or us
    real = state_dir.resolve()
    if real != state_dir:
        for parent in real.parents:
            _check_ancestor(parent, me)
    st = real.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStateDir(f"state_dir {real} is not a directory; expected a folder herder can own")
    if st.st_uid != me:
        raise UnsafeStateDir(f"state_dir {real} belongs to {_who(st.st_uid)}, not to {_who(me)} who runs herder; "
                             f"anything in it could steer herder. Expected `chown {me} {real}` (after checking "
                             "what is in it), or a state_dir of herder's own")
    bad = st.st_mode & 0o002 or (st.st_mode & 0o020 and (group_gid is None or st.st_gid != group_gid))
    if bad:
        raise UnsafeStateDir(f"state_dir {real} is writable by {_writers(st.st_mode)} (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}): they could plant a run.json naming any process "
                             f"or replace the socket. Expected `chmod go-w {real}`"
                             + (" (group write is allowed only for the socket_group)" if st.st_mode & 0o020 else ""))
    _check_entries(real, me)
    return real


def _check_entries(real: Path, me: int) -> None:
    try:
        names = os.listdir(real)
    except OSError as e:
        raise UnsafeStateDir(f"state_dir {real}: cannot list it: {e.strerror}") from None
    for name in names:
        if not name.startswith(ENTRIES):
            continue
        path = real / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeStateDir(f"{path} is a symlink; herder does not follow links in its state_dir. "
                                 f"Expected `rm {path}` (herder recreates what it needs)")
        if st.st_uid != me:
            raise UnsafeStateDir(f"{path} belongs to {_who(st.st_uid)}, not to {_who(me)} who runs herder; "
                                 f"expected `rm -r {path}` or `chown {me} {path}` after checking it")


def ensure(state_dir: Path, *, group_gid: int | None = None) -> Path:
    """Create state_dir when it is missing (0755 at most, after checking the folders above
    it), then check it (`check`); returns its resolved path."""
    state_dir = Path(os.path.abspath(state_dir))
    try:
        state_dir.lstat()
    except FileNotFoundError:
        missing = [state_dir, *(p for p in state_dir.parents if not os.path.lexists(p))]
        existing = missing[-1].parent
        if hasattr(os, "geteuid"):
            for parent in [existing, *existing.parents]:
                _check_ancestor(parent, os.geteuid())
        for folder in reversed(missing):   # each level 0755 at most, whatever the umask
            try:
                os.mkdir(folder, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise UnsafeStateDir(f"cannot create state_dir {state_dir}: {e.strerror}") from None
    except OSError as e:
        raise UnsafeStateDir(f"cannot use state_dir {state_dir}: {e.strerror}") from None
    return check(state_dir, group_gid=group_gid)


def state_tag(state_dir: Path) -> str:
    """A short stable name for a state_dir (its cgroup subtree and its instances' cookies carry it)."""
    import hashlib

    return hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:10]


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that refuses a symlink at the last component (ELOOP → OSError)."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, mode)
