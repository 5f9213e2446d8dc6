"""The reload plan is a pure diff of two sets of service definitions."""

from __future__ import annotations

import dataclasses

from herder.config.model import HerderSettings, ServiceSpec
from herder.core.plan import diff


def spec(**kw):
    return ServiceSpec(command=("sleep", "1"), **kw)


def test_add_remove_restart_scale_unchanged():
    old = {"a": spec(), "b": spec(), "w": spec(replicas=2), "gone": spec(), "one": spec()}
    new = {"a": spec(), "b": spec(env={"X": "1"}), "w": spec(replicas=4), "one": spec(replicas=3), "c": spec()}
    p = diff(old, new)
    assert p.add == ("c",) and p.remove == ("gone",) and p.unchanged == ("a",)
    assert p.restart == {"b": ("env",), "one": ("replicas",)}   # 1 -> 3 renames the instance: restart
    assert p.scale == {"w": (2, 4)}
    lines = p.lines()
    assert "+ add      c" in lines and "~ restart  b (changed: env)" in lines and "  keep     a" in lines


def test_nothing_changed_and_settings():
    s = {"a": spec()}
    p = diff(s, dict(s), HerderSettings(), dataclasses.replace(HerderSettings(), shutdown_timeout=5.0))
    assert p.settings == ("shutdown_timeout",) and not p.restart and not p.add
    assert diff(s, dict(s)).empty and diff(s, dict(s)).lines() == ["  keep     a", "nothing to change"]
