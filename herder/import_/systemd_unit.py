"""systemd unit-file syntax (systemd.syntax(7), systemd.service(5), systemd.unit(5)).

- Lines are `[Section]` headers, `Key=Value` assignments, or comments starting with `#`
  or `;`. A line ending in a backslash continues on the next (the backslash becomes a
  space; comment lines inside are skipped). Assignments outside a section, or lines
  without `=`, are ignored by systemd with a warning: they are reported, not fatal.
- Drop-ins in `NAME.service.d/*.conf` beside the unit are read after it, in name order.
- Command lines are split into words with single and double quotes and C escapes
  (`\\n`, `\\x41`, `\\s` …); prefixes `@ - : + !` on the first word; `${VAR}` becomes one
  word, `$VAR` alone splits at whitespace, `$$` is a `$`.
- Specifiers (`%n`, `%i`, `%t` …) are expanded where their value is known without the
  running manager; the others are reported and left as written.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from herder.import_.source import Source, fail, read_source

WHAT = "a systemd .service unit"


@dataclass(frozen=True)
class Assignment:
    key: str
    value: str
    file: Path
    line: int


@dataclass
class Unit:
    """A unit file (with its drop-ins): assignments per section, in order."""

    name: str                     # "web.service", "app@1.service"
    path: Path
    sections: dict[str, list[Assignment]] = field(default_factory=dict)
    ignored: list[tuple[Path, int, str, str]] = field(default_factory=list)   # (file, line, text, why)
    files: list[Path] = field(default_factory=list)

    def all(self, section: str, key: str) -> list[Assignment]:
        """Every assignment of a list setting that is still in force (an empty one resets)."""
        out: list[Assignment] = []
        for a in self.sections.get(section, []):
            if a.key == key:
                out = [] if a.value == "" else [*out, a]
        return out

    def last(self, section: str, key: str) -> Assignment | None:
        found = [a for a in self.sections.get(section, []) if a.key == key]
        return found[-1] if found else None

    @property
    def prefix(self) -> str:
        return self.name.rsplit(".", 1)[0].split("@", 1)[0]

    @property
    def instance(self) -> str | None:
        stem = self.name.rsplit(".", 1)[0]
        return stem.split("@", 1)[1] if "@" in stem else None


def read_unit(path: Path) -> Unit:
    src = read_source(path, WHAT)
    unit = Unit(path.name, path)
    _parse(unit, src)
    dropins = Path(str(path) + ".d")
    if dropins.is_dir():
        for conf in sorted(dropins.glob("*.conf")):
            if conf.is_file():
                _parse(unit, read_source(conf, "a systemd drop-in (.conf)"))
    return unit


def _logical_lines(src: Source) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for n, raw in enumerate(src.text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if pending is not None and line[:1] in ("#", ";"):
            continue  # a comment inside a continued line is skipped
        if pending is None and (not line or line[:1] in ("#", ";")):
            continue
        if line.endswith("\\"):
            pending = (pending[0] if pending else n, (pending[1] if pending else "") + line[:-1] + " ")
            continue
        if pending is not None:
            out.append((pending[0], pending[1] + line))
            pending = None
        else:
            out.append((n, line))
    if pending is not None:
        out.append(pending)
    return out


def _parse(unit: Unit, src: Source) -> None:
    unit.files.append(src.path)
    section: str | None = None
    for n, line in _logical_lines(src):
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                unit.ignored.append((src.path, n, line, "not a [Section] header; systemd ignores the line"))
                section = None
                continue
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            continue
        key, eq, value = line.partition("=")
        if section is None:
            unit.ignored.append((src.path, n, line, "outside any [Section]; systemd ignores it"))
        elif not eq or not key.strip():
            unit.ignored.append((src.path, n, line, "no `Key=Value`; systemd ignores the line"))
        else:
            unit.sections[section].append(Assignment(key.strip(), value.strip(), src.path, n))
    if not unit.sections and not unit.ignored and not src.text.strip():
        raise fail(str(src.path), f"empty; expected {WHAT}")


# ---- words, escapes, variables -------------------------------------------------------------

_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
        "'": "'", "s": " "}


def split_words(text: str, where: str) -> list[str]:
    """systemd's unquoting of a command line: whitespace-separated words, quotes, C escapes."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\n":
            i += 1
        if i >= n:
            break
        word, quote = [], ""
        while i < n and (quote or text[i] not in " \t\n"):
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    raise fail(where, "a command line ends in a lone backslash; expected an escape such as \\\\")
                ch, i = _escape(text, i + 1, where)
                word.append(ch)
                continue
            if quote and c == quote:
                quote = ""
            elif not quote and c in "\"'":
                quote = c
            else:
                word.append(c)
            i += 1
        if quote:
            raise fail(where, f"unbalanced {quote} in the command line; expected closing quotes")
        words.append("".join(word))
    return words


def _escape(text: str, i: int, where: str) -> tuple[str, int]:
    c = text[i]
    if c in _ESC:
        return _ESC[c], i + 1
    for lead, width, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if c == lead:
            digits = text[i + 1:i + 1 + width]
            if len(digits) == width and all(d in "0123456789abcdefABCDEF" for d in digits):
                code = int(digits, base)
                if 0 < code < 0x110000 and not 0xD800 <= code <= 0xDFFF:
                    return chr(code), i + 1 + width
            raise fail(where, f"bad escape \\{c}{digits}; expected \\{lead} and {width} hex digits")
    if c in "01234567":
        digits = text[i:i + 3]
        if len(digits) == 3 and all(d in "01234567" for d in digits) and 0 < int(digits, 8) < 256:
            return chr(int(digits, 8)), i + 3
    raise fail(where, f"unknown escape \\{c}; expected one of \\n \\t \\\\ \\\" \\' \\s \\xNN")


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def variables(word: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in _VAR.finditer(word) if m.group() != "$$"]


def substitute(words: list[str], env: dict[str, str]) -> list[str]:
    """systemd's variable substitution with every variable known (unknown ones are empty)."""
    out: list[str] = []
    for w in words:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        out.append(_VAR.sub(lambda m: "$" if m.group() == "$$" else env.get(m.group(1) or m.group(2), ""), w))
    return out


def shell_line(words: list[str]) -> str:
    """The same words for /bin/sh, with `$VAR` read by the shell at start: `${VAR}` stays one
    word, a lone `$VAR` splits at whitespace (globbing off, as systemd never globs)."""
    import shlex

    parts = []
    for w in words:
        if re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w):
            parts.append(w)
            continue
        pieces, last = [], 0
        for m in _VAR.finditer(w):
            pieces.append(shlex.quote(w[last:m.start()]) if m.start() > last else "")
            pieces.append("$" if m.group() == "$$" else f'"${{{m.group(1) or m.group(2)}}}"')
            last = m.end()
        pieces.append(shlex.quote(w[last:]) if last < len(w) or not pieces else "")
        parts.append("".join(p for p in pieces if p))
    return "set -f; exec " + " ".join(parts)


# ---- specifiers ------------------------------------------------------------------------------

def _unescape(s: str) -> str:
    s = s.replace("-", "/")
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


def specifiers(unit: Unit, user_scope: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(exact values, this machine's values now) of the specifiers herder can know."""
    stem = unit.name.rsplit(".", 1)[0]
    inst = unit.instance
    home = os.path.expanduser("~")
    exact = {"n": unit.name, "N": stem, "p": unit.prefix, "P": _unescape(unit.prefix),
             "j": unit.prefix.rsplit("-", 1)[-1], "J": _unescape(unit.prefix.rsplit("-", 1)[-1]),
             "y": str(unit.path.resolve()), "Y": str(unit.path.resolve().parent), "%": "%"}
    if inst is not None and inst != "":
        exact.update({"i": inst, "I": _unescape(inst), "f": "/" + _unescape(inst)})
    elif inst is None:
        exact.update({"i": "", "I": "", "f": "/" + _unescape(unit.prefix)})
    if user_scope:
        xdg = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
        now = {"t": xdg, "S": f"{home}/.local/state", "C": f"{home}/.cache", "L": f"{home}/.local/state/log",
               "E": f"{home}/.config", "D": f"{home}/.local/share", "T": os.environ.get("TMPDIR", "/tmp"),
               "V": os.environ.get("TMPDIR", "/var/tmp"), "h": home, "u": _user(), "U": str(os.getuid()),
               "g": _group(), "G": str(os.getgid()), "s": os.environ.get("SHELL", "/bin/sh")}
    else:
        exact.update({"t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc",
                      "D": "/usr/share", "T": "/tmp", "V": "/var/tmp", "h": "/root", "u": "root", "U": "0",
                      "g": "root", "G": "0", "s": "/bin/sh"})
        now = {}
    now.update({"H": platform.node(), "l": platform.node().split(".")[0], "v": platform.release(),
                "a": _arch(), "m": _read("/etc/machine-id"), "b": _read("/proc/sys/kernel/random/boot_id").replace(
                    "-", "")})
    return exact, {k: v for k, v in now.items() if v}


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _group() -> str:
    import grp

    try:
        return grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        return str(os.getgid())


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "x86-64", "aarch64": "arm64", "i686": "x86", "armv7l": "arm"}.get(m, m)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def expand_specifiers(text: str, exact: dict[str, str], now: dict[str, str]) -> tuple[str, set[str], set[str]]:
    """(text, specifiers that took this machine's value now, specifiers left as written)."""
    used_now: set[str] = set()
    unknown: set[str] = set()

    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c in exact:
            return exact[c]
        if c in now:
            used_now.add(c)
            return now[c]
        unknown.add(c)
        return m.group()

    return re.sub(r"%(.)", one, text, flags=re.S), used_now, unknown
