"""The arguments of a supervisor command read without argparse, when they are plain.

Why: argparse costs `herder status` ~8 ms of its ~40 ms budget (its import, gettext's
translation look-up and `locale` on the first message it formats, a parser built per
argument) although a status line is `status [-c FILE] [--socket S] [--json] [NAMES]`.
So a registry command whose words are all *plain* is read here, into the same namespace
argparse would give; anything else returns None and argparse reads it, as before: help,
an unknown or abbreviated option (`--jso`), an option's value that starts with `-`,
attached short values (`-n5`), `--`, names split by options, a wrong count or type.
Errors and help therefore always come from argparse, and tests/core/test_cli_quick.py
checks (hypothesis) that whatever this accepts, argparse parses the same way.

The rule for an argument's keywords is the registry's: `action="store_true"`, or a value
with optional `type` and `default`; positionals with nargs None, then at most one `*` or
`+` last. A command whose arguments use anything else is never read here.
"""

from __future__ import annotations

from types import SimpleNamespace

from herder.control.registry import COMMANDS, Arg

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

#: The arguments every supervisor command has (herder.cli adds them to each sub-parser too).
COMMON = (
    Arg(("-c", "--config"), {"metavar": "FILE", "help": "find the supervisor through this config's state_dir"}),
    Arg(("--socket",), {"metavar": "PATH", "help": "the supervisor's socket (default $HERDER_SOCKET, "
                                                   "else {state_dir}/herder.sock)"}),
    Arg(("--json",), {"action": "store_true", "help": "machine-readable output"}),
)
_PLAIN_KEYS = frozenset(("action", "type", "default", "metavar", "help", "nargs"))


def _dest(arg: Arg) -> str:
    """argparse's dest: the first long option without its dashes (- → _), else the first flag."""
    flag = next((f for f in arg.flags if f.startswith("--")), arg.flags[0])
    return flag.lstrip("-").replace("-", "_")


def parse(argv: Sequence[str]) -> SimpleNamespace | None:
    """The namespace argparse would make of `argv` (the words after `herder`), with
    `command`, `run` and `command_tail` set as herder.cli sets them; None when argv is not
    a plain registry command (argparse then reads it)."""
    if not argv or argv[0].startswith("-"):
        return None
    cli = next((c.cli for c in COMMANDS if c.cli is not None and argv[0] in (c.cli.name, *c.cli.aliases)), None)
    if cli is None:
        return None
    args = (*COMMON, *cli.args)
    if any(not _PLAIN_KEYS.issuperset(a.kw) or a.kw.get("action", "store_true") != "store_true" for a in args):
        return None
    options = {f: a for a in args if a.flags[0].startswith("-") for f in a.flags}
    positionals = [a for a in args if not a.flags[0].startswith("-")]
    if any(a.kw.get("nargs") not in (None, "*", "+") for a in positionals) or \
            any(a.kw.get("nargs") is not None for a in positionals[:-1]):
        return None
    ns: dict[str, Any] = {"command": argv[0], "run": cli.run, "command_tail": None}
    for a in args:
        if a.flags[0].startswith("-"):
            ns[_dest(a)] = False if "action" in a.kw else a.kw.get("default")
    words: list[str] = []
    block_ended = False      # names came and then an option: more names would be a second block
    i, n = 1, len(argv)
    while i < n:
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            if block_ended or word == "-":
                return None
            words.append(word)
            continue
        if words:
            block_ended = True
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = options.get(flag)
        if opt is None:
            return None
        if "action" in opt.kw:
            if eq:
                return None
            ns[_dest(opt)] = True
            continue
        if not eq:
            if i >= n or argv[i].startswith("-"):
                return None
            value, i = argv[i], i + 1
        convert = opt.kw.get("type", str)
        try:
            ns[_dest(opt)] = convert(value)
        except ValueError:
            return None
    for a in positionals:
        nargs = a.kw.get("nargs")
        if nargs is None:
            if not words:
                return None
            ns[_dest(a)], words = words[0], words[1:]
        else:
            if nargs == "+" and not words:
                return None
            ns[_dest(a)], words = words, []
    if words:
        return None
    return SimpleNamespace(**ns)
