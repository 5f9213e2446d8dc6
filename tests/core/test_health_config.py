"""[services.*.ready], [services.*.health], [services.*.limits]: parsing and clear errors."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from herder.config import load
from herder.errors import ConfigError


def load_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "herder.toml"
    path.write_text(text)
    return load(path, check_accounts=False)  # parsing only: "srv" and "x" are not installed here


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    return e.value.problems


def test_full_tables_parse(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, """
[services.web]
command = "srv"
[services.web.ready]
http = "http://127.0.0.1:8000/ready"
timeout = "30s"
[services.web.health]
http = "http://127.0.0.1:8000/health"
body = "ok"
interval = "10s"
timeout = "2s"
initial_delay = "5s"
failure_threshold = 3
success_threshold = 2
action = "none"
watchdog = "30s"
[services.web.limits]
memory = "512MB"
cpu = 0.5
max_memory_restart = "400MB"
nofile = 4096
nproc = 100
core = "unlimited"
""")
    s = cfg.services["web"]
    assert s.ready.kind == "http" and s.ready.timeout == 30.0
    h = s.health
    assert (h.kind, h.initial_delay, h.success_threshold, h.watchdog) == ("http", 5.0, 2, 30.0)
    assert s.limits.memory == 512 * 1024 ** 2 and s.limits.cpu == 0.5 and s.limits.core == resource.RLIM_INFINITY


def test_defaults_are_no_checks(tmp_path: Path) -> None:
    s = load_text(tmp_path, '[services.a]\ncommand = "x"\n').services["a"]
    assert s.ready.kind is None and s.health.kind is None and s.health.watchdog is None
    assert s.limits.memory is None


def test_defaults_may_set_a_ready_timeout_alone(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '[defaults]\nready = { timeout = "5s" }\n[services.a]\ncommand = "x"\n'
                              '[services.b]\ncommand = "x"\nready = { notify = true }\n')
    assert cfg.services["a"].ready.kind is None and cfg.services["b"].ready.timeout == 5.0


def test_two_readiness_kinds(tmp_path: Path) -> None:
    (e,) = errors(tmp_path, '[services.a]\ncommand = "x"\n[services.a.ready]\nnotify = true\ntcp = "h:1"\n')
    assert e.endswith("herder.toml:5: services.a.ready.tcp: set only one readiness check; got notify and tcp")


def test_two_health_kinds_and_body_without_http(tmp_path: Path) -> None:
    out = errors(tmp_path, '[services.a]\ncommand = "x"\nhealth = { tcp = "h:1", exec = ["true"] }\n'
                           '[services.b]\ncommand = "x"\nhealth = { tcp = "h:1", body = "ok" }\n')
    assert any("services.a.health.exec: set only one health probe; got tcp and exec" in e for e in out)
    assert any("services.b.health.body: body is only checked with an http probe" in e for e in out)


@pytest.mark.parametrize("line, expect", [
    ('ready = { http = "ftp://x/" }', "services.a.ready.http: expected an http:// or https:// URL"),
    ('ready = { tcp = "localhost" }', 'services.a.ready.tcp: expected "host:port"'),
    ('ready = { log = "(" }', "services.a.ready.log: not a valid regular expression"),
    ('ready = { exec = [] }', "services.a.ready.exec: the command is empty"),
    ('health = { http = "http://h/", action = "kill" }', "services.a.health.action: unknown value"),
    ('health = { tcp = "h:1", failure_threshold = 0 }', "services.a.health.failure_threshold: 0 is too small"),
    ('health = { watchdog = "0s" }', "services.a.health.watchdog: expected a duration above zero"),
    ('limits = { memory = "lots" }', "services.a.limits.memory: expected a size"),
    ('limits = { cpu = 0 }', "services.a.limits.cpu: expected a number of CPUs above zero"),
    ('limits = { nofile = -1 }', 'services.a.limits.nofile: expected a whole number ≥ 0 or "unlimited"'),
    ('limits = { memory = "100MB", max_memory_restart = "200MB" }',
     "services.a.limits.max_memory_restart: must be below"),
    ('limits = { swap = "1GB" }', "services.a.limits.swap: unknown key"),
])
def test_bad_values(tmp_path: Path, line: str, expect: str) -> None:
    out = errors(tmp_path, f'[services.a]\ncommand = "x"\n{line}\n')
    assert any(expect in e for e in out), out


def test_restart_action_with_restart_never(tmp_path: Path) -> None:
    (e,) = errors(tmp_path, '[services.a]\ncommand = "x"\nrestart = "never"\nhealth = { tcp = "h:1" }\n')
    assert "services.a.health.action" in e and 'expected action = "none"' in e


def test_log_readiness_needs_a_file(tmp_path: Path) -> None:
    (e,) = errors(tmp_path, '[services.a]\ncommand = "x"\nready = { log = "up" }\nlogs = { stdout = "inherit" }\n')
    assert "services.a.ready.log: needs the output in a file" in e
