"""The import test cases: real-world shapes of each format, with golden output.

Each folder in cases/ holds the source files of one case; CASES says how it is imported.
`translate_case` runs the import in a copy of the folder (paths in the output and the
report are then relative and stable). HERDER_UPDATE_GOLDEN=1 rewrites the goldens.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from herder.import_ import Options, Translation, translate
from herder.import_.report import render_text

CASES_DIR = Path(__file__).parent / "cases"
CASES: dict[str, tuple[str, list[str], Options]] = {
    "supervisord-sample": ("supervisord", ["supervisord.conf"], Options()),
    "supervisord-quirks": ("supervisord", ["supervisord.conf"], Options()),
    "procfile-heroku": ("procfile", ["Procfile"], Options()),
    "procfile-foreman": ("procfile", ["Procfile"], Options(formation="all=1,web=2,css=0")),
    "pm2-json": ("pm2", ["ecosystem.json"], Options(env="production")),
    "pm2-yaml": ("pm2", ["process.yml"], Options(env="production")),
    "pm2-js": ("pm2", ["ecosystem.config.js"], Options()),
    "systemd-debian": ("systemd", ["app.service", "db.service", "migrate.service"], Options()),
}
NEEDS_NODE = {"pm2-js"}
INPUTS = {"golden.toml", "golden-report.txt"}


def copy_case(name: str, dest: Path) -> Path:
    shutil.copytree(CASES_DIR / name, dest / name, ignore=shutil.ignore_patterns(*INPUTS))
    return dest / name


def translate_case(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Translation, str]:
    if name in NEEDS_NODE and shutil.which("node") is None:
        pytest.skip("node is not installed: ecosystem.config.js cannot be evaluated")
    fmt, files, options = CASES[name]
    where = copy_case(name, tmp_path)
    monkeypatch.chdir(where)
    monkeypatch.setenv("HERDER_IMPORT_TEST", "from-env")
    t = translate(fmt, [Path(f) for f in files], where, options)
    report = render_text("report", t.draft.entries) + "".join(f"warning: {w}\n" for w in t.draft.warnings)
    return t, report.replace(str(where), "<case>")


def check_golden(name: str, file: str, text: str) -> None:
    path = CASES_DIR / name / file
    if os.environ.get("HERDER_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden {path}: run with HERDER_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name}/{file} differs from the golden (HERDER_UPDATE_GOLDEN=1 to accept)"
