"""Broken input, for every format: `FILE[:LINE]: problem`, exit 2, no traceback, nothing written.

fault-checklist.md: empty, huge, NUL bytes, invalid UTF-8, a BOM, a FIFO, /dev/zero, a
folder, deep nesting (JSON/YAML).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERDER = str(Path(sys.executable).parent / "herder")
NAMES = {"supervisord": "supervisord.conf", "procfile": "Procfile", "pm2": "ecosystem.json",
         "systemd": "web.service"}
GOOD = {"supervisord": "[supervisord]\n[program:web]\ncommand=/bin/true\n", "procfile": "web: /bin/true\n",
        "pm2": '{"apps": [{"name": "web", "script": "/bin/true"}]}\n',
        "systemd": "[Service]\nExecStart=/bin/true\n"}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERDER, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def refused(r: subprocess.CompletedProcess[str], cwd: Path, where: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(where), r.stderr
    assert not (cwd / "herder.toml").exists()


CONTENTS = {
    "empty": b"",
    "nul": b"x\0y\n",
    "invalid-utf8": b"\xff\xfe\xfa\n",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("fmt", sorted(NAMES))
@pytest.mark.parametrize("case", sorted(CONTENTS))
def test_bad_bytes_are_refused_with_the_file_and_line(fmt: str, case: str, tmp_path: Path) -> None:
    f = tmp_path / NAMES[fmt]
    f.write_bytes(CONTENTS[case])
    refused(run(tmp_path, "import", fmt, f.name), tmp_path, f.name)


@pytest.mark.parametrize("fmt", sorted(NAMES))
def test_a_bom_is_read_as_text(fmt: str, tmp_path: Path) -> None:
    f = tmp_path / NAMES[fmt]
    f.write_bytes(b"\xef\xbb\xbf" + GOOD[fmt].encode())
    r = run(tmp_path, "import", fmt, f.name)
    assert r.returncode == 0, r.stderr
    assert run(tmp_path, "check").returncode == 0


@pytest.mark.parametrize("fmt", sorted(NAMES))
def test_huge_files_are_refused_without_reading_them_whole(fmt: str, tmp_path: Path) -> None:
    f = tmp_path / NAMES[fmt]
    with open(f, "wb") as out:
        out.truncate(17 * 1024 * 1024)
    refused(run(tmp_path, "import", fmt, f.name), tmp_path, f.name)


@pytest.mark.parametrize("fmt", sorted(NAMES))
def test_a_fifo_a_device_and_a_folder_are_refused_without_blocking(fmt: str, tmp_path: Path) -> None:
    fifo = tmp_path / NAMES[fmt]
    os.mkfifo(fifo)
    refused(run(tmp_path, "import", fmt, fifo.name), tmp_path, fifo.name)
    refused(run(tmp_path, "import", fmt, "/dev/zero"), tmp_path, "/dev/zero")
    (tmp_path / "d").mkdir()
    refused(run(tmp_path, "import", fmt, "d"), tmp_path, "d")
    refused(run(tmp_path, "import", fmt, "missing"), tmp_path, "missing")


@pytest.mark.parametrize("name,text", [
    ("ecosystem.json", '{"apps": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("ecosystem.yaml", "apps:\n" + "  - " * 1 + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("ecosystem.yml", "a: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n"),
])
def test_deep_nesting_is_refused(name: str, text: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(text)
    refused(run(tmp_path, "import", "pm2", name), tmp_path, name)


def test_a_yaml_alias_bomb_costs_nothing(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    lines += ['apps: [{name: web, script: /bin/true, env: {BOMB: *a9}}]']
    (tmp_path / "ecosystem.yaml").write_text("\n".join(lines) + "\n")
    r = run(tmp_path, "import", "pm2", "ecosystem.yaml")
    assert "Traceback" not in r.stderr
    assert r.returncode in (0, 2), r.stderr


def test_yaml_keys_that_are_not_strings_are_names_as_pm2_sees_them(tmp_path: Path) -> None:
    """`~:`, `1:` and `2024-01-01:` are keys YAML allows (found by test_fuzz: a traceback)."""
    (tmp_path / "process.yml").write_text("apps:\n  - script: /bin/true\n    ~: 1\n    7: x\n    2024-01-01: y\n"
                                          "    env: {~: a, 1: b}\n")
    r = run(tmp_path, "import", "pm2", "process.yml")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert run(tmp_path, "check").returncode == 0
    text = (tmp_path / "herder.toml").read_text()
    assert 'null = "a"' in text and '1 = "b"' in text


@pytest.mark.parametrize("fmt,text,where", [
    ("supervisord", "[program:web]\ncommand=/bin/true\nautostart=maybe\n", "supervisord.conf:3: autostart"),
    ("supervisord", "[program:web]\nautostart=true\n", "supervisord.conf:1: [program:web] has no command"),
    ("supervisord", "command=/bin/true\n[program:web]\n", "supervisord.conf:1: a setting before any"),
    ("supervisord", "[program:web]\ncommand=/bin/true\nnumprocs=2\n", "supervisord.conf:1: process_name"),
    ("supervisord", "[program:web]\ncommand=/bin/true %(nope)s\n", "supervisord.conf:2: command: %(nope)s"),
    ("supervisord", "[program:web]\ncommand='/bin/true\n", "supervisord.conf:2: command: cannot split"),
    ("supervisord", "[program:web]\ncommand=x\nenvironment=A=1,B\n", "supervisord.conf:3: environment"),
    ("supervisord", "[program:a b]\ncommand=x\n", "supervisord.conf:1: invalid program name"),
    ("supervisord", "[program:w]\ncommand=x %(process_num)999999999d\n", "supervisord.conf:2: command"),
    ("procfile", "just some words\n", "Procfile: no process line"),
    ("pm2", '{"apps": [{"name": "x"}]}', "ecosystem.json:1: apps[0] has no script"),
    ("pm2", '{"apps": [{"script": "a.js", "kill_timeout": "soon"}]}', "ecosystem.json:1: kill_timeout"),
    ("pm2", '{"apps": [1]}', "ecosystem.json:1: apps[0] is not an object"),
    ("pm2", "[]", "ecosystem.json: no app"),
    ("systemd", "[Unit]\nDescription=x\n", "web.service: no [Service] section"),
    ("systemd", "[Service]\nType=simple\n", "web.service: no ExecStart"),
    ("systemd", "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n", "web.service:3: ExecStart: more than one"),
    ("systemd", "[Service]\nExecStart=/bin/a 'x\n", "web.service:2: unbalanced"),
    ("systemd", "[Service]\nExecStart=/bin/a\nRestart=sometimes\n", "web.service:3: Restart"),
    ("systemd", "[Service]\nExecStart=/bin/a\nTimeoutStopSec=5 fortnights\n", "web.service:3: TimeoutStopSec"),
])
def test_input_the_source_tool_refuses_is_refused_with_its_line(fmt: str, text: str, where: str,
                                                                tmp_path: Path) -> None:
    f = tmp_path / NAMES[fmt] if fmt != "pm2" or not text.startswith("[]") else tmp_path / "ecosystem.json"
    f.write_text(text)
    refused(run(tmp_path, "import", fmt, f.name), tmp_path, where)


@pytest.mark.parametrize("key", ["WatchdogSec", "StartLimitIntervalSec", "RestartSec", "TimeoutStartSec",
                                 "RestartMaxDelaySec"])
def test_every_systemd_time_span_is_checked(key: str, tmp_path: Path) -> None:
    section = "Unit" if key.startswith("StartLimit") else "Service"
    (tmp_path / "web.service").write_text(f"[{section}]\n{key}=0in\n[Service]\nExecStart=/bin/a\nType=notify\n")
    refused(run(tmp_path, "import", "systemd", "web.service"), tmp_path, f"web.service:2: {key}")
