"""The framer: lines across reads, long lines, partial last line, timestamps, JSON escaping."""

from __future__ import annotations

import base64
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from herder.keeper.trampoline import carry_in_file
from herder.logs._framing import Framer, rfc3339

TS = 1714564800.123  # 2024-05-01T12:00:00.123Z
STAMP = b"2024-05-01T12:00:00.123Z "


def framer(**kw: object) -> Framer:
    args = {"timestamps": True, "fmt": "text", "max_line": 16}
    args.update(kw)
    return Framer("web", "web.0", "stdout", **args)  # type: ignore[arg-type]


def feed_all(f: Framer, chunks: list[bytes], want: bool) -> tuple[bytes, list[bytes]]:
    out, lines = [], []
    for c in chunks:
        o, ls = f.feed(c, TS, want)
        out.extend(bytes(x) for x in o)
        lines.extend(ls)
    o, ls = f.flush(TS)
    return b"".join(out) + o, lines + ls


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(TS) == "2024-05-01T12:00:00.123Z"


def test_lines_spanning_reads_get_one_prefix_each() -> None:
    out, lines = feed_all(framer(), [b"hel", b"lo\nwor", b"ld\n"], True)
    assert out == STAMP + b"hello\n" + STAMP + b"world\n"
    assert lines == [b"hello", b"world"]


def test_long_line_is_split_not_dropped() -> None:
    out, lines = feed_all(framer(max_line=4), [b"abcdefghij\nxy\n"], True)
    assert lines == [b"abcd", b"efgh", b"ij", b"xy"]
    assert out.replace(STAMP, b"") == b"abcd\nefgh\nij\nxy\n"


def test_partial_last_line_is_flushed_at_exit() -> None:
    out, _lines = feed_all(framer(), [b"done\nno newline"], False)
    assert out == STAMP + b"done\n" + STAMP + b"no newline\n"


def test_raw_mode_is_byte_exact_including_binary() -> None:
    data = [bytes(range(256)) * 3, b"\xff\xfe\n", b"tail"]
    out, _ = feed_all(framer(timestamps=False), data, False)
    assert out == b"".join(data)


def test_json_escapes_non_utf8_and_keeps_the_bytes() -> None:
    out, _ = feed_all(framer(fmt="json"), [b'caf\xc3\xa9 "q"\n', b"x\xffy\n"], False)
    first, second = (json.loads(x) for x in out.splitlines())
    assert first == {"ts": "2024-05-01T12:00:00.123Z", "service": "web", "instance": "web.0", "stream": "stdout",
                     "line": 'café "q"'}
    assert second["line"] == "x\ufffdy" and base64.b64decode(second["line_b64"]) == b"x\xffy"


chunks = st.lists(st.binary(max_size=64).map(lambda b: b.replace(b"\r", b"\n")), max_size=12)


@settings(max_examples=300, deadline=None)
@given(chunks, st.integers(1, 40))
def test_fast_timestamp_path_equals_the_line_by_line_path(parts: list[bytes], max_line: int) -> None:
    fast, _ = feed_all(framer(max_line=max_line), parts, False)
    slow, lines = feed_all(framer(max_line=max_line), parts, True)
    assert fast == slow
    # every byte of the input is in the output, in order, once
    assert re.sub(rb"2024-05-01T12:00:00\.123Z ", b"", slow).replace(b"\n", b"") == b"".join(parts).replace(b"\n", b"")
    assert all(len(x) <= max_line for x in lines)


@settings(max_examples=200, deadline=None)
@given(chunks)
def test_raw_sampled_ring_lines_are_real_lines(parts: list[bytes]) -> None:
    f = framer(timestamps=False, max_line=10_000)
    _, lines = feed_all(f, parts, False)
    whole = b"".join(parts).split(b"\n")
    assert all(x in whole for x in lines)


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"\n")), max_size=30), st.booleans())
def test_whole_lines_keep_the_bytes_and_cut_only_at_line_ends(chunks: list[bytes], want: bool) -> None:
    """stderr = "merge" without timestamps: the file gets the program's bytes unchanged
    (nothing added, a last line without a newline included), each write ending at a line
    end unless a line outgrew max_line."""
    f = Framer("s", "s", "stdout", timestamps=False, fmt="text", max_line=16, whole_lines=True)
    assert f.whole and not f.raw
    out = []
    for c in chunks:
        bufs, _ = f.feed(c, 0.0, want)
        for b in bufs:
            b = bytes(b)
            assert b.endswith(b"\n") or len(b) - b.rfind(b"\n") - 1 >= 16, b
            out.append(b)
    last, lines = f.flush(0.0)
    assert b"".join(out) + last == b"".join(chunks)
    assert lines == ([last] if last else [])


def test_whole_lines_after_an_upgrade_write_the_restored_carry_once() -> None:
    """A keeper before whole-line framing had written a raw stream's unfinished line to the
    file already ("Enter password: " at a prompt); the new keeper, framing the same merged
    file into whole lines, writes only what follows, and its records have the whole line."""
    f = Framer("s", "s", "stdout", timestamps=False, fmt="text", max_line=64, whole_lines=True)
    f.carry, f.written = b"Enter password: ", 16
    assert f.held() == 0
    out, lines = f.feed(b"secret-ack\nnext", 0.0, True)
    assert b"".join(bytes(x) for x in out) == b"secret-ack\n" and lines == [b"Enter password: secret-ack"]
    assert f.held() == 4 and f.flush(0.0) == (b"next", [b"next"])


def test_whole_lines_give_consumers_every_piece_of_a_long_line() -> None:
    f = Framer("s", "s", "stdout", timestamps=False, fmt="text", max_line=4, whole_lines=True)
    out, lines = f.feed(b"abcdefghij\n", 0.0, True)
    assert out == [b"abcdefghij\n"] and lines == [b"abcd", b"efgh", b"ij"]


def test_what_of_a_carry_an_older_keeper_had_written() -> None:
    raw = {"timestamps": False, "format": "text", "marker": ""}
    stamped = {"timestamps": True, "format": "text", "marker": ""}
    legacy = {"specs": [raw, stamped], "carry": ["", ""]}
    assert carry_in_file(legacy, [b"abc", b"de"]) == [3, 0]      # raw: in the file; stamped: not
    assert carry_in_file({**legacy, "in_file": [1, 2]}, [b"abc", b"de"]) == [1, 2]
    assert carry_in_file({**legacy, "in_file": [9, -1]}, [b"abc", b"de"]) == [3, 0]   # never trusted past the carry
