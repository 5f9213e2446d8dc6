"""The herder.toml being built by an importer, and the recorder that keeps it honest.

An importer never writes a herder key without saying where it came from: it goes through
a `Scope` (one source section, app or unit), whose `carry` / `approx` / `drop` /
`unknown` both set the key in the draft and add the report entry. An approximation also
leaves a comment above the key in the written file, and a setting not carried leaves a
comment at the end of its service, so the file itself tells what differs.

Each format declares its translation table as `Rule`s (`RULES`); docs/import.md is
generated from them and a test checks that every key an importer reports has a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from herder.import_.report import Entry, Status, shorten


@dataclass(frozen=True)
class Rule:
    """One row of a format's translation table (docs/import.md)."""

    source: str   # the source key ("stopwaitsecs"), or a section ("[group:x]")
    herder: str   # the herder key it becomes ("stop_timeout"), or "—"
    note: str     # how, and what differs


def rules(*rows: tuple[str, str, str]) -> dict[str, Rule]:
    return {src: Rule(src, herder, note) for src, herder, note in rows}


@dataclass
class Table:
    """One TOML table in the making: values by dotted key (`logs.stderr`), comment lines
    that go above a key, and notes (settings not carried) that close the table."""

    values: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)   # comment lines right under the table's header

    def set(self, key: str, value: Any, comment: str = "") -> None:
        self.values[key] = value
        if comment:
            self.comments.setdefault(key, []).append(comment)


@dataclass
class Draft:
    """A whole herder.toml plus its report."""

    fmt: str
    header: list[str] = field(default_factory=list)
    herder: Table = field(default_factory=Table)
    defaults: Table = field(default_factory=Table)
    services: dict[str, Table] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # about the reading (an include matching nothing …)
    unruled: list[str] = field(default_factory=list)    # reported keys without a RULES row (a test keeps it empty)

    def service(self, name: str) -> Table:
        return self.services.setdefault(name, Table())


class Scope:
    """Records the settings of one source section into one herder table."""

    def __init__(self, draft: Draft, table: Table, prefix: str, file: str, scope: str,
                 table_rules: dict[str, Rule], kind: str = "", aliases: dict[str, str] | None = None) -> None:
        """`kind` + key names the RULES row of each setting ("[supervisord] umask"); failing
        that, `kind *` (any other key of that kind), then `kind` itself."""
        self.draft, self.table, self.prefix = draft, table, prefix
        self.file, self.scope, self.rules, self.kind = file, scope, table_rules, kind
        self.aliases = aliases or {}

    def rule_of(self, key: str) -> str | None:
        key = self.aliases.get(key, key)
        for k in (f"{self.kind} {key}".strip(), f"{self.kind} *", self.kind):
            if k in self.rules:
                return k
        return next((k for k in self.rules if k.endswith("_*") and key.startswith(k[:-1])), None)

    def _entry(self, key: str, line: int | None, value: str, status: Status, target: str, note: str) -> None:
        if status != "unknown" and self.rule_of(key) is None:
            self.draft.unruled.append(f"{self.kind} {key}".strip())
        self.draft.entries.append(Entry(self.file, line, self.scope, key, shorten(value), status, target, note))

    def _target(self, target: str, to: Any) -> str:
        from herder.import_.toml_out import value as toml_value

        if not target:
            return ""
        where = f"{self.prefix}.{target}" if self.prefix else target
        return f"{where} = {toml_value(to)}" if to is not None else where

    def carry(self, key: str, line: int | None, value: str, target: str = "", to: Any = None, note: str = "") -> None:
        """Same behaviour in herder; `to` (when not None) is set at `target`."""
        if to is not None:
            self.table.set(target, to)
        self._entry(key, line, value, "carried", self._target(target, to), note)

    def approx(self, key: str, line: int | None, value: str, target: str, to: Any, note: str) -> None:
        """Close, not the same: the note (also a comment above the key) says how it differs."""
        if to is not None:
            self.table.set(target, to, f"{key} = {shorten(value, 40)}: {note}" if value else f"{key}: {note}")
        else:
            self.table.comments.setdefault(target, []).append(f"{key}: {note}")
        self._entry(key, line, value, "approximated", self._target(target, to), note)

    def renamed(self, line: int | None, raw: str, name: str) -> None:
        """The source's name is not a valid herder service name: it became `name`."""
        note = f'"{raw}" is not a valid herder service name (letters, digits, - and _); it is "{name}"'
        self.table.intro.append(f"{self.scope}: {note}")
        self._entry("", line, "", "approximated", f"{self.prefix}.{name}", note)

    def _label(self, key: str) -> str:
        return key if key and self.prefix.startswith("services.") else f"{self.scope} {key}".strip()

    def drop(self, key: str, line: int | None, value: str, note: str) -> None:
        """No herder equivalent: a note closes the table."""
        shown = f" = {shorten(value, 40)}" if value else ""
        self.table.notes.append(f"not carried: {self._label(key)}{shown}: {note}")
        self._entry(key, line, value, "not carried", "", note)

    def unknown(self, key: str, line: int | None, value: str, note: str) -> None:
        label = self._label(key)
        shown = (f" = {shorten(value, 40)}" if label else f'"{shorten(value, 40)}"') if value else ""
        self.table.notes.append(f"unknown: {label}{shown}: {note}")
        self._entry(key, line, value, "unknown", "", note)
