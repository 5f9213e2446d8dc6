"""Checking request bodies against the registry's JSON Schema shapes.

Only the subset the registry uses (type, properties, required, additionalProperties,
enum, minimum/maximum, minLength, items): the jsonschema package would cost the
supervisor ~40 ms and several MB to import for bodies of at most three keys.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


class ShapeError(ValueError):
    pass


def _is(kind: str, v: Any) -> bool:
    if kind in ("integer", "number") and isinstance(v, bool):
        return False
    return isinstance(v, _TYPES[kind])


def check(schema: dict[str, Any], value: Any, where: str) -> None:
    """Raise ShapeError('body.timeout: expected number; got "x"') on the first mismatch."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(k, value) for k in kinds):
            raise ShapeError(f"{where}: expected {' or '.join(kinds)}; got {_show(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise ShapeError(f"{where}: expected one of {', '.join(map(str, schema['enum']))}; got {_show(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ShapeError(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ShapeError(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise ShapeError(f"{where}: must not be empty")
    if isinstance(value, str) and "\x00" in value:
        raise ShapeError(f"{where}: must not contain NUL characters")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise ShapeError(f"{where}: missing key {key!r}")
        for key, v in value.items():
            if key in props:
                check(props[key], v, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                raise ShapeError(f"{where}: unknown key {key!r}; expected {', '.join(props) or 'none'}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            check(schema["items"], v, f"{where}[{i}]")


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
