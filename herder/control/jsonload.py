"""Decode a JSON answer with the standard library's C decoder, without importing `json`.

Why: the `json` package imports `re` (json.decoder compiles three patterns at import), and
`re` brings enum, functools and collections: ~6-8 ms of a `herder status` whose whole budget
is 40 ms, for three patterns the C decoder never uses. `_json.make_scanner` is that same C
decoder (`json.loads` runs it): it reads its options from a context object, which here is
a class with json.loads's defaults, so the values decoded are exactly json.loads's. Where
`_json` is missing (an interpreter without the accelerator) this is plain `json.loads`.

Malformed input is handed to json.loads, which raises its usual ValueError (json.
JSONDecodeError): `json` is imported on that path only.
"""

from __future__ import annotations

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WS = " \t\n\r"   # JSON's whitespace (RFC 8259), which json.loads skips around the value


class _Defaults:
    """json.loads's options, as the C decoder reads them (json.decoder.JSONDecoder's attributes)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    try:
        from _json import make_scanner
    except ImportError:
        return None
    scan: Callable[[str, int], tuple[Any, int]] = make_scanner(_Defaults())  # type: ignore[arg-type]  # duck-typed
    return scan


_scan = _scanner()


def loads(data: bytes | str) -> Any:
    """The value of one JSON document (UTF-8 bytes or text), as json.loads gives it."""
    if _scan is not None:
        try:
            if isinstance(data, bytes):   # json.loads skips a byte order mark in bytes (and refuses one in text)
                text = data[3 if data.startswith(b"\xef\xbb\xbf") else 0:].decode("utf-8", "surrogatepass")
            else:
                text = data
            start = len(text) - len(text.lstrip(_WS))
            value, end = _scan(text, start)
        except Exception:   # noqa: BLE001 - json.loads below says what is wrong, in its words
            pass
        else:
            if not text[end:].strip(_WS) and not text.startswith("\ufeff"):
                return value
    # Malformed, not UTF-8 (json.loads also reads UTF-16 and -32) or no C decoder: json.loads
    # decides, and raises its own error. Not the C decoder's: it builds json.JSONDecodeError
    # from json.decoder only if that is already imported, and otherwise fails with a SystemError.
    import json

    return json.loads(data)
