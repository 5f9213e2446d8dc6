"""`herder import FORMAT FILE…` and `herder init [--from FILE]`.

Both write herder.toml the same careful way: into a temporary file beside the target,
checked by herder's own config loader (so what is written always passes `herder check`),
then renamed into place; an existing file is replaced only with --force. The report goes
to the terminal, or to --report FILE (JSON when FILE ends in .json).

Only argparse is imported when the parser is built; the translators load when they run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from herder.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError

FORMATS = ("supervisord", "procfile", "pm2", "systemd")


def add_parsers(sub: Any) -> None:
    imp = sub.add_parser("import", help="translate a supervisord, Procfile, PM2 or systemd config into herder.toml, "
                         "with a report of every setting", description="Translate another tool's config into "
                         "herder.toml. Every source setting is reported as carried, approximated or not carried, "
                         "with its file and line (docs/import.md).")
    imp.add_argument("format", choices=FORMATS, metavar="FORMAT", help="supervisord | procfile | pm2 | systemd")
    imp.add_argument("files", nargs="+", metavar="FILE",
                     help="supervisord: the main config (more files are read as if included); procfile: the "
                          "Procfile; pm2: ecosystem files (.json, .yaml, .js); systemd: .service units")
    _output_args(imp)
    imp.add_argument("--report", metavar="FILE", help="write the report to FILE (JSON if it ends in .json) "
                     "instead of printing it")
    imp.add_argument("--env", metavar="FILE|NAME", help="procfile: the .env file(s), comma-separated (default: .env "
                     "beside the Procfile); pm2: apply env_NAME over env, as `pm2 start --env NAME`")
    imp.add_argument("--formation", metavar="NAME=N,…", help="procfile: instances per process, as foreman's -m "
                     "(all=1,web=2)")
    imp.set_defaults(run="herder.cli.import_cmd:run_import")

    init = sub.add_parser("init", help="write a commented starter herder.toml, or import what the folder already has",
                          description="In a folder with a Procfile, supervisord.conf, PM2 ecosystem file or "
                          ".service units, offer to import it; otherwise write a starter herder.toml.")
    init.add_argument("--from", dest="source", metavar="FILE", help="import FILE (its format from its name)")
    init.add_argument("--format", choices=FORMATS, help="the format of --from FILE when its name does not tell")
    init.add_argument("--blank", action="store_true", help="write the starter even if something could be imported")
    _output_args(init)
    init.add_argument("--report", metavar="FILE", help="with --from: write the report to FILE")
    init.set_defaults(run="herder.cli.import_cmd:run_init")


def _output_args(p: Any) -> None:
    p.add_argument("-o", "--output", default="herder.toml", metavar="FILE",
                   help='the herder.toml to write (default ./herder.toml; "-" prints it)')
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")


def _problems(e: ConfigError) -> int:
    for line in e.problems:
        print(line, file=sys.stderr)
    return EXIT_USAGE


def _target(output: str, force: bool) -> tuple[Path | None, Path] | int:
    """(output file or None for stdout, the folder paths are relative to), or an exit code."""
    if output == "-":
        return None, Path.cwd()
    out = Path(output)
    if out.is_dir():
        print(f"herder: {out} is a folder; expected a file name such as {out / 'herder.toml'}", file=sys.stderr)
        return EXIT_USAGE
    if not out.resolve().parent.is_dir():
        print(f"herder: {out.parent} does not exist; expected an existing folder for {out.name}", file=sys.stderr)
        return EXIT_USAGE
    if (out.exists() or out.is_symlink()) and not force:
        print(f"herder: {out} exists; pass --force to replace it, or -o another file", file=sys.stderr)
        return EXIT_FAILED
    return out, out.resolve().parent


def run_import(args: Any) -> int:
    if args.formation and args.format != "procfile":
        print("herder: --formation is for procfile; expected it only with `herder import procfile`", file=sys.stderr)
        return EXIT_USAGE
    if args.env and args.format not in ("procfile", "pm2"):
        print("herder: --env is for procfile (.env files) and pm2 (env_NAME)", file=sys.stderr)
        return EXIT_USAGE
    return _import(args.format, [Path(f) for f in args.files], args.output, args.force, args.report,
                   env=args.env, formation=args.formation)


def _import(fmt: str, files: list[Path], output: str, force: bool, report: str | None, *,
            env: str | None = None, formation: str | None = None) -> int:
    from herder.import_ import Options, translate

    target = _target(output, force)
    if isinstance(target, int):
        return target
    out, base = target
    try:
        t = translate(fmt, files, base, Options(env=env, formation=formation))
    except ConfigError as e:
        return _problems(e)
    written = _write_checked(t.toml, out, base)
    if isinstance(written, int):
        return written
    return _report(fmt, files, out, t.draft, report, written)


def _write_checked(text: str, out: Path | None, base: Path) -> str | int:
    """Write `text` atomically to `out` (or print it) after herder's loader accepted it; the
    summary of what it holds, or an exit code."""
    import tempfile

    from herder.config import load

    fd, tmp = tempfile.mkstemp(prefix=".herder-import-", suffix=".toml", dir=base if os.access(base, os.W_OK)
                               else None)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            cfg = load(tmp, check_accounts=False)
        except ConfigError as e:
            print("herder: the translation does not pass herder's own check (a bug in herder import; please "
                  "report it):", file=sys.stderr)
            for line in e.problems:
                print(f"  {line}", file=sys.stderr)
            return EXIT_FAILED
        summary = f"{len(cfg.services)} services, {sum(s.replicas for s in cfg.services.values())} instances"
        if out is None:
            sys.stdout.write(text)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
            tmp = ""
        return summary
    finally:
        if tmp:
            os.unlink(tmp)


def _report(fmt: str, files: list[Path], out: Path | None, draft: Any, report: str | None, summary: str) -> int:
    from herder.import_.report import render_json, render_text
    from herder.import_.report import summary as counts

    title = f"herder import {fmt} {' '.join(map(str, files))} → {out if out else 'stdout'}: {summary}"
    extra = [f"warning: {w}" for w in draft.warnings] + _account_warnings(draft)
    stream = sys.stdout if out is not None else sys.stderr
    if report:
        body = render_json(title, draft.entries) if report.endswith(".json") else \
            render_text(title, draft.entries) + "".join(f"{x}\n" for x in extra)
        try:
            Path(report).write_text(body, encoding="utf-8")
        except OSError as e:
            print(f"herder: cannot write the report {report}: {e.strerror or e}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{title}; {counts(draft.entries)}; report in {report}", file=stream)
        for x in extra:
            print(x, file=stream)
        return EXIT_OK
    stream.write(render_text(title, draft.entries))
    for x in extra:
        print(x, file=stream)
    return EXIT_OK


def _account_warnings(draft: Any) -> list[str]:
    """What `herder check` will say about user/group on this machine, said now."""
    import grp
    import pwd

    out = []
    for name, table in draft.services.items():
        for key, lookup in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
            who = table.values.get(key)
            if who is None:
                continue
            if os.geteuid() != 0:
                out.append(f"warning: services.{name}.{key} = {who!r}: herder must run as root to switch accounts")
                continue
            try:
                lookup(str(who))
            except KeyError:
                out.append(f"warning: services.{name}.{key}: no {key} {who!r} on this machine; `herder check` will "
                           "refuse it until it exists")
    return out


def run_init(args: Any) -> int:
    from herder.import_.starter import STARTER, found, guess

    if args.source:
        src = Path(args.source)
        fmt = args.format or guess(src)
        if fmt is None:
            print(f"herder: cannot tell the format of {src}; expected --format supervisord|procfile|pm2|systemd",
                  file=sys.stderr)
            return EXIT_USAGE
        return _import(fmt, [src], args.output, args.force, args.report)
    here = found(Path("."))
    if here and not args.blank:
        fmt, path = here[0]
        rel = os.path.relpath(path)
        if sys.stdin.isatty() and sys.stdout.isatty():
            try:
                answer = input(f"{rel} can be imported ({fmt}). Import it into {args.output}? [Y/n] ").strip().lower()
            except EOFError:
                answer = "n"
            if answer in ("", "y", "yes"):
                return _import(fmt, [path], args.output, args.force, args.report)
        else:
            for f, p in here:
                print(f"found {os.path.relpath(p)} ({f}): import it with `herder init --from {os.path.relpath(p)}`")
            print("or write the starter anyway with `herder init --blank`")
            return EXIT_OK
    target = _target(args.output, args.force)
    if isinstance(target, int):
        return target
    out, base = target
    written = _write_checked(STARTER, out, base)
    if isinstance(written, int):
        return written
    if out is not None:
        print(f"wrote {out}: a starter with one service (web); edit it, then `herder up`")
    return EXIT_OK
