"""supervisord's INI dialect, read exactly as supervisord reads it, with line numbers.

supervisord reads its config with the standard library's RawConfigParser, set up with
`inline_comment_prefixes=(';', '#')` and `strict=False` (supervisor/options.py,
UnhosedConfigParser). So this module uses that same parser with those same options
rather than imitating it: inline comments need whitespace before them, continuation
lines are indented, option names are lower-cased, a repeated key keeps its last value, a
repeated section merges, and `[DEFAULT]` keys show through in every section.

RawConfigParser keeps no line numbers, which a report needs. Its documented `dict_type`
hook is the way in: the parser stores every section and every `key = value` into a dict
of that type while it reads line by line, so a dict that notes the line being read when
a key is stored knows where each key (and each section) came from. Values are joined
into their final text after the last line, when no line is current, so those stores are
not noted.

`[include] files =` is processed as supervisord does: only in the main file, each
whitespace-separated glob relative to the main file's folder, matches read in sorted
order, a pattern matching nothing is a warning. `%(here)s` is the folder of the file the
value came from.
"""

from __future__ import annotations

import configparser
import glob
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herder.import_.source import Source, display, fail, read_source

WHAT = "a supervisord config (INI)"


@dataclass(frozen=True)
class Value:
    raw: str
    file: Path
    line: int | None


@dataclass
class _Recorder:
    file: Path | None = None
    line: int | None = None
    sections: dict[str, tuple[Any, Path, int]] = field(default_factory=dict)
    keys: dict[int, dict[str, tuple[Path, int]]] = field(default_factory=dict)
    dict_type: type = dict

    def __post_init__(self) -> None:
        rec = self

        class Recording(dict[str, Any]):
            def __setitem__(self, k: str, v: Any) -> None:
                if rec.line is not None and rec.file is not None:
                    if isinstance(v, Recording):
                        rec.sections.setdefault(k, (v, rec.file, rec.line))
                    else:
                        rec.keys.setdefault(id(self), {})[k] = (rec.file, rec.line)
                super().__setitem__(k, v)

        self.dict_type = Recording

    def lines(self, src: Source) -> Iterator[str]:
        self.file = src.path
        for n, line in enumerate(io.StringIO(src.text, newline=None), start=1):
            self.line = n
            yield line
        self.line = None


@dataclass
class Ini:
    """The merged INI of a supervisord config: values with the file and line they came from."""

    main: Source
    parser: configparser.RawConfigParser
    rec: _Recorder
    files: list[Path]
    warnings: list[tuple[Path, int | None, str]]

    def sections(self) -> list[str]:
        return self.parser.sections()

    def where(self, section: str) -> tuple[Path, int | None]:
        found = self.rec.sections.get(section)
        return (found[1], found[2]) if found else (self.main.path, None)

    def keys(self, section: str) -> list[str]:
        return list(self.parser.options(section))

    def get(self, section: str, key: str) -> Value | None:
        if not self.parser.has_option(section, key):
            return None
        raw = self.parser.get(section, key)
        own = self.rec.sections.get(section)
        at = self.rec.keys.get(id(own[0]), {}).get(key) if own else None
        if at is None:  # from [DEFAULT]: shown at its line there, `%(here)s` of the section's file
            at = self.rec.keys.get(id(self.parser.defaults()), {}).get(key)
            file = own[1] if own else self.main.path
            return Value(raw, file, at[1] if at else None)
        return Value(raw, at[0], at[1])


def here(v: Value) -> str:
    return str(v.file.resolve().parent)


def read(main_path: Path, extra: list[Path]) -> Ini:
    """Parse the main config, its [include] files and `extra` files (read as if included)."""
    rec = _Recorder()
    parser = configparser.RawConfigParser(dict_type=rec.dict_type, inline_comment_prefixes=(";", "#"),
                                          strict=False)
    main = read_source(main_path, WHAT)
    _parse(parser, rec, main)
    ini = Ini(main, parser, rec, [main.path], [])
    if parser.has_section("include"):
        files = ini.get("include", "files")
        if files is None:
            raise fail(main.where(ini.where("include")[1]), "[include] has no `files =`; expected "
                       "files = conf.d/*.conf (as supervisord requires)")
        from herder.import_.supervisord_expand import expand

        patterns = expand(files.raw.replace("%(here)s", here(files)), _include_expansions(), files, "files").split()
        for pattern in patterns:
            full = os.path.join(str(main.dir), pattern)
            matches = sorted(glob.glob(full))
            if not matches:
                ini.warnings.append((files.file, files.line, f'no file matches the include "{pattern}"'))
            for name in matches:
                _include(ini, display(Path(name)), files)
    for path in extra:
        _include(ini, path, None)
    return ini


def _include(ini: Ini, path: Path, by: Value | None) -> None:
    if not path.is_file():  # supervisord's parser skips what it cannot open; never block on a FIFO
        where = (by.file, by.line) if by else (path, None)
        ini.warnings.append((where[0], where[1], f"{path}: not a regular file; skipped, as supervisord does"))
        return
    src = read_source(path, WHAT)
    _parse(ini.parser, ini.rec, src)
    ini.files.append(src.path)


def _include_expansions() -> dict[str, str]:
    import platform

    return {"host_node_name": platform.node(), **{f"ENV_{k}": v for k, v in os.environ.items()}}


def _parse(parser: configparser.RawConfigParser, rec: _Recorder, src: Source) -> None:
    try:
        parser.read_file(rec.lines(src), source=str(src.path))
    except configparser.MissingSectionHeaderError as e:
        raise fail(src.where(e.lineno), "a setting before any [section]; expected a section header such as "
                   "[program:NAME] first") from None
    except configparser.ParsingError as e:
        raise _parsing_error(src, e) from None
    except configparser.Error as e:  # any other refusal of the INI reader
        raise fail(src.where(rec.line), f"{e.message.splitlines()[0]}; expected {WHAT}") from None
    finally:
        rec.line = None


def _parsing_error(src: Source, e: configparser.ParsingError) -> Exception:
    from herder.errors import ConfigError

    problems = [f"{src.where(lineno)}: cannot read {line}: expected `key = value`, a [section] or a ; comment"
                for lineno, line in e.errors]
    return ConfigError(problems or [f"{src.path}: {e.message}"])
