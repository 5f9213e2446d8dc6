"""`herder import` and `herder init` from the command line: what they write, what they
refuse to overwrite, the report forms, node-less PM2, and a light CLI import path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ctl_harness import run

PROCFILE = "web: python3 -m http.server $PORT\nworker: sleep 1000\n"


def test_import_writes_the_file_and_prints_the_report(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(PROCFILE)
    r = run("import", "procfile", "Procfile", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("herder import procfile Procfile → herder.toml: 2 services, 2 instances\n")
    assert "Procfile:1: web command = python3 -m http.server $PORT: carried → services.web.command" in r.stdout
    assert run("check", cwd=tmp_path).returncode == 0


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(PROCFILE)
    (tmp_path / "herder.toml").write_text("# mine\n")
    r = run("import", "procfile", "Procfile", cwd=tmp_path)
    assert r.returncode == 1 and "exists; pass --force" in r.stderr
    assert (tmp_path / "herder.toml").read_text() == "# mine\n"
    r = run("import", "procfile", "Procfile", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[services.web]" in (tmp_path / "herder.toml").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".herder-import")] == []


def test_stdout_output_and_report_files(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(PROCFILE)
    r = run("import", "procfile", "Procfile", "-o", "-", "--report", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# Imported from Procfile") and "[services.worker]" in r.stdout
    assert "report in r.json" in r.stderr and not (tmp_path / "herder.toml").exists()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["counts"]["carried"] >= 6
    assert {"file", "line", "scope", "key", "value", "status", "target", "note"} <= set(data["entries"][0])
    r = run("import", "procfile", "Procfile", "-o", "out.toml", "--report", "r.txt", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "r.txt").read_text().count("\n") > 5


def test_options_that_do_not_fit_the_format_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "web.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert run("import", "systemd", "web.service", "--formation", "web=2", cwd=tmp_path).returncode == 2
    assert run("import", "systemd", "web.service", "--env", "x", cwd=tmp_path).returncode == 2
    r = run("import", "procfile", "Procfile", "--formation", "web=lots", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_init_writes_a_starter_that_passes_check(tmp_path: Path) -> None:
    r = run("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "herder.toml").read_text()
    assert "[services.web]" in text and "# [services.web.ready]" in text and "# [services.web.health]" in text
    assert run("check", cwd=tmp_path).returncode == 0
    r = run("init", cwd=tmp_path)
    assert r.returncode == 1 and (tmp_path / "herder.toml").read_text() == text


def test_init_offers_what_the_folder_has_and_imports_it_with_from(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(PROCFILE)
    (tmp_path / "api.service").write_text("[Service]\nExecStart=/bin/true\n")
    r = run("init", cwd=tmp_path)
    assert r.returncode == 0
    assert "found Procfile (procfile): import it with `herder init --from Procfile`" in r.stdout
    assert "found api.service (systemd)" in r.stdout
    assert not (tmp_path / "herder.toml").exists()
    r = run("init", "--from", "Procfile", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[services.worker]" in (tmp_path / "herder.toml").read_text()
    r = run("init", "--blank", "--force", cwd=tmp_path)
    assert r.returncode == 0 and "python3" in (tmp_path / "herder.toml").read_text()
    assert run("init", "--from", "notes.txt", "--force", cwd=tmp_path).returncode == 2


def test_pm2_javascript_without_node_says_how_to_go_on(tmp_path: Path) -> None:
    (tmp_path / "ecosystem.config.js").write_text("module.exports = { apps: [{ script: 'a.js' }] }\n")
    env = {**os.environ, "PATH": str(tmp_path / "nothing")}
    r = run("import", "pm2", "ecosystem.config.js", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "node is not installed" in r.stderr and "ecosystem.json" in r.stderr


def test_a_failing_javascript_file_is_reported_with_nodes_message(tmp_path: Path) -> None:
    import shutil

    if shutil.which("node") is None:
        import pytest

        pytest.skip("node is not installed")
    (tmp_path / "ecosystem.config.js").write_text("module.exports = {\n  apps: [ oops ]\n}\n")
    r = run("import", "pm2", "ecosystem.config.js", cwd=tmp_path)
    assert r.returncode == 2 and "ReferenceError: oops is not defined" in r.stderr, r.stderr


def test_the_cli_does_not_load_the_importers_for_other_commands() -> None:
    code = ("import sys, herder.cli as c; c._parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('herder.import_') or m in ('yaml', 'dotenv')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
