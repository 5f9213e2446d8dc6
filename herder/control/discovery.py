"""Finding a running supervisor when its config does not say where it keeps its state.

Why an index: a supervisor started with $HERDER_STATE_DIR (exported in one shell, or the
Environment= of a unit written by `herder install --system`) keeps its socket where a later
`herder status -c CONFIG` from another shell cannot guess it. So, while it runs, each
supervisor notes its socket in a per-user runtime directory under a name derived from the
config's real path, the way systemd keeps runtime state under /run and $XDG_RUNTIME_DIR:
`/run/herder` for root, else `$XDG_RUNTIME_DIR/herder`, else `/tmp/herder-UID`. That
directory is trusted only when it is ours alone (our uid, not group/world-writable); a
note is believed only while a supervisor holds the lock of the state directory it names.

A note is written only once the supervisor holds its state directory's lock and listens
(its `ready` moment), and removed only by the supervisor whose socket it names: a second
`herder up` that is refused (another herder holds the lock) never touches the first's note.

The install record (`herder install`) is the fallback for an installed supervisor that is
not running, and the reason the "not running" advice names its service manager rather than
`herder up -d`, which would start a second supervisor beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat

from herder.errors import HerderError, NotRunning

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from typing import Any


def _index_dir() -> str:
    uid = os.geteuid()
    if uid == 0:
        return "/run/herder"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "herder") if runtime else f"/tmp/herder-{uid}"


def _trusted(base: str) -> bool:
    try:
        st = os.lstat(base)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def index_file(config: str) -> str | None:
    """Where a supervisor running `config` (a real path) notes its socket; None when the
    index directory exists but is not ours alone (then it is never read or written)."""
    base = _index_dir()
    if os.path.lexists(base) and not _trusted(base):
        return None
    return os.path.join(base, hashlib.sha256(config.encode()).hexdigest()[:24])


def indexed_socket(config: str) -> str | None:
    """The socket noted for `config` by a supervisor that still holds its state directory."""
    from pathlib import Path

    from herder.store.lock import holder

    f = index_file(config)
    if f is None:
        return None
    try:
        with open(f, encoding="utf-8") as fh:
            sock = fh.read(4096).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not os.path.isabs(sock) or holder(Path(os.path.dirname(sock))) is None:
        return None   # a note left by a herder killed with -9: nobody holds that state dir any more
    return sock


class SocketNote:
    """One supervisor's note in the index: `write()` once it holds the lock and listens,
    `remove()` when it ends (only if the note is still its own)."""

    def __init__(self, config: str, sock: str) -> None:
        self.config, self.sock = config, sock
        self.path: str | None = None

    def write(self) -> None:
        path = index_file(self.config)
        if path is None:
            return
        base = os.path.dirname(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(base, mode=0o700, exist_ok=True)
            if not _trusted(base):   # created by someone else in between: leave it alone
                return
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.sock + "\n")
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        self.path = path

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                mine = f.read(4096).strip() == self.sock
            if mine:
                os.unlink(self.path)
        except (OSError, UnicodeDecodeError):
            pass
        self.path = None


def installed_record(config: str | None = None) -> Any:
    """herder's own install record (`herder install`, an InstallSpec) when it runs `config`
    (any config when None); None when herder is not installed or the record is unreadable.
    Only asked when nothing answers where the config points (the platform code is heavy)."""
    from herder.platform import installer

    try:
        rec = installer.read_record(installer.make_host(None), "herder")
    except (HerderError, OSError, ValueError):
        return None
    if rec is None or (config is not None and config not in rec.service.command):
        return None
    return rec


def installed_state_dir(config: str) -> str | None:
    """Where the supervisor installed for `config` keeps its state (the HERDER_STATE_DIR of
    `herder install --system`), so `herder status -c CONFIG` finds it from any shell."""
    rec = installed_record(config)
    sd = rec.state_dir if rec is not None else None
    return sd if isinstance(sd, str) else None


def not_running(sock: str) -> NotRunning:
    """The "nobody answers" error, with advice that never starts a second supervisor: a
    herder holding the state directory's lock is named; an installed one is started by its
    service manager; only when neither exists is `herder up -d` suggested."""
    from pathlib import Path

    from herder.store.lock import holder

    state_dir = os.path.dirname(sock)
    pid = holder(Path(state_dir))
    if pid is not None:
        return NotRunning(f"herder (pid {pid if pid > 0 else '?'}) holds {state_dir} but does not answer on {sock}; "
                          f"it may be starting or stuck: see {os.path.join(state_dir, 'herder.log')}")
    rec = installed_record()
    if rec is not None and rec.state_dir in (state_dir, None):
        from herder.platform.installer import native_manager

        how = "`herder service start herder`"
        if native_manager() == "systemd":
            how = f"`systemctl{'' if rec.scope == 'system' else ' --user'} start herder` (or {how})"
        return NotRunning(f"herder is not running (no supervisor answers on {sock}); it is installed as a "
                          f"service: start it with {how}")
    return NotRunning(f"herder is not running (no supervisor answers on {sock}); start it with `herder up -d`")
