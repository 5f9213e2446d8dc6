"""Golden output per format, and every output accepted by herder's own config loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from golden import CASES, check_golden, translate_case

from herder.config import load


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output_and_report(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t, report = translate_case(name, tmp_path, monkeypatch)
    check_golden(name, "golden.toml", t.toml.replace(str(Path.cwd()), "<case>"))
    check_golden(name, "golden-report.txt", report)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_output_passes_the_config_loader(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t, _ = translate_case(name, tmp_path, monkeypatch)
    out = Path.cwd() / "herder.toml"
    out.write_text(t.toml)
    # accounts when root; not the programs (bundle, node …): an import need not run on this machine
    cfg = load(out, check_accounts=os.geteuid() == 0, check_programs=False)
    assert set(cfg.services) == set(t.draft.services)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_reported_setting_has_a_row_in_the_translation_table(name: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    t, _ = translate_case(name, tmp_path, monkeypatch)
    assert t.draft.unruled == []
    assert t.draft.entries, "an import reports every setting"


def test_docs_import_md_is_generated_from_the_tables() -> None:
    from herder.import_.docs import render

    doc = Path(__file__).parents[2] / "docs" / "import.md"
    assert doc.read_text() == render(), "docs/import.md is stale: run `make docs`"
