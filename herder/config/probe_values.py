"""Parsers for the values of [services.*.ready], [services.*.health] and [services.*.limits].

Kept apart from schema.py (the generic kinds) because they know about probes: a URL must
be one herder can actually request, `host:port` must have a port, a pattern must compile.
An error here is found by `herder check`, not at 3 a.m. when the first probe runs.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from typing import Any

from herder.config.schema import _show, p_argv
from herder.config.units import parse_size

if sys.platform == "win32":   # no rlimits there; the value is still validated the same way
    RLIM_INFINITY = -1
else:
    from resource import RLIM_INFINITY


def p_url(v: Any) -> str | None:
    """http:// or https:// URL"""
    if not isinstance(v, str):
        raise ValueError(f'expected a URL such as "http://127.0.0.1:8000/health"; got {_show(v)}')
    u = urllib.parse.urlsplit(v)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError('expected an http:// or https:// URL with a host, such as "http://127.0.0.1:8000/health"; '
                         f'got "{v}"')
    try:
        u.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f'bad port in "{v}"; expected a number from 1 to 65535') from None
    return v


def p_hostport(v: Any) -> str | None:
    """`host:port` (IPv6 as `[::1]:port`)"""
    if not isinstance(v, str):
        raise ValueError(f'expected "host:port" such as "127.0.0.1:5432"; got {_show(v)}')
    split_hostport(v)
    return v


def split_hostport(v: str) -> tuple[str, int]:
    host, sep, port = v.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected "host:port" with a port from 1 to 65535, such as "127.0.0.1:5432"; got "{v}"')
    return host, int(port)


def p_opt_argv(v: Any) -> tuple[str, ...] | None:
    """argv list, or a string split like a shell would"""
    return p_argv(v)


def p_regex(v: Any) -> str:
    """regular expression (Python syntax), searched anywhere in the text"""
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty regular expression; got {_show(v)}")
    try:
        re.compile(v)
    except re.error as e:
        raise ValueError(f"not a valid regular expression ({e}); expected Python `re` syntax") from None
    return v


def p_opt_size(v: Any) -> int | None:
    """size such as `"512MB"`, `"1GB"`"""
    n = parse_size(v)
    if n <= 0:
        raise ValueError(f"expected a size above zero such as \"512MB\"; got {_show(v)}")
    return n


def p_cpus(v: Any) -> float | None:
    """number of CPUs, fractions allowed (0.5 = half of one CPU)"""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < 1e6:   # also NaN and inf
        raise ValueError(f"expected a number of CPUs above zero such as 0.5 or 2; got {_show(v)}")
    return float(v)


def p_rlimit(v: Any) -> int | None:
    """whole number ≥ 0, or `"unlimited"`"""
    if v == "unlimited" or v == "infinity":
        return RLIM_INFINITY
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
        raise ValueError(f'expected a whole number ≥ 0 or "unlimited"; got {_show(v)}')
    return v
