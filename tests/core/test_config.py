"""Config: one schema, every error at once with FILE:LINE and the key, defaults merged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from herder.config import load
from herder.config.units import format_duration, parse_duration, parse_signal, parse_size
from herder.errors import ConfigError


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(path)
    return [line.split(": ", 1)[1] if False else line for line in e.value.problems]


def test_every_error_at_once_with_line_key_and_expectation(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [herder]
        shutdown_timeout = "soon"

        [services.web]
        command = ["python3", "-m", "http.server"]
        restart = "allways"
        stop_signal = "TREM"
        backoff = { factor = 0.5, initial = "-1s" }
        colour = "blue"

        [services.worker]
        command = "python3 worker.py"
        depends_on = { web = "healthy", cache = "started" }
        stop_timeout = 10
        ''')
    errs = errors(p)
    text = "\n".join(errs)
    assert f"{p}:2: herder.shutdown_timeout: expected a duration" in text
    assert (f'{p}:6: services.web.restart: unknown value "allways" (did you mean "always"?); '
            "expected one of always, on-failure, never") in text
    assert f'{p}:7: services.web.stop_signal: expected a signal name such as TERM, INT, HUP or QUIT; got "TREM"' in text
    assert f"{p}:8: services.web.backoff.factor: 0.5 is too small; expected at least 1.0" in text
    assert f'{p}:8: services.web.backoff.initial: expected a duration such as "10s"' in text
    assert f"{p}:9: services.web.colour: unknown key; expected one of" in text
    assert f'{p}:13: services.worker.depends_on.cache: unknown service "cache"; expected one of web, worker' in text
    assert f"{p}:14: services.worker.stop_timeout: expected a duration string" in text
    assert len(errs) == 8


def test_errors_from_defaults_point_at_defaults(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [defaults]
        restart = "sometimes"

        [services.a]
        command = "true"
        [services.b]
        command = "true"
        restart = "never"
        ''')
    assert errors(p) == [f'{p}:2: defaults.restart: unknown value "sometimes"; '
                         "expected one of always, on-failure, never"]


def test_cycles_unknown_and_self_dependencies(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [services.a]
        command = "true"
        depends_on = ["b"]
        [services.b]
        command = "true"
        depends_on = { c = "completed" }
        [services.c]
        command = "true"
        depends_on = ["a", "c"]
        ''')
    text = "\n".join(errors(p))
    assert "dependency cycle a -> b -> c -> a; expected no cycles" in text
    assert f"{p}:9: services.c.depends_on.c: a service cannot depend on itself" in text


def test_missing_command_bad_types_and_toml_syntax(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [services.a]
        replicas = 0
        [services.b]
        command = []
        env = { X = [1] }
        ''')
    text = "\n".join(errors(p))
    assert f'{p}:1: services.a: missing key "command"; expected argv list' in text
    assert f"{p}:2: services.a.replicas: 0 is too small; expected at least 1" in text
    assert f"{p}:4: services.b.command: the command is empty" in text
    assert f"{p}:5: services.b.env: X: expected a string, number or boolean" in text
    bad = make_config("[services.a\ncommand = 1\n", name="bad.toml")
    assert errors(bad) == [f"{bad}:1: TOML syntax error: Expected ']' at the end of a table declaration"]
    assert errors(make_config("[servicez.a]\n", name="top.toml"))[0].endswith(   # docs/config.md: did you mean
        'top.toml:1: servicez: unknown table (did you mean "services"?); expected one of herder, defaults, services, '
        'alerts, hooks')


def test_partial_tables_merge_with_defaults_then_builtins(make_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("FROM_FILE=1\nBOTH=file\n")
    for replica in (0, 1):
        (tmp_path / "sub" / str(replica)).mkdir(parents=True)
    p = make_config('''\
        [herder]
        state_dir = "st"
        [defaults]
        backoff = { initial = "0s", max = "2s" }
        stop_timeout = "3s"
        env = { BOTH = "defaults" }

        [services.web]
        command = "python3 -m http.server '8000'"
        backoff = { factor = 3.0 }
        env_file = "app.env"
        env = { BOTH = "service" }
        replicas = 2
        cwd = "sub/{replica}"

        [services.sh]
        command = "echo $HOME | cat"
        shell = true
        ''')
    cfg = load(p)
    web = cfg.services["web"]
    assert web.command == ("python3", "-m", "http.server", "8000")
    assert (web.backoff.initial, web.backoff.factor, web.backoff.max, web.backoff.jitter) == (0.0, 3.0, 2.0, 0.1)
    assert web.stop_timeout == 3.0 and web.restart == "on-failure"
    assert web.env == {"FROM_FILE": "1", "BOTH": "service"}
    assert web.cwd == str(tmp_path / "sub/{replica}")
    assert cfg.services["sh"].command == ("/bin/sh", "-c", "echo $HOME | cat")
    assert cfg.state_dir == tmp_path / "st" and cfg.log_dir == tmp_path / "st" / "logs"


def test_shell_needs_a_string_and_env_file_must_exist(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [services.a]
        command = ["echo", "hi"]
        shell = true
        [services.b]
        command = "true"
        env_file = "missing.env"
        ''')
    text = "\n".join(errors(p))
    assert "services.a.command: shell = true needs the command as one string" in text
    assert f"{p}:6: services.b.env_file: cannot read" in text


def test_unknown_account_is_an_error(make_config: Callable[..., Path]) -> None:
    p = make_config('[services.a]\ncommand = "true"\nuser = "no-such-user-xyz"\n')
    assert "no-such-user-xyz" in "\n".join(errors(p))


def test_units() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25 and parse_duration("1h") == 3600
    assert parse_size("50MB") == 50 * 1024**2 and parse_size("512KB") == 512 * 1024 and parse_size("1GB") == 1024**3
    assert parse_signal("term").name == "SIGTERM" and parse_signal("SIGHUP").name == "SIGHUP"
    assert format_duration(90) == "1m30s" and format_duration(0.25) == "250ms"
    for bad in ("10", "-1s", "1 s", "", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_size("12 parsecs")
    with pytest.raises(ValueError):
        parse_signal("SIGNOPE")


def test_config_reference_is_generated_from_the_schema() -> None:
    from herder.config.docs import render

    doc = Path(__file__).parents[2] / "docs" / "config.md"
    assert doc.read_text() == render(), "docs/config.md is stale: run `make docs`"


def test_millisecond_stamps_never_go_back_at_a_second_boundary() -> None:
    from herder.units import stamp_ms

    before, after = 1_700_000_000.9999999, 1_700_000_001.0004
    assert stamp_ms(before) <= stamp_ms(after)  # the old code printed ...20.000 for `before`
    assert stamp_ms(before).endswith(":20.999") or stamp_ms(before).endswith(":21.000")


def test_generated_defaults_are_the_parsers_defaults() -> None:
    """docs/config.md's default column, parsed back with each key's own parser, gives the
    built-in default (it once showed examples: depends_on `{ db = "ready" }`, 5s …)."""
    import dataclasses
    import tomllib

    from herder.config.docs import rows, toml_default
    from herder.config.model import HerderSettings, ServiceSpec

    def leaves(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:  # type: ignore[type-arg]
        out = []
        for f in dataclasses.fields(cls):
            sub = f.metadata.get("table")
            out += leaves(sub, prefix + f.name + ".") if sub else [(prefix + f.name, f)]
        return out

    checked = 0
    for cls in (HerderSettings, ServiceSpec):
        shown = {key: default for key, kind, default, _ in rows(cls) if kind != "table"}
        for key, f in leaves(cls):
            text = shown[key]
            assert text == toml_default(f)
            if text in ("—", "(required)"):
                continue
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            raw = tomllib.loads(f"x = {text}")["x"]
            parse = f.metadata["parse"]
            assert parse(raw) == value, f"{key}: docs say {text}, the parser's default is {value!r}"
            checked += 1
    assert checked > 40
    # the three the operator hit
    svc = {k: d for k, _, d, _ in rows(ServiceSpec)}
    assert svc["depends_on"] == "{}" and svc["logs.forward"] == "[]" and svc["health.initial_delay"] == '"0s"'
