"""A plan: the files an install writes and the commands it runs, in order.

Every manager module builds a Plan instead of acting, so that ``--dry-run`` prints
exactly what a real run would do (interface.md: ``# file: PATH`` followed by the exact
content, ``# run: COMMAND``) and tests compare plans without touching the machine.
``execute`` is the only effectful part; it stops at the first failing step and says
which one, so a failure names the command and the manager's own message.

Rollback (opt-in, used by the Windows installer): a plan may mark steps as undoable
(an API call with its inverse, a file write whose old content is kept) up to a
``commit()`` point. When a step before that point fails, the undoable steps already done
are undone in reverse order, so a half-way failure leaves the machine as it was; the
error says whether the rollback was complete. Steps after the commit (starting the
service) are not undone: the install itself succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from herder.errors import HerderError
from herder.store.atomic import write_atomic


class InstallError(HerderError):
    """An install, uninstall or control step failed; nothing after it was done."""


@dataclass(frozen=True)
class WriteFile:
    """A file written atomically. ``undoable``: a rollback puts the old content back."""

    path: str
    content: str
    mode: int = 0o644
    undoable: bool = False


@dataclass(frozen=True)
class Remove:
    path: str


@dataclass(frozen=True)
class Run:
    """A command. ``check=False``: a failure is expected sometimes and is not an error."""

    argv: tuple[str, ...]
    check: bool = True


@dataclass(frozen=True)
class Call:
    """An API call (pywin32) shown as its command-line equivalent (``sc.exe …``).

    ``name`` is what an error calls it (the sc line, else the API call); ``fn`` may
    return a note to print (e.g. "this SCM does not support …; skipped"); ``undo``
    reverses it during a rollback.
    """

    shown: str
    fn: Callable[[], str | None] = field(compare=False)
    name: str = ""
    undo: Callable[[], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Commit:
    """The end of the part of a plan that is rolled back on failure."""


Step = WriteFile | Remove | Run | Call | Commit


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)    # what changed, hints; printed before acting
    windows: bool = False                              # show removals as `del` instead of `rm -f`

    def write(self, path: str | Path, content: str, mode: int = 0o644, *, undoable: bool = False) -> None:
        self.steps.append(WriteFile(str(path), content, mode, undoable))

    def remove(self, path: str | Path) -> None:
        self.steps.append(Remove(str(path)))

    def run(self, *argv: str, check: bool = True) -> None:
        self.steps.append(Run(tuple(argv), check))

    def call(self, shown: str, fn: Callable[[], str | None], *, name: str = "",
             undo: Callable[[], None] | None = None) -> None:
        self.steps.append(Call(shown, fn, name or shown, undo))

    def commit(self) -> None:
        self.steps.append(Commit())

    def dry_run(self) -> str:
        """The exact text `--dry-run` prints."""
        out: list[str] = []
        for s in self.steps:
            if isinstance(s, WriteFile):
                out.append(f"# file: {s.path}\n")
                out.append(s.content if s.content.endswith("\n") else s.content + "\n")
            elif isinstance(s, Remove):
                out.append(f'# run: del /f "{s.path}"\n' if self.windows else f"# run: rm -f {shlex.quote(s.path)}\n")
            elif isinstance(s, Run):
                out.append(f"# run: {show_command(s.argv, self.windows)}\n")
            elif isinstance(s, Call) and s.shown:  # an API call with no command-line form is done, not printed
                out.append(f"# run: {s.shown}\n")
        return "".join(out)


def show_command(argv: tuple[str, ...], windows: bool = False) -> str:
    """One command line as a user would type it (cmd.exe quoting on Windows)."""
    if windows:
        return subprocess.list2cmdline(list(argv))
    return shlex.join(argv)


Runner = Callable[[tuple[str, ...]], "subprocess.CompletedProcess[str]"]


def run_command(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """The default runner (the CLI, never the supervisor process: no reaper race here)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{shlex.join(argv)}: no answer within 120s")


def execute(plan: Plan, runner: Runner = run_command, say: Callable[[str], None] = print) -> None:
    """Carry out the plan; raise InstallError naming the first step that failed.

    Before the plan's ``Commit``, a failure first undoes the undoable steps already done.
    """
    undo: list[tuple[str, Callable[[], None]]] = []
    for s in plan.steps:
        if isinstance(s, Commit):
            undo.clear()
            continue
        try:
            done = _do(s, runner, say)
        except InstallError as e:
            if not undo:
                raise
            raise InstallError(f"{e}; {_roll_back(undo)}") from None
        if done is not None:
            undo.append(done)


def _do(s: Step, runner: Runner, say: Callable[[str], None]) -> tuple[str, Callable[[], None]] | None:
    """One step; returns its (name, undo) when it can be undone."""
    if isinstance(s, WriteFile):
        path = Path(s.path)
        old = _old_content(path) if s.undoable else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, s.content.encode(), s.mode)
        except OSError as e:
            raise InstallError(f"cannot write {path}: {e.strerror or e}") from None
        return (f"restore {path}", lambda: _restore(path, old, s.mode)) if s.undoable else None
    if isinstance(s, Remove):
        with contextlib.suppress(FileNotFoundError):
            try:
                os.unlink(s.path)
            except IsADirectoryError:
                os.rmdir(s.path)
        return None
    if isinstance(s, Run):
        res = runner(s.argv)
        if res.returncode != 0 and s.check:
            why = (res.stderr or res.stdout or "").strip()
            raise InstallError(f"`{show_command(s.argv)}` failed (exit {res.returncode})" + (f": {why}" if why else ""))
        return None
    assert isinstance(s, Call)
    try:
        note = s.fn()
    except HerderError:
        raise
    except Exception as e:  # noqa: BLE001 - any step's failure becomes an InstallError naming the step
        raise InstallError(f"`{s.name or s.shown}` failed: {describe_error(e)}") from None
    if note:
        say(note)
    return (s.name or s.shown, s.undo) if s.undo is not None else None


def _old_content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _restore(path: Path, old: bytes | None, mode: int) -> None:
    if old is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        write_atomic(path, old, mode)


def _roll_back(undo: list[tuple[str, Callable[[], None]]]) -> str:
    """Undo in reverse; the sentence that ends the error message."""
    failed = []
    for name, fn in reversed(undo):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a rollback step's failure is reported, the rest still run
            failed.append(f"`{name}`: {describe_error(e)}")
    if failed:
        return "the rollback was incomplete (" + "; ".join(failed) + "): fix that by hand"
    return "rolled back: nothing was changed"


def describe_error(e: BaseException) -> str:
    """pywintypes.error (winerror, funcname, strerror) as `Func: text (error N)`; others as str()."""
    code, func, text = getattr(e, "winerror", None), getattr(e, "funcname", None), getattr(e, "strerror", None)
    if isinstance(code, int) and text:
        hint = "; run it from an elevated prompt (as Administrator)" if code == _ERROR_ACCESS_DENIED else ""
        return f"{func + ': ' if func else ''}{str(text).rstrip('.')} (error {code}){hint}"
    return str(e) or type(e).__name__


_ERROR_ACCESS_DENIED = 5
