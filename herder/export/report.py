"""What an export carried, approximated or left out: declared once per target, reported per service.

Each target module declares its mapping as a tuple of :class:`Rule` rows (herder key →
target key, status, how or why). The same rows drive two things, so they cannot drift:

- the translation records a :class:`Note` for every key it handles, by naming the rule
  (``ctx.note("ready.http")``); a rule that is not declared is a programming error, found
  by the tests that export every key;
- docs/export.md's tables are generated from the rows (``python -m herder.export.docs``).

After a service is translated, every key that differs from herder's built-in default and
has no note yet gets its table's rule (``logs`` covers every ``logs.*`` key), so a
setting can never be dropped silently: at worst it is reported as not carried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from herder.config.model import ServiceSpec

CARRIED = "carried"
APPROXIMATED = "approximated"
NOT_CARRIED = "not carried"
STATUSES = (CARRIED, APPROXIMATED, NOT_CARRIED)


@dataclass(frozen=True)
class Rule:
    """One row of a target's mapping table."""

    key: str            # herder key path: "ready.http", "limits.memory", a table ("logs") for all its keys
    target: str         # what it becomes in the target ("healthcheck.test"); "—" for nothing
    status: str         # carried | approximated | not carried
    note: str = ""      # how it is approximated, or why it is not carried
    when: str = ""      # the case this row covers, when one key has several ("never")

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.key}: status {self.status!r}; expected one of {STATUSES}")


def not_translated(equivalents: dict[str, str]) -> tuple[Rule, ...]:
    """Rows for keys the target could express but `herder export` does not translate yet
    (hooks, security, schedules, exit-code policies: issue 18), each naming the target's
    equivalent, so the report says what to add by hand. "—": the target has none."""
    return tuple(Rule(key, "—", NOT_CARRIED, f"not translated yet; by hand: {eq}" if not eq.startswith("—")
                      else eq[1:].strip(" ()") or "the target has no equivalent") for key, eq in equivalents.items())


@dataclass(frozen=True)
class Note:
    """What happened to one key of one service."""

    service: str
    key: str
    status: str
    target: str
    text: str


class Mapping:
    """A target's rules, found by (key, case)."""

    def __init__(self, target: str, rules: Iterable[Rule]) -> None:
        self.target = target
        self.rules = tuple(rules)
        self._index: dict[tuple[str, str], Rule] = {}
        for r in self.rules:
            if (r.key, r.when) in self._index:
                raise ValueError(f"{target}: two rules for {r.key} ({r.when or 'any'})")
            self._index[(r.key, r.when)] = r

    def rule(self, key: str, when: str = "") -> Rule:
        """The rule for `key` in case `when`; a table's rule covers its keys."""
        probe = key
        while True:
            found = self._index.get((probe, when))
            if found is not None:
                return found
            if "." not in probe:
                raise KeyError(f"{self.target}: no rule for {key} ({when or 'any'})")
            probe = probe.rsplit(".", 1)[0]

    def covers(self, key: str) -> bool:
        """True when some rule (any case) answers for `key`."""
        parts = key.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        return any(r.key in prefixes for r in self.rules)


@dataclass
class Report:
    """Every note of one export, in the order the services were translated."""

    target: str
    notes: list[Note] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for n in self.notes if n.status == s) for s in STATUSES}

    def services(self) -> list[str]:
        return list(dict.fromkeys(n.service for n in self.notes))

    def of(self, service: str) -> list[Note]:
        return [n for n in self.notes if n.service == service]

    def find(self, service: str, key: str) -> Note | None:
        return next((n for n in self.notes if n.service == service and n.key == key), None)

    def render(self, header: Iterable[str] = ()) -> str:
        """Plain text: one block per service, one line per key, widest columns aligned."""
        c = self.counts()
        out = [*header, f"{c[CARRIED]} carried, {c[APPROXIMATED]} approximated, {c[NOT_CARRIED]} not carried", ""]
        for svc in self.services():
            notes = self.of(svc)
            kw = max(len(n.key) for n in notes)
            out.append(f"[{svc}]")
            for n in notes:
                where = f" → {n.target}" if n.target and n.target != "—" else ""
                text = f": {n.text}" if n.text else ""
                out.append(f"  {n.status:<12}  {n.key:<{kw}}{where}{text}")
            out.append("")
        return "\n".join(out)


class Recorder:
    """Notes for one service being translated."""

    def __init__(self, mapping: Mapping, report: Report, service: str, spec: ServiceSpec) -> None:
        self.mapping = mapping
        self.report = report
        self.service = service
        self.spec = spec
        self.seen: set[str] = set()
        self._noted: set[tuple[str, str]] = set()

    def note(self, key: str, when: str = "", detail: str = "", *, target: str | None = None) -> Rule:
        """Record `key` under its rule for case `when`; `detail` (the concrete value or
        command) follows the rule's text. The same (key, case) twice keeps the first note."""
        rule = self.mapping.rule(key, when)
        self.seen.add(key)
        if (key, when) not in self._noted:
            self._noted.add((key, when))
            text = "; ".join(t for t in (rule.note, detail) if t)
            self.report.notes.append(Note(self.service, key, rule.status, target or rule.target, text))
        return rule

    def note_changed(self, keys: tuple[str, ...], when: str) -> None:
        """Note those of `keys` that differ from the default, under case `when`; the rest
        have no effect here and are not reported."""
        for key in keys:
            if value_of(self.spec, key) != value_of(_DEFAULT_SPEC, key):
                self.note(key, when)
        self.skip(*keys)

    def skip(self, *keys: str) -> None:
        """These keys have no effect here (a check's timing without the check): not reported."""
        self.seen.update(keys)

    def finish(self) -> None:
        """Every non-default key that nothing noted gets its table's rule."""
        for key in changed_keys(self.spec):
            if key in self.seen or any(key.startswith(s + ".") for s in self.seen):
                continue
            self.note(key)


def leaf_keys(cls: type = ServiceSpec, prefix: str = "") -> Iterator[str]:
    """Every key a [services.NAME] table may hold, nested tables as dotted paths."""
    for f in dataclasses.fields(cls):
        sub = f.metadata.get("table")
        if sub is not None:
            yield from leaf_keys(sub, f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


def value_of(spec: object, key: str) -> object:
    for part in key.split("."):
        spec = getattr(spec, part)
    return spec


_DEFAULT_SPEC = ServiceSpec(command=("x",))


def changed_keys(spec: ServiceSpec) -> list[str]:
    """Keys whose value differs from herder's built-in default (command always counts)."""
    return [k for k in leaf_keys() if k == "command" or value_of(spec, k) != value_of(_DEFAULT_SPEC, k)]
