"""A supervisord program's log settings → herder's [services.X.logs].

supervisord keeps stdout and stderr in two files, each with its own size and count;
herder has one size and count per service. Where the two differ, stdout's are kept and
the stderr setting is reported as approximated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from herder.import_.draft import Scope
from herder.import_.values import size

if TYPE_CHECKING:
    from herder.import_.supervisord import Context
    from herder.import_.supervisord_program import _Program

DEFAULT_MAXBYTES = 50 * 1024 * 1024
DEFAULT_BACKUPS = 10


def _target(ctx: Context, text: str, stream: str) -> tuple[str, bool]:
    """(herder logs value, syslog) for a supervisord *_logfile value."""
    word = text.strip().lower()
    if word in ("none", "off"):
        return "null", False
    if word == "auto":
        return "auto", False
    if word == "syslog":  # deprecated spelling of *_syslog = true with no file
        return "null", True
    return ctx.places.place(text.strip(), ctx.ini.main.dir), False


def logs(ctx: Context, sc: Scope, p: _Program, exact: list[dict[str, Any]], tmpl: dict[str, Any], n: int,
         same: Any) -> None:
    syslog: list[str] = []
    redirect_t = p.typed("redirect_stderr")
    redirect = redirect_t.boolean("redirect_stderr") if redirect_t else False
    out_v, err_v = p.val("stdout_logfile"), p.val("stderr_logfile")
    if out_v is not None:
        _file(ctx, sc, "stdout_logfile", out_v.line, out_v.raw, tmpl, n, same, "logs.stdout", syslog, "stdout")
    if redirect_t is not None:
        to = "merge" if redirect else ("auto" if err_v is None else None)
        sc.carry("redirect_stderr", redirect_t.v.line, redirect_t.v.raw, "logs.stderr", to)
    if err_v is not None:
        if redirect:
            sc.drop("stderr_logfile", err_v.line, err_v.raw, "redirect_stderr = true sends stderr to stdout's file; "
                    "supervisord ignores this setting too")
        else:
            _file(ctx, sc, "stderr_logfile", err_v.line, err_v.raw, tmpl, n, same, "logs.stderr", syslog, "stderr")
    separate = not redirect and (err_v is None or _target(ctx, tmpl["stderr_logfile"], "stderr")[0] != "null")
    _rotation(sc, p, separate)
    for stream in ("stdout", "stderr"):
        t = p.typed(f"{stream}_syslog")
        if t is not None and t.boolean(f"{stream}_syslog"):
            syslog.append(stream)
        if t is not None:
            _syslog_entry(sc, f"{stream}_syslog", t.v.line, t.v.raw, t.boolean(f"{stream}_syslog"))
    if syslog:
        sc.table.set("logs.forward", ["syslog"])


def _syslog_entry(sc: Scope, key: str, line: int | None, raw: str, on: bool) -> None:
    if on:
        sc.approx(key, line, raw, "logs.forward", None, "herder forwards every line of both streams to syslog")
    else:
        sc.carry(key, line, raw)


def _file(ctx: Context, sc: Scope, key: str, line: int | None, raw: str, tmpl: dict[str, Any], n: int, same: Any,
          target: str, syslog: list[str], stream: str) -> None:
    value, to_syslog = _target(ctx, tmpl[key], stream)
    if to_syslog:
        syslog.append(stream)
        sc.approx(key, line, raw, target, value, "the deprecated `syslog` file: no file, lines forwarded to syslog "
                  "(logs.forward)")
    elif value in ("auto", "null"):
        sc.carry(key, line, raw, target, value, "herder names it {log_dir}/NAME.log" if value == "auto" and
                 stream == "stdout" else ("herder names it {log_dir}/NAME.err.log" if value == "auto" else ""))
    elif n > 1 and "{replica}" not in value:
        sc.approx(key, line, raw, target, value, "herder never lets replicas share a file: replica N writes "
                  "NAME.N before the extension")
    elif not same(key, tmpl[key]):
        sc.approx(key, line, raw, target, value, "the per-process file names differ from supervisord's "
                  "(%(process_num) padding or numprocs_start)")
    else:
        sc.carry(key, line, raw, target, value)


def _rotation(sc: Scope, p: _Program, separate: bool) -> None:
    for what, target, default, conv in (("maxbytes", "logs.max_size", DEFAULT_MAXBYTES, "byte_size"),
                                        ("backups", "logs.max_files", DEFAULT_BACKUPS, "integer")):
        out_t, err_t = p.typed(f"stdout_logfile_{what}"), p.typed(f"stderr_logfile_{what}")

        def num(t: Any, key: str, conv: str = conv) -> int:
            return int(t.byte_size(key) if conv == "byte_size" else t.integer(key, 0))

        out = num(out_t, f"stdout_logfile_{what}") if out_t else default
        shown = size if conv == "byte_size" else (lambda x: x)
        if out_t is not None:
            sc.carry(f"stdout_logfile_{what}", out_t.v.line, out_t.v.raw, target, shown(out))
        if err_t is None:
            continue
        err = num(err_t, f"stderr_logfile_{what}")
        if not separate:
            sc.carry(f"stderr_logfile_{what}", err_t.v.line, err_t.v.raw, "", None, "no stderr file of its own")
        elif err == out:
            sc.carry(f"stderr_logfile_{what}", err_t.v.line, err_t.v.raw, target,
                     shown(out) if out_t is None and out != default else None)
        else:
            sc.approx(f"stderr_logfile_{what}", err_t.v.line, err_t.v.raw, target, None,
                      f"herder uses one value for both streams: {shown(out)} (stdout's)")
