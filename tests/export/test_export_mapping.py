"""The mapping declarations and the report: nothing herder.toml can say is dropped silently.

Every key a [services.NAME] table may hold has a rule on every target; exporting a config
that sets every key (tests/export/configs/full) gives every changed key of every service a
note; docs/export.md is generated from the same rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from export_cases import TARGETS, exported

from herder.config import load
from herder.export import MAPPINGS, REPORT_FILE
from herder.export.docs import render
from herder.export.report import NOT_CARRIED, Mapping, Report, Rule, changed_keys, leaf_keys


@pytest.mark.parametrize("target", TARGETS)
def test_every_config_key_has_a_rule(target: str) -> None:
    missing = [k for k in leaf_keys() if not MAPPINGS[target].covers(k)]
    assert missing == [], f"{target}: no rule for {missing}"


@pytest.mark.parametrize("config", ["shop", "full"])
@pytest.mark.parametrize("target", TARGETS)
def test_every_changed_key_is_in_the_report(config: str, target: str) -> None:
    result = exported(config, target)
    for name, spec in result.project.services.items():
        noted = {n.key for n in result.report.of(name)}
        for key in changed_keys(spec):
            # a whole table noted at once ("health" on systemd) covers its keys
            assert key in noted or any(key.startswith(k + ".") for k in noted), f"{target}: {name}.{key} not reported"


def test_the_full_config_touches_every_key() -> None:
    from export_cases import CONFIGS

    cfg = load(CONFIGS["full"], check_accounts=False)
    changed = {k for spec in cfg.services.values() for k in changed_keys(spec)}
    assert changed == set(leaf_keys()), f"full config leaves {set(leaf_keys()) - changed} at their defaults"


def test_report_names_what_is_not_carried_and_why() -> None:
    report = exported("shop", "compose").report
    note = report.find("worker", "ready.log")
    assert note is not None and note.status == NOT_CARRIED and "cannot be read from inside" in note.text
    text = exported("shop", "kubernetes").files[REPORT_FILE]
    assert "not carried   limits.nofile" in text and "Kubernetes has no per-container rlimits" in text
    assert exported("full", "kubernetes").report.find("db", "health.action").text.startswith(  # type: ignore[union-attr]
        "no Kubernetes equivalent: liveness omitted")


def test_a_rule_table_answers_for_its_keys_and_unknown_keys_fail_loudly() -> None:
    m = Mapping("t", [Rule("logs", "—", NOT_CARRIED, "why"), Rule("logs.max_size", "x", "carried")])
    assert m.rule("logs.max_files").key == "logs"
    assert m.rule("logs.max_size").key == "logs.max_size"
    with pytest.raises(KeyError):
        m.rule("ready.http")
    with pytest.raises(ValueError):
        Rule("x", "y", "sort of")
    with pytest.raises(ValueError):
        Mapping("t", [Rule("a", "b", "carried"), Rule("a", "c", "carried")])


def test_report_counts_and_render() -> None:
    r = Report("t")
    assert r.render().startswith("0 carried, 0 approximated, 0 not carried")


def test_docs_are_generated_from_the_rules() -> None:
    doc = Path(__file__).parents[2] / "docs" / "export.md"
    assert doc.read_text() == render(), "docs/export.md is stale: run `make docs`"
    for target, mapping in MAPPINGS.items():
        for rule in mapping.rules:
            assert f"`{rule.key}`" in doc.read_text(), f"{target}: {rule.key} missing from docs/export.md"


def test_compose_carries_security_and_swarm_reports_it() -> None:
    import yaml

    from herder.export import compose, swarm

    web = yaml.safe_load(exported("full", "compose").files[compose.FILE])["services"]["web"]
    assert web["security_opt"] == ["no-new-privileges:true"] and web["tmpfs"] == ["/tmp", "/var/tmp"]
    assert web["cap_drop"] == ["ALL"] and web["cap_add"] == ["NET_BIND_SERVICE"]
    stack = yaml.safe_load(exported("full", "swarm").files[swarm.FILE])["services"]["web"]
    assert not {"security_opt", "cap_drop", "tmpfs"} & set(stack)
    note = exported("full", "swarm").report.find("web", "security.no_new_privileges")
    assert note is not None and note.status == NOT_CARRIED and "ignores security_opt" in note.text
