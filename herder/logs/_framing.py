"""Turning a stream's raw chunks into records: lines, timestamps, JSON.

Why a per-stream framer with a carry: a pipe read returns whatever the child wrote, cut
anywhere, so a line can span reads. The framer keeps the unfinished tail (the carry) and
emits only whole lines, except that a line longer than `max_line` is emitted in pieces
(split, never dropped) and the last unfinished line is emitted by `flush()` at exit.

Why `bytes.split`/`join` and one timestamp per chunk: a chunk is read at one instant, so
every line in it gets that instant (ms resolution), and the prefix is inserted with one
C-level join instead of a Python loop per line; that is what keeps the timestamped path
at hundreds of MiB/s. The raw path (text, no timestamps) does not split at all unless a
consumer (ring, follower, forwarder) needs lines.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, NamedTuple

_ESC = json.encoder.encode_basestring
RING_SAMPLE = 8192  # raw path with no line consumer: lines for the ring come from this tail of a chunk


class Record(NamedTuple):
    """One line as herder saw it: wall-clock time, instance, stream, bytes without newline."""

    ts: float
    instance: str
    stream: str
    line: bytes
    seq: int = 0       # the keeper's line number (a follower resumes after the last one it saw)


_stamp_cache: tuple[int, str] = (-1, "")


def rfc3339(ts: float) -> str:
    """2024-05-01T12:00:00.123Z: UTC, millisecond resolution (the second part is cached)."""
    global _stamp_cache
    sec, ms = divmod(round(ts * 1000), 1000)
    if _stamp_cache[0] != sec:
        _stamp_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{_stamp_cache[1]}.{ms:03d}Z"


def json_line(ts: float, service: str, instance: str, stream: str, line: bytes) -> bytes:
    """One JSON object; a line that is not UTF-8 gets U+FFFD in `line` and its exact bytes in `line_b64`."""
    try:
        text, extra = line.decode("utf-8"), ""
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        extra = f',"line_b64":"{base64.b64encode(line).decode()}"'
    return (f'{{"ts":"{rfc3339(ts)}","service":{_ESC(service)},"instance":{_ESC(instance)},'
            f'"stream":"{stream}","line":{_ESC(text)}{extra}}}\n').encode()


class Framer:
    """One captured stream's framing state (used by the writer thread only)."""

    def __init__(self, service: str, instance: str, stream: str, *, timestamps: bool, fmt: str,
                 max_line: int, marker: bytes = b"", whole_lines: bool = False) -> None:
        self.service, self.instance, self.stream = service, instance, stream
        self.marker = marker      # put before every line (a hook's output: b"[hook pre_start] ")
        self.timestamps, self.json, self.max_line = timestamps, fmt == "json", max(1, max_line)
        text = not timestamps and fmt == "text"
        # raw: bytes go to the file as read. Whole: the same bytes, but cut at line ends only,
        # for a file another stream writes too (stderr = "merge"): a partial line waits for
        # its end there, so two pipes' bytes never mix mid-line
        self.whole = text and whole_lines and not marker
        self.raw = text and not whole_lines
        self.carry = b""
        self.written = 0        # whole: how much of the carry is in the file already (restored from a raw keeper)
        self.carry_lost = False  # raw path: the carry was not kept, so the next line is a fragment

    def in_file(self) -> int:
        """How many bytes of the carry are in the file already (raw: all of it)."""
        return len(self.carry) if self.raw else min(self.written, len(self.carry))

    def held(self) -> int:
        """Bytes read but not in the file yet (the carry's rest): a killed keeper loses them."""
        return len(self.carry) - self.in_file()

    def feed(self, data: bytes, ts: float, want_lines: bool) -> tuple[list[Any], list[bytes]]:
        """(buffers for the file, lines for consumers). Raw: the file gets `data` untouched.

        Without line consumers only the last lines of a chunk are returned (for the ring).
        """
        if self.whole:
            return self._whole(data, want_lines)
        if not want_lines and not self.json and not self.marker:
            if self.raw:
                return [data], self._sample(data)
            fast = self._stamp_fast(data, ts) if self.timestamps else None
            if fast is not None:
                return fast
        parts = data.split(b"\n")
        fragment = self.carry_lost and len(parts) > 1
        if self.carry:
            parts[0] = self.carry + parts[0]
        self.carry = parts.pop()
        if fragment:  # the start of this line was not kept (raw path): not a record
            self.carry_lost = False
            parts.pop(0)
        if len(self.carry) >= self.max_line:
            parts.append(self.carry)
            self.carry = b""
        if parts and max(map(len, parts)) > self.max_line:
            parts = self._split_long(parts)
        if self.marker:
            parts = [self.marker + p for p in parts]
        elif self.raw:
            return [data], parts
        return [self.render(parts, ts)], parts

    def _whole(self, data: bytes, want_lines: bool) -> tuple[list[Any], list[bytes]]:
        """Raw bytes up to the last line end; the rest waits (a line longer than max_line goes
        in pieces as it comes, unchanged: nothing is added to the bytes)."""
        buf = self.carry + data if self.carry else data
        last = buf.rfind(b"\n")
        if last < 0 and len(buf) < self.max_line:
            self.carry = buf
            return [], []
        cut = len(buf) if last < 0 or len(buf) - last - 1 >= self.max_line else last + 1
        out, self.carry = buf[:cut], buf[cut:]
        skip, self.written = self.written, 0
        sample = out if want_lines or len(out) <= RING_SAMPLE else out[-RING_SAMPLE:]
        lines = sample.split(b"\n")
        if not lines[-1]:
            lines.pop()
        if sample is not out:
            lines.pop(0)    # starts mid-line
        return [out[skip:] if skip else out], self._split_long(lines)

    def _stamp_fast(self, data: bytes, ts: float) -> tuple[list[Any], list[bytes]] | None:
        """Timestamps with one bytes.replace; None when a line is too long (the split path handles it).

        Long lines are found by jumping: the last newline within max_line bytes of each line
        start moves the position ~max_line bytes at a time, so the check costs a few memrchr
        calls per chunk instead of a Python step per line.
        """
        limit, carry = self.max_line, self.carry
        last = data.rfind(b"\n")
        if last < 0:
            if len(carry) + len(data) < limit:
                self.carry = carry + data
                return [], []
            return None
        first = data.find(b"\n")
        if len(carry) + first > limit or len(data) - last - 1 >= limit:
            return None
        p = first + 1
        while p <= last:
            q = data.rfind(b"\n", p, p + limit + 1)
            if q < 0:
                return None
            p = q + 1
        prefix = rfc3339(ts).encode() + b" "
        body = data if last + 1 == len(data) else data[:last + 1]
        rep = body.replace(b"\n", b"\n" + prefix)
        lines = self._ring_lines(data, last)
        self.carry = data[last + 1:]
        head = prefix + carry if carry else prefix
        return [head, memoryview(rep)[:len(rep) - len(prefix)]], lines

    def _ring_lines(self, data: bytes, last: int) -> list[bytes]:
        """The complete lines in the last RING_SAMPLE bytes up to data[last] (a newline)."""
        lines = data[max(0, last - RING_SAMPLE):last].split(b"\n")
        if last >= RING_SAMPLE or self.carry_lost:
            lines.pop(0)  # starts mid-line
        elif self.carry:
            lines[0] = self.carry + lines[0]
        return [x[:self.max_line] for x in lines]

    def _sample(self, data: bytes) -> list[bytes]:
        """Raw path without consumers: keep only the tail's lines (for the ring), cheaply."""
        end = data.rfind(b"\n")
        if end < 0:
            if len(self.carry) + len(data) <= self.max_line and not self.carry_lost:
                self.carry += data
            else:
                self.carry, self.carry_lost = b"", True
            return []
        lines = self._ring_lines(data, end)
        tail = data[end + 1:]
        self.carry, self.carry_lost = (tail, False) if len(tail) < self.max_line else (b"", True)
        return lines

    def _split_long(self, parts: list[bytes]) -> list[bytes]:
        n, out = self.max_line, []
        for p in parts:
            if len(p) <= n:
                out.append(p)
            else:
                out.extend(p[i:i + n] for i in range(0, len(p), n))
        return out

    def render(self, lines: list[bytes], ts: float) -> bytes:
        if not lines:
            return b""
        if self.json:
            return b"".join(json_line(ts, self.service, self.instance, self.stream, x) for x in lines)
        if self.timestamps:
            prefix = rfc3339(ts).encode() + b" "
            return prefix + (b"\n" + prefix).join(lines) + b"\n"
        return b"\n".join(lines) + b"\n"

    def flush(self, ts: float) -> tuple[bytes, list[bytes]]:
        """At EOF: the unfinished last line as a record (raw: its bytes are already in the file)."""
        line, self.carry = self.carry, b""
        if not line:
            return b"", []
        if self.whole:
            skip, self.written = self.written, 0
            return line[skip:], [line]      # as the program wrote it: no newline added
        if self.marker:
            line = self.marker + line
        return (b"" if self.raw and not self.marker else self.render([line], ts)), [line]
