"""`herder status -c FILE` reads only `[herder]` when it can: it must find the same state_dir
as parsing the whole file would (the fast path is a cost cut, never a different answer)."""

from __future__ import annotations

import os
import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herder.control.client import _config_text, _herder_table, discover_socket

SERVICES = "".join(f'[services.s{i}]\ncommand = ["sleep", "1"]\n' for i in range(3))
CASES = [
    '[herder]\nstate_dir = "s"\n' + SERVICES,
    SERVICES + '[herder]\nstate_dir = "s"\n',
    'herder.state_dir = "t"\n' + SERVICES,
    'herder = { state_dir = "u" }\n' + SERVICES,
    '[herder]\nstate_dir = """\n[x]\n"""\n' + SERVICES,
    SERVICES,
    '[herder] # the supervisor\nstate_dir = "v"\n[services.a]\ncommand = ["echo", "state_dir"]\n',
    '[ herder ]\ncgroups = false\n' + SERVICES,
    '[herder.extra]\nstate_dir = "w"\n',
    "[herder]\nstate_dir = 'lit' # literal\n" + SERVICES,
    '[herder]\nstate_dir = "esc\\\\aped"\n' + SERVICES,
]


def _state_dir(raw: dict[str, Any]) -> Any:
    """What discover_socket takes from a parsed config (the rest of [herder] it does not read:
    a `[herder.sub]` table after `[herder]` is outside the cut, and need not be seen)."""
    section = raw.get("herder")
    return section.get("state_dir") if isinstance(section, dict) else None


def _herder(text: str) -> Any:
    try:
        return _state_dir(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return "error"


def _fast(text: str) -> Any:
    try:
        return _state_dir(_herder_table(text))
    except tomllib.TOMLDecodeError:
        return "error"


@pytest.mark.parametrize("text", CASES)
def test_the_herder_table_alone_gives_the_state_dir_the_whole_file_gives(text: str) -> None:
    assert _fast(text) == _herder(text)


@given(st.lists(st.sampled_from([
    "[herder]", "[services.a]", '[services.b]\ncommand = ["x"]', 'state_dir = "a"', 'state_dir = "b"',
    '"""', "x = 1", "[herder.sub]", 'herder.state_dir = "c"', "# [herder]", '"[herder]"',
    "state_dir = 'lit'", 'state_dir = "a\\tb"', 'state_dir="d" # note', '  state_dir = ""', "state_dir = 5",
    "'''", 'state_dir = "e" x', 'state_dir.x = "f"', 'state_dir = "g\x01"',
    "[herder]\r", 'state_dir = "h"\r', "\t[ herder ]\t# x", "state_dir\t=\t'i'", 'state_dir = "a\\"b"',
    "[[herder]]", "  [services.c]", 'state_dir = "j" # "k"', "state_dir = 'l\\m'", 'state_dir = "n',
]), max_size=8))
def test_any_arrangement_of_tables_and_keys_gives_the_same_state_dir(parts: list[str]) -> None:
    text = "\n".join(parts) + "\n"
    full = _herder(text)
    if full == "error":
        return   # the whole file is broken: the fast path may answer (a config being edited)
    assert _fast(text) == full


def test_discover_socket_reads_state_dir_from_the_table(tmp_path: Any) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_text('[herder]\nstate_dir = "st"\n' + SERVICES)
    assert discover_socket(None, str(cfg)) == os.path.join(os.path.realpath(tmp_path), "st", "herder.sock")


@pytest.mark.parametrize("raw", [b'[herder]\r\nstate_dir = "a"\r\n', b'\xef\xbb\xbf[herder]\nstate_dir = "b"\n',
                                 b'[herder]\rstate_dir = "c"\r', '[herder]\nstate_dir = "d\u00e9"\n'.encode()])
def test_the_config_reads_as_text_mode_with_utf_8_sig_reads_it(tmp_path: Any, raw: bytes) -> None:
    cfg = tmp_path / "herder.toml"
    cfg.write_bytes(raw)
    with open(cfg, encoding="utf-8-sig") as f:
        assert _config_text(str(cfg)) == f.read()
    assert _fast(_config_text(str(cfg))) == _herder(_config_text(str(cfg)))
