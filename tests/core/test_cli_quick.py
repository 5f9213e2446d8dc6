"""herder.cli.quick reads plain supervisor commands without argparse: whatever it accepts,
argparse (herder.cli.parser, the parser users get help and errors from) must read the same
way, and whatever argparse refuses it must leave to argparse. Checked on argument lists
drawn from each command's own flags, names and awkward words (hypothesis)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from herder.cli import quick
from herder.cli.parser import build
from herder.control.registry import COMMANDS

NAMES = sorted({n for c in COMMANDS if c.cli is not None for n in (c.cli.name, *c.cli.aliases)})
FLAGS = sorted({f for c in COMMANDS if c.cli is not None for a in (*quick.COMMON, *c.cli.args)
                for f in a.flags if f.startswith("-")})
WORDS = ["web", "web.0", "all", "HUP", "5", "1.5", "x y", "", "-", "--", "-5", "--jso", "-n5", "-fn", "-h",
         "--help", "--socket=/s", "--json=1", "-c=f", "--timeout=2", "--limit=x", "status", "--nope"]


def argparse_reads(argv: list[str]) -> dict[str, Any] | None:
    """vars() of argparse's namespace, or None when it refuses (exit 2) or prints help (exit 0)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            ns = build(argv[0] if argv else None).parse_args(argv)
    except SystemExit:
        return None
    return {**vars(ns), "command_tail": None}


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(NAMES), st.lists(st.sampled_from(FLAGS + WORDS), max_size=7))
def test_what_quick_reads_argparse_reads_the_same(command: str, words: list[str]) -> None:
    argv = [command, *words]
    mine = quick.parse(argv)
    theirs = argparse_reads(argv)
    if mine is not None:
        assert theirs is not None, f"quick read {argv} but argparse refuses it"
        assert vars(mine) == theirs


def test_the_everyday_commands_are_read_quickly() -> None:
    """The forms the fast path is for (tests above prove they mean what argparse says)."""
    for argv in (["status"], ["status", "--socket", "/s"], ["status", "-c", "herder.toml", "--json", "web"],
                 ["restart", "web", "api", "--no-wait"], ["logs", "-n", "20", "web"], ["events", "--since=5m"],
                 ["signal", "HUP", "web", "--tree"]):
        ns = quick.parse(argv)
        assert ns is not None and vars(ns) == argparse_reads(argv), argv
    for argv in (["status", "--jso"], ["status", "-h"], ["up"], ["logs", "-n5"], ["status", "a", "--json", "b"],
                 ["logs", "-n", "x"], ["signal"]):
        assert quick.parse(argv) is None, argv

