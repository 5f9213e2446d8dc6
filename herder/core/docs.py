"""Generate docs/states.md from the transition table (`python -m herder.core.docs`)."""

from __future__ import annotations

from herder.core.machine import TABLE, Ev, State


def render() -> str:
    lines = ["# Instance states", "",
             "Generated from `herder/core/machine.py` by `python -m herder.core.docs`; do not edit.", "",
             "Observed states: " + ", ".join(f"`{s.value}`" for s in State) + ".",
             "Desired state (want up / want down) is kept apart and set only by operators, `up` and `down`.", "",
             "| state | event | next state(s) | what happens |", "|---|---|---|---|"]
    for s in State:
        for e in Ev:
            tr = TABLE.get((s, e))
            if tr is None:
                lines.append(f"| {s.value} | {e.value} | — | impossible (TransitionError) |")
            else:
                lines.append(f"| {s.value} | {e.value} | {', '.join(t.value for t in tr.targets)} | {tr.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
