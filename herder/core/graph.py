"""The dependency graph: cycle detection, start order, and the conditions of depends_on.

Conditions (interface.md): `started` (the dependency's process has been spawned),
`ready` (it reported readiness, or was spawned when it has no readiness check),
`healthy` (its liveness checks pass; without checks, the same as ready), and
`completed` (it exited successfully: a migration job). Every replica must meet the
condition.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """One dependency cycle as a list of names, or None. `graph[a]` = what a depends on."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = GREY
        stack.append(node)
        for dep in graph.get(node, ()):
            if color.get(dep, BLACK) == GREY:
                return stack[stack.index(dep):]
            if color.get(dep) == WHITE:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for n in sorted(graph):
        if color[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def levels(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Start order as levels: level 0 has no dependencies; stop order is the reverse."""
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 0  # cycle guard; config validation rejects cycles
            depth[n] = 1 + max((d(x) for x in graph.get(n, ()) if x in graph), default=-1)
        return depth[n]

    out: dict[int, list[str]] = {}
    for n in graph:
        out.setdefault(d(n), []).append(n)
    return [sorted(out[k]) for k in sorted(out)]


def closure(graph: Mapping[str, Collection[str]], roots: Iterable[str]) -> set[str]:
    """The named services and everything they depend on, transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(graph.get(n, ()))
    return seen


@dataclass(frozen=True)
class Facts:
    """What a dependency instance has reached, as the condition check needs it."""

    state: str           # the observed state's value, for the "waiting for" reason
    started: bool
    ready: bool
    healthy: bool
    completed: bool
    hopeless: bool       # failed, or exited without success: it will not get there alone


def condition_met(condition: str, facts: Sequence[Facts]) -> bool:
    if not facts:
        return False
    check: Callable[[Facts], bool] = {
        "started": lambda f: f.started or f.completed,
        "ready": lambda f: f.ready or f.completed,
        "healthy": lambda f: f.healthy or f.completed,
        "completed": lambda f: f.completed,
    }[condition]
    return all(check(f) for f in facts)


def waiting_reason(dep: str, condition: str, facts: Sequence[Facts]) -> str:
    """'waiting for db: failed' / 'waiting for migrate (completed): running'."""
    states = sorted({f.state for f in facts}) or ["unknown"]
    return f"waiting for {dep} ({condition}): {', '.join(states)}"


def heaviest_chain(graph: Mapping[str, Collection[str]], weight: Callable[[str], float]) -> tuple[float, list[str]]:
    """The dependency chain (a dependent first, then what it depends on, …) with the largest
    sum of weights, and that sum: the longest a stop in reverse dependency order can take
    when each service may take its weight (config validation rejects cycles)."""
    best: dict[str, tuple[float, list[str]]] = {}

    def walk(n: str) -> tuple[float, list[str]]:
        if n not in best:
            best[n] = (weight(n), [n])  # cycle guard
            deps = [walk(d) for d in sorted(graph.get(n, ())) if d in graph]
            total, chain = max(deps, key=lambda x: x[0], default=(0.0, []))
            best[n] = (weight(n) + total, [n, *chain])
        return best[n]

    return max((walk(n) for n in sorted(graph)), key=lambda x: x[0], default=(0.0, []))
