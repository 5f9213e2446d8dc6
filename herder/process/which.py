"""Where a bare program name is found on a PATH string: `shutil.which`'s rule on POSIX.

Why not shutil itself: importing shutil imports bz2, lzma and zlib (~0.3 MB), and the
decision process, which checks the program of every spawn (herder.process.spawn) and of
every service when it reads the config (herder.config.machine), would hold them for its
whole life, idle included (issue 20's memory target; docs/performance.md). The rule is
short: the PATH entries in order (PATH="" finds nothing, an empty entry is the current
folder), the first `dir/name` that is not a folder and passes `os.access(mode)`.
"""

from __future__ import annotations

import os


def which(prog: str, path: str, mode: int = os.F_OK | os.X_OK) -> str | None:
    """The first match of the bare name `prog` on `path` (os.pathsep-separated), or None."""
    for d in path.split(os.pathsep) if path else ():
        name = os.path.join(d, prog)
        if os.access(name, mode) and not os.path.isdir(name):
            return name
    return None
