"""herder.control.jsonload decodes exactly what json.loads decodes, and refuses what it refuses
(the CLI reads every answer of the supervisor with it)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herder.control import jsonload

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                          max_size=4), max_leaves=20)


def _same(data: bytes | str) -> None:
    try:
        want: Any = json.loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            jsonload.loads(data)
        return
    got = jsonload.loads(data)
    assert repr(got) == repr(want)   # nan, and 1 vs 1.0 vs True, compare by repr


@given(VALUES, st.booleans(), st.sampled_from([None, 1]))
def test_a_document_decodes_as_json_loads_decodes_it(value: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    for data in (text, text.encode(), f" \n{text}\n\t", (text + "\n").encode()):
        assert jsonload.loads(data) == json.loads(data)


@given(st.text(alphabet='[]{}",:.-+eE0123456789 \t\n\\ntrufalsNIiy\u00e9\ufeff', max_size=30))
def test_any_text_decodes_or_fails_as_json_loads_does(text: str) -> None:
    _same(text)
    _same(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("data", [b"", b"  ", b"[1,", b"[1] x", b"{\"a\" 1}", b"\xff", "\ufeff[1]", b"\xef\xbb\xbf[1]",
                                  b'"\x01"', b"[1]\n[2]", b"nul",
                                  '["\u00e9"]'.encode("utf-16-le"), '{"a": 1}'.encode("utf-32")])
def test_edge_cases_match_json_loads(data: bytes | str) -> None:
    _same(data)


def test_the_constants_json_loads_accepts() -> None:
    got = jsonload.loads(b"[NaN, Infinity, -Infinity, 1e400]")
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, math.inf]


def test_malformed_input_is_a_value_error_in_a_process_that_never_imported_json() -> None:
    """The C decoder builds its error from json.decoder only when that is already imported
    (else a SystemError): here nothing imported json before."""
    probe = ("import sys\nfrom herder.control import jsonload\nassert 'json' not in sys.modules\n"
             "for bad in (b'{\"ok\"', b'[1,', b'', b'[1] x', b'\\xff'):\n"
             "    try:\n        jsonload.loads(bad)\n    except ValueError:\n        pass\n"
             "    else:\n        raise SystemExit(f'no error for {bad!r}')\n"
             "assert jsonload.loads(b'[1]') == [1]\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout == "ok\n", out
