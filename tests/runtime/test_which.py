"""herder.process.which finds a bare program name on a PATH as shutil.which does on POSIX
(shutil is kept off the decision process's imports): checked against shutil.which on real
files: executable, not executable, a folder with the x bit, a symlink, empty PATH entries,
PATH="" and the F_OK mode of herder.config.machine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from herder.process.which import which


@pytest.fixture()
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "plain").write_text("")                  # not executable
    (b / "plain").write_text("#!/bin/sh\n")
    (b / "plain").chmod(0o755)
    (a / "prog").mkdir()                          # a folder with the x bit comes first
    (c / "prog").write_text("#!/bin/sh\n")
    (c / "prog").chmod(0o755)
    (c / "link").symlink_to(c / "prog")
    (c / "dangling").symlink_to(c / "nothing")
    monkeypatch.chdir(c)                          # an empty PATH entry is the current folder
    return [str(a), str(b), str(c)]


@pytest.mark.parametrize("name", ["plain", "prog", "link", "dangling", "nothing", "sh"])
@pytest.mark.parametrize("mode", [os.F_OK | os.X_OK, os.F_OK])
def test_same_answer_as_shutil_which(dirs: list[str], name: str, mode: int) -> None:
    for path in (os.pathsep.join(dirs), os.pathsep.join(reversed(dirs)), "", os.pathsep,
                 os.pathsep.join(["", dirs[0]]), os.pathsep.join([dirs[0], dirs[0], "/nonexistent"]), "/bin:/usr/bin"):
        assert which(name, path, mode) == shutil.which(name, mode=mode, path=path), (name, path)
