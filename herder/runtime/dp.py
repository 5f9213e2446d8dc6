"""`python -m herder.runtime.dp`: the decision process, as the keeper starts it.

    python -m herder.runtime.dp --keeper-fd FD [--keeper-pid PID] --generation N [--fresh] [--ready-fd FD]
                                [-c CONFIG] [--socket-group G] [--[no-]console] [--quiet] [SERVICE …]

The keeper (herder.keeper) runs this process and restarts it when it dies. It first
shakes hands with the keeper (herder.runtime.keeper_link.handshake), which hands over
what a previous decision process left: the config it ran with (a restart never picks up
an edited file by surprise; `herder reload` does that), its state record, the live
children, the exits not yet taken, the fds it stored. A first start reads the config
file. `--fresh`: the keeper saw this process fail repeatedly, so the state record is
ignored and adoption goes by what the system says alone.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from herder.errors import HerderError

if TYPE_CHECKING:
    from herder.config import Config


@dataclass
class Args:
    keeper_fd: int = -1
    keeper_pid: int = 0         # the keeper (this process's parent when it started it)
    generation: int = 1
    fresh: bool = False
    ready_fd: int = -1
    config: str | None = None
    socket_group: str | None = None
    console: bool | None = None     # `herder up`'s --console / --no-console
    quiet: bool = False             # detached: events go to herder.log (JSON) only
    services: list[str] = field(default_factory=list)


_INTS = {"--keeper-fd": "keeper_fd", "--keeper-pid": "keeper_pid", "--generation": "generation",
         "--ready-fd": "ready_fd"}
_STRS = {"-c": "config", "--config": "config", "--socket-group": "socket_group"}
_FLAGS = {"--fresh": ("fresh", True), "--quiet": ("quiet", True), "--console": ("console", True),
          "--no-console": ("console", False)}


def _args(argv: list[str]) -> Args:
    """The arguments the keeper passes (herder.keeper.dproc, herder.cli.up.dp_args). Read by
    hand, not with argparse: argparse (with gettext, and shutil with bz2 and lzma, which
    its formatter imports) is ~0.6 MB held for the life of a process that reads a few
    options once (docs/performance.md). Anything else is an error, exit 2."""
    a = Args()
    seen: set[str] = set()
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            a.services += rest
            break
        if not arg.startswith("-") or arg == "-":
            a.services.append(arg)
            continue
        name, eq, value = arg.partition("=")
        seen.add(name)
        if name in _FLAGS and not eq:
            setattr(a, *_FLAGS[name])
            continue
        if name not in _INTS and name not in _STRS:
            _usage(f"unrecognized argument: {arg}")
        if not eq:
            if not rest:
                _usage(f"argument {name}: expected one argument")
            value = rest.pop(0)
        if name in _STRS:
            setattr(a, _STRS[name], value)
            continue
        try:
            setattr(a, _INTS[name], int(value))
        except ValueError:
            _usage(f"argument {name}: invalid int value: {value!r}")
    if "--keeper-fd" not in seen:
        _usage("the following arguments are required: --keeper-fd")
    return a


def _usage(problem: str) -> NoReturn:
    print(f"usage: python -m herder.runtime.dp --keeper-fd FD [OPTIONS] [SERVICE …]\n"
          f"herder-decision-process: error: {problem}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str]) -> int:
    args = _args(argv)
    from herder.runtime.keeper_link import from_fd, handshake

    link = from_fd(args.keeper_fd, args.keeper_pid)
    ready_fd = args.ready_fd
    if ready_fd >= 0:
        os.set_inheritable(ready_fd, False)
    link.ready_fd = ready_fd      # a keeper this process becomes passes it on (herder.runtime.keeper_lost)
    told = False

    def ready() -> None:
        nonlocal told
        if ready_fd >= 0 and not told:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
        told = True
        link.ready_fd = -1

    try:
        welcome = handshake(link)
        cfg = _config(args, welcome)
        from herder.cli.up import supervise

        return supervise(cfg, args.services, socket_group=args.socket_group, ready=ready, console=args.console,
                         keeper=link, welcome=welcome, fresh=args.fresh, print_events=not args.quiet)
    except HerderError as e:
        msg = str(e).replace("\n", " ") if ready_fd >= 0 else str(e)
        print(f"herder: {msg}", file=sys.stderr, flush=True)
        if ready_fd >= 0 and not told:
            prefix = "config: " if e.exit_code == 2 else ""
            os.write(ready_fd, f"error: {prefix}{msg}\n".encode())
            told = True
        return e.exit_code
    except (ConnectionError, TimeoutError) as e:
        if link.peer_dead():
            _take_over(args, getattr(e, "partial", None) or {})
        print(f"herder: lost the keeper at start-up: {e}", file=sys.stderr, flush=True)
        return 1


def _take_over(args: Args, partial: dict[str, Any]) -> None:
    """The keeper died while this process started up: become the keeper from what it had
    handed over (its state record, children, exits, pipes, stored fds; nothing at all if it
    died before its welcome: the next decision process then adopts by what the system
    says). Returns only if that is not possible (said on stderr)."""
    from herder.runtime import keeper_lost

    try:
        cfg = _config(args, partial)
    except (HerderError, SystemExit, OSError, ValueError) as e:
        print(f"herder: lost the keeper at start-up and cannot read the config to replace it: {e}",
              file=sys.stderr, flush=True)
        return
    groups: dict[str, tuple[int, list[int], list[dict[str, Any]]]] = {}
    for rec, fd in partial.get("pipe_list") or []:
        _, kept, specs = groups.setdefault(str(rec["name"]), (int(rec["run"]), [], []))
        kept.append(fd)
        specs.append(rec.get("spec") or {})
    pipes = [(name, run, kept, specs) for name, (run, kept, specs) in groups.items()]
    early = [m for m, _ in partial.get("early") or [] if m.get("t") == "exit"]
    from herder.cli.up import dp_args

    args_ = dp_args(args.config, args.services, args.socket_group, args.console, not args.quiet)
    record, fds = keeper_lost.from_welcome(partial, str(cfg.state_dir), args_,
                                           "view" if args.console else "off", pipes,
                                           dict(partial.get("stored_fds") or {}), early, [])
    msg = (f"herder: the keeper died while this decision process (pid {os.getpid()}) started up; "
           "it becomes the keeper, from what the keeper had handed over"
           + ("" if partial.get("t") == "welcome" else " (nothing: the next one adopts by what the system says)"))
    print(msg, file=sys.stderr, flush=True)
    record["notes"].append({"t": "event", "instance": "", "kind": "keeper_lost", "message": msg, "data": {}})
    try:
        keeper_lost.become_keeper(record, fds, args.ready_fd)
    except OSError as e:
        print(f"herder: cannot exec a new keeper: {e}", file=sys.stderr, flush=True)


def _config(args: Args, welcome: dict[str, Any]) -> Config:
    text = welcome.get("config")
    if isinstance(text, str) and not args.fresh:
        from herder.config import from_record

        return from_record(json.loads(text))
    from herder.cli.up import load_for_up

    cfg = load_for_up(args.config, args.services)
    if isinstance(cfg, int):
        raise SystemExit(cfg)
    return cfg


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
