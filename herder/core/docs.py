"""Generate docs/states.md from the instance table (`python -m herder.core.docs`).

One grid (states × events): each cell names the state(s) the rule may end in and the
rule's number; the numbered rules follow with what each does. `=` means the event
changes nothing in that state; `—` that it is impossible there (TransitionError).
"""

from __future__ import annotations

from herder.core.events import INSTANCE_EVENTS
from herder.core.instance import State
from herder.core.machine import TABLE


def render() -> str:
    rules: list[tuple[str, str]] = []        # (targets, doc), numbered in order of first use
    cells: dict[tuple[State, str], str] = {}
    for s in State:
        for e in INSTANCE_EVENTS:
            row = TABLE.get((s, e))
            if row is None:
                cells[(s, e.label)] = "—"
                continue
            if row.targets == frozenset({s}) and row.doc in _UNCHANGED:
                cells[(s, e.label)] = "="
                continue
            same = row.targets == frozenset({s})
            targets = "=" if same else ", ".join(t.value for t in State if t in row.targets)
            key = ("the same state" if same else targets, f"**{e.label}**: {row.doc}")
            if key not in rules:
                rules.append(key)
            cells[(s, e.label)] = f"{targets} ({rules.index(key) + 1})"
    labels = [e.label for e in INSTANCE_EVENTS]
    lines = ["# Instance states", "",
             "Generated from `herder/core/machine.py` by `python -m herder.core.docs`; do not edit.", "",
             "Observed states: " + ", ".join(f"`{s.value}`" for s in State) + ".",
             "Desired state (want up / want down) is kept apart and set only by operators, `up` and `down`.",
             "Every decision is taken by `herder.core.step.step(world, event, now)`; this table is the part that",
             "answers one event for one instance. A rule that ends outside the states listed in its cell raises",
             "TransitionError at once.", "",
             "Cells: the state(s) the instance may be in afterwards and the rule's number (below); `=` the event",
             "changes nothing in that state (with a number: it stays, but the rule acts); `—` the event is",
             "impossible there.", "",
             "| state | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels)]
    for s in State:
        lines.append(f"| **{s.value}** | " + " | ".join(cells[(s, label)] for label in labels) + " |")
    lines += ["", "## Rules", ""]
    lines += [f"{i}. → {targets}. {doc}" for i, (targets, doc) in enumerate(rules, 1)]
    return "\n".join(lines) + "\n"


_UNCHANGED = {"already stopped", "already wanted up", "no change", "not meaningful here: ignored", "already up",
              "no deadline to extend", "a late timer: ignored", "not running: nothing to restart",
              "no process: ignored (a late message)"}


if __name__ == "__main__":
    print(render(), end="")
