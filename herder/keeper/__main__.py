"""`python -m herder.keeper [OPTIONS] [-- DECISION PROCESS ARGUMENTS]`: run a keeper.

Not a user command: `herder up` execs it (foreground and detached alike), a test harness
starts it attached to an in-process supervisor, and a keeper execs its successor with a
resume record. Options: --attached FD (the socket to the decision process that started
it), --ready-fd FD (`up -d`'s start-up pipe, for the first decision process), --resume FD
(a record of a previous keeper), --can-resume V (`herder upgrade`'s check of an install:
import this keeper and the decision process, say whether a record of version V is read;
prints "ok VERSION" and exits 0 when it is), --console (show every service's output as `name | line`;
the decision process's setup message may choose another output: herder.logs._stdio).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from herder.keeper.keeper import Keeper, Options

    opts = Options()
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            opts.dp_args = rest
            break
        if arg == "--can-resume" and rest:
            return can_resume(rest.pop(0))
        if arg == "--console":
            opts.console = "view"
        elif arg in ("--attached", "--ready-fd", "--resume") and rest:
            value = int(rest.pop(0))
            if arg == "--attached":
                opts.attached, opts.dp_fd = True, value
            elif arg == "--ready-fd":
                opts.ready_fd = value
            else:
                opts.resume_fd = value
        else:
            print(f"herder keeper: unknown argument {arg!r}", file=sys.stderr)
            return 2
    return Keeper(opts).run()


def can_resume(v: str) -> int:
    import importlib

    from herder import __version__
    from herder.keeper import resume

    for mod in ("herder.keeper.keeper", "herder.keeper.upgrade", "herder.keeper.trampoline", "herder.runtime.dp",
                "herder.cli.up", "herder.runtime.supervisor", "herder.control.component"):
        importlib.import_module(mod)     # a broken install fails here, with its traceback on stderr
    if not v.isdigit() or int(v) not in resume.ACCEPTS:
        print(f"herder {__version__} reads keeper records {sorted(resume.ACCEPTS)}, not {v!r}", file=sys.stderr)
        return 3
    print(f"ok {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
