"""sd_notify datagram parsing (herder/core/sdnotify.py)."""

from __future__ import annotations

import pytest

from herder.core.sdnotify import MAX_DATAGRAM, Garbage, Message, parse


def test_several_assignments_in_one_datagram() -> None:
    assert parse(b"READY=1\nSTATUS=Gunicorn arbiter booted") == [
        Message("READY", "1"), Message("STATUS", "Gunicorn arbiter booted")]


def test_trailing_and_blank_lines_and_equals_in_values() -> None:
    assert parse(b"STATUS=a=b\n\nMAINPID=42\n") == [Message("STATUS", "a=b"), Message("MAINPID", "42")]


def test_unknown_variables_are_kept_for_the_runtime_to_ignore() -> None:
    assert parse(b"FDSTORE=1") == [Message("FDSTORE", "1")]


@pytest.mark.parametrize("data", [
    b"", b"\n\n", b"hello", b"READY", b"=1", b"ready=1", b"MAINPID=abc", b"EXTEND_TIMEOUT_USEC=-5",
    b"ERRNO=x", b"\xff\xfe", b"READY=1\0", b"STATUS=ok\nnot an assignment",
])
def test_garbage(data: bytes) -> None:
    with pytest.raises(Garbage):
        parse(data)


def test_oversized() -> None:
    with pytest.raises(Garbage, match="oversized"):
        parse(b"STATUS=" + b"x" * MAX_DATAGRAM)
