"""The decision process reads the keeper's arguments without argparse (herder.runtime.dp:
argparse, gettext and shutil are memory held for its whole life). What the keeper passes
(herder.keeper.dproc's prefix, herder.cli.up.dp_args's options) must read exactly as the
argparse parser it replaced read it (hypothesis), and what that parser refused is still
refused with exit 2."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herder.cli.up import dp_args
from herder.runtime import dp


def argparse_parser() -> argparse.ArgumentParser:
    """The decision process's parser before it was read by hand (herder.runtime.dp, session 25)."""
    p = argparse.ArgumentParser(prog="herder-decision-process")
    p.add_argument("--keeper-fd", type=int, required=True)
    p.add_argument("--keeper-pid", type=int, default=0)
    p.add_argument("--generation", type=int, default=1)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--ready-fd", type=int, default=-1)
    p.add_argument("-c", "--config")
    p.add_argument("--socket-group")
    p.add_argument("--console", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("services", nargs="*")
    return p


NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[0-9])?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(fd=st.integers(0, 1000), pid=st.integers(1, 1 << 22), gen=st.integers(1, 99), fresh=st.booleans(),
       ready=st.one_of(st.none(), st.integers(0, 1000)), config=st.one_of(st.none(), st.just("/etc/h erder.toml")),
       services=st.lists(NAME, max_size=4), group=st.one_of(st.none(), NAME),
       console=st.sampled_from([None, True, False]), print_events=st.booleans())
def test_what_the_keeper_passes_reads_as_argparse_read_it(fd: int, pid: int, gen: int, fresh: bool, ready: int | None,
                                                           config: str | None, services: list[str], group: str | None,
                                                           console: bool | None, print_events: bool) -> None:
    argv = ["--keeper-fd", str(fd), "--keeper-pid", str(pid), "--generation", str(gen),
            *dp_args(config, services, group, console, print_events)]
    if fresh:
        argv.append("--fresh")
    if ready is not None:
        argv += ["--ready-fd", str(ready)]
    assert dataclasses.asdict(dp._args(argv)) == vars(argparse_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [[], ["-c", "x"], ["--keeper-fd"], ["--keeper-fd", "x"],
                                  ["--keeper-fd", "3", "--nope"], ["--keeper-fd", "3", "--generation"],
                                  ["--keeper-fd", "3", "--fresh=1"], ["--keeper-fd", "--5"],
                                  ["--keeper-fd=3", "--generation=x"], ["--keeper-fd", "\u00b2"]])
def test_what_argparse_refused_exits_2(argv: list[str]) -> None:
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as old:
        argparse_parser().parse_args(argv)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as new:
        dp._args(argv)
    assert old.value.code == new.value.code == 2
    assert "herder-decision-process: error:" in err.getvalue()


def test_option_equals_value_and_services_before_the_options() -> None:
    a = dp._args(["web", "--keeper-fd=7", "--config=/h.toml", "db"])
    assert (a.keeper_fd, a.config, a.services) == (7, "/h.toml", ["web", "db"])
