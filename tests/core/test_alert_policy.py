"""The alert policy, pure: which events raise and clear which condition, de-duplication,
min_interval, the hourly budget, restart storms and their end, the services filter."""

from __future__ import annotations

from typing import Any

from herder.alerts.policy import Notice, Policy
from herder.config.alerts import Alerts


def policy(**kw: Any) -> Policy:
    return Policy(Alerts(targets=("json://127.0.0.1/x",), **kw))


def failed(p: Policy, now: float, inst: str = "web") -> list[Notice]:
    return p.observe(inst, "state", f"{inst}: starting -> failed", {"to": "failed", "reason": "gave up"}, now)


def running(p: Policy, now: float, inst: str = "web") -> list[Notice]:
    return p.observe(inst, "state", f"{inst}: starting -> running", {"to": "running"}, now)


def test_a_condition_is_sent_once_until_it_clears_then_resolved_with_the_repeats() -> None:
    p = policy(min_interval=0.0)
    [n] = failed(p, 0.0)
    assert n.title == "web: failed" and n.body == "gave up" and not n.resolved
    assert failed(p, 10.0) == [] and failed(p, 20.0) == []
    [r] = running(p, 100.0)
    assert r.resolved and r.title == "web: failed resolved" and "after 100s" in r.body
    assert "2 more like it" in r.body
    assert running(p, 110.0) == []             # nothing raised: nothing to resolve


def test_min_interval_holds_a_flapping_alert_and_counts_it() -> None:
    p = policy(min_interval=300.0, resolved=False)
    assert len(failed(p, 0.0)) == 1
    assert running(p, 10.0) == []              # resolved = false
    assert failed(p, 20.0) == []               # the same alert again within 5 min: held
    running(p, 30.0)
    [n] = failed(p, 400.0)
    assert "1 more like it since the last message" in n.body


def test_max_per_hour_is_a_sliding_budget_and_what_is_held_back_is_said() -> None:
    p = policy(max_per_hour=2, min_interval=0.0, resolved=False)
    assert len(failed(p, 0.0, "a")) == 1 and len(failed(p, 1.0, "b")) == 1
    assert failed(p, 2.0, "c") == [] and failed(p, 3.0, "d") == []
    [n] = failed(p, 3601.0, "e")
    assert "2 other alert(s) held back by max_per_hour = 2" in n.body


def test_a_restart_storm_raises_once_and_resolves_after_a_quiet_window() -> None:
    p = policy(storm_restarts=3, storm_window=60.0)
    out = [p.observe("w", "restart", "w: restarting", {}, t) for t in (0.0, 10.0)]
    assert out == [[], []]
    [n] = p.observe("w", "restart", "w: restarting in 1s (exit 1)", {}, 20.0)
    assert n.condition == "restart_storm" and "3 times within 60s" in n.body and "exit 1" in n.body
    assert p.observe("w", "restart", "again", {}, 30.0) == []
    assert p.due() == 90.0 and p.tick(89.0) == []
    [r] = p.tick(90.0)
    assert r.resolved and r.condition == "restart_storm" and p.due() is None


def test_restarts_spread_wider_than_the_window_are_no_storm() -> None:
    p = policy(storm_restarts=3, storm_window=60.0)
    assert all(p.observe("w", "restart", "r", {}, t) == [] for t in (0.0, 40.0, 80.0, 120.0, 160.0))


def test_filters_conditions_services_and_one_shots() -> None:
    p = policy(on=("oom", "hook_failed"), services=("web",), min_interval=0.0)
    assert failed(p, 0.0) == []                                    # failed is not in `on`
    assert p.observe("db", "exit", "db: oom", {"reason": "oom"}, 0.0) == []     # not in `services`
    assert len(p.observe("web.1", "exit", "oom", {"reason": "oom"}, 0.0)) == 1  # a replica of web
    assert len(p.observe("web.1", "exit", "oom", {"reason": "oom"}, 1.0)) == 1  # one-shot: every time
    bad = {"phase": "end", "ok": False, "hook": "pre_start", "stderr_tail": ["no db"]}
    [h] = p.observe("web", "hook", "web: pre_start hook exit 3", bad, 2.0)
    assert h.condition == "hook_failed" and h.body.endswith("no db")
    [ok] = p.observe("web", "hook", "web: pre_start ok", {"phase": "end", "ok": True, "hook": "pre_start"}, 3.0)
    assert ok.resolved


def test_the_host_name_is_in_every_title() -> None:
    p = Policy(Alerts(targets=("json://h/x",)), "box1")
    [n] = failed(p, 0.0)
    assert n.title == "[box1] web: failed"


def test_adopted_is_for_a_crash_not_for_a_planned_upgrade() -> None:
    """The core's `adopted` event after a crash raises the condition; after `herder upgrade`
    (Found.planned: the previous decision process handed over on purpose) it does not."""
    p = policy(on=("adopted",), min_interval=0.0)
    [n] = p.observe("web", "adopted", "web: adopted (pid 7), still running", {"pid": 7, "planned": False}, 0.0)
    assert n.condition == "adopted"
    assert p.observe("web", "adopted", "web: adopted (pid 7), still running", {"pid": 7, "planned": True}, 1.0) == []
