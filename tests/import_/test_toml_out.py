"""The emitter is exact: whatever it writes, tomllib reads back the same values."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from herder.import_.draft import Draft, Table
from herder.import_.toml_out import comment, render

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalar = st.one_of(text, st.integers(-2**63, 2**63 - 1), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False))
value = st.one_of(scalar, st.lists(st.one_of(text, st.integers(0, 255)), max_size=5),
                  st.dictionaries(text, text, max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(text.filter(bool), value, max_size=8), st.dictionaries(text, text, max_size=6),
       st.lists(text, max_size=3))
def test_written_values_read_back_exactly(values: dict[str, Any], env: dict[str, str], notes: list[str]) -> None:
    table = Table(notes=notes, intro=notes)
    for k, v in values.items():
        table.set(k.replace(".", "_"), v, comment=k)
    if env:
        table.set("env", env)
    draft = Draft("test", header=notes)
    draft.services["svc"] = table
    back = tomllib.loads(render(draft))["services"]["svc"]
    assert back == {k.replace(".", "_"): v for k, v in values.items()} | ({"env": env} if env else {})


def test_dotted_keys_become_one_inline_table_in_order() -> None:
    t = Table()
    t.set("logs.stdout", "auto")
    t.set("restart", "never")
    t.set("logs.max_size", "1MB", comment="from stdout_logfile_maxbytes")
    d = Draft("x")
    d.services["a"] = t
    out = render(d)
    assert 'logs = { stdout = "auto", max_size = "1MB" }\nrestart = "never"' in out
    assert "# from stdout_logfile_maxbytes\nlogs =" in out


def test_comments_never_break_the_file() -> None:
    assert comment("a\nb\x00c\x7f") == "# a\\nb\\x00c\\x7f"
