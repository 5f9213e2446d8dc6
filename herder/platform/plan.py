"""A plan: the files an install writes and the commands it runs, in order.

Every manager module builds a Plan instead of acting, so that ``--dry-run`` prints
exactly what a real run would do (interface.md: ``# file: PATH`` followed by the exact
content, ``# run: COMMAND``) and tests compare plans without touching the machine.
``execute`` is the only effectful part; it stops at the first failing step and says
which one, so a failure names the command and the manager's own message.
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
    path: str
    content: str
    mode: int = 0o644


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
    """An API call (pywin32) shown as its command-line equivalent (``sc.exe …``)."""

    shown: str
    fn: Callable[[], None] = field(compare=False)


Step = WriteFile | Remove | Run | Call


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)    # what changed, hints; printed before acting
    windows: bool = False                              # show removals as `del` instead of `rm -f`

    def write(self, path: str | Path, content: str, mode: int = 0o644) -> None:
        self.steps.append(WriteFile(str(path), content, mode))

    def remove(self, path: str | Path) -> None:
        self.steps.append(Remove(str(path)))

    def run(self, *argv: str, check: bool = True) -> None:
        self.steps.append(Run(tuple(argv), check))

    def call(self, shown: str, fn: Callable[[], None]) -> None:
        self.steps.append(Call(shown, fn))

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
            elif s.shown:  # an API call with no command-line form is done, not printed
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


def execute(plan: Plan, runner: Runner = run_command) -> None:
    """Carry out the plan; raise InstallError naming the first step that failed."""
    for s in plan.steps:
        if isinstance(s, WriteFile):
            path = Path(s.path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, s.content.encode(), s.mode)
            except OSError as e:
                raise InstallError(f"cannot write {path}: {e.strerror or e}") from None
        elif isinstance(s, Remove):
            with contextlib.suppress(FileNotFoundError):
                try:
                    os.unlink(s.path)
                except IsADirectoryError:
                    os.rmdir(s.path)
        elif isinstance(s, Run):
            res = runner(s.argv)
            if res.returncode != 0 and s.check:
                why = (res.stderr or res.stdout or "").strip()
                raise InstallError(f"`{show_command(s.argv)}` failed (exit {res.returncode})"
                                   + (f": {why}" if why else ""))
        else:
            try:
                s.fn()
            except HerderError:
                raise
            except Exception as e:  # noqa: BLE001 - pywin32 raises pywintypes.error; name the call
                raise InstallError(f"`{s.shown}` failed: {e}") from None
