"""The issue-18 keys from the fault checklist: every bad value is an error with FILE:LINE,
the key and what was expected, all at once; good values load."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from herder.config import load
from herder.errors import ConfigError


def errors(path: Path, **kw: bool) -> str:
    with pytest.raises(ConfigError) as e:
        load(path, **kw)
    return "\n".join(e.value.problems)


def test_bad_lifecycle_values_each_say_where_and_what_is_expected(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [services.web]
        command = ["web"]
        schedule = "61 * * * *"
        timezone = "Mars/Olympus"
        overlap = "sometimes"
        restart_prevent_exit_codes = [256, "SIGNOPE"]
        restart_force_exit_codes = [true]
        hooks = { pre_start = { command = [], timeout = "nan" }, post_stop = { command = ["x"], timeout = "-1s" } }
        security = { capabilities = ["NET_BIND_SERVICES"], umask = "0999", read_only_paths = ["etc"] }

        [services.job]
        command = ["job"]
        schedule = "@fortnightly"
        restart_schedule = "0 3 * * *"

        [alerts]
        targets = ["not a url", "exec:"]
        on = ["failed", "sad"]
        storm_window = "0s"

        [hooks]
        on_event = { command = ["x"], on = ["exploded"] }
        ''')
    text = errors(p, check_accounts=False)
    for line, key, what in (
        (3, "services.web.schedule", "is not a cron expression"),
        (4, "services.web.timezone", 'unknown time zone "Mars/Olympus"'),
        (5, "services.web.overlap", "skip"),
        (6, "services.web.restart_prevent_exit_codes", "256 is not an exit code"),
        (7, "services.web.restart_force_exit_codes", "expected exit codes"),
        (8, "services.web.hooks.pre_start", ""),
        (8, "services.web.hooks.post_stop", "timeout"),
        (9, "services.web.security.capabilities", 'unknown capability "NET_BIND_SERVICES"'),
        (9, "services.web.security.umask", "octal"),
        (9, "services.web.security.read_only_paths", "not an absolute path"),
        (13, "services.job.schedule", 'unknown shorthand "@fortnightly"'),
        (17, "alerts.targets", '"not a url" is not a notification URL'),
        (18, "alerts.on", 'unknown alert condition "sad"'),
        (22, "hooks.on_event", 'unknown event kind "exploded"'),
    ):
        assert any(ln.startswith(f"{p}:{line}: {key}") and what in ln for ln in text.splitlines()), \
            (line, key, what, text)
    assert "NaN" not in text and "Traceback" not in text


def test_a_code_in_both_lists_and_a_job_with_a_restart_schedule_are_refused(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [services.web]
        command = ["web"]
        restart_prevent_exit_codes = [3]
        restart_force_exit_codes = [3]
        [services.job]
        command = ["job"]
        schedule = "@daily"
        restart_schedule = "@hourly"
        ''')
    text = errors(p, check_accounts=False)
    assert "services.web.restart_force_exit_codes: 3 is also in restart_prevent_exit_codes" in text
    assert "services.job.restart_schedule: a service with a schedule is a job" in text


def test_an_alert_url_apprise_cannot_use_is_refused(make_config: Callable[..., Path]) -> None:
    p = make_config('''\
        [alerts]
        targets = ["nosuchscheme://host/path", "json://127.0.0.1:9/ok", "exec:/bin/true"]
        [services.web]
        command = ["web"]
        ''')
    text = errors(p)
    assert '"nosuchscheme://host/path": apprise cannot use this URL' in text and "json://127.0.0.1:9/ok" not in text


def test_good_values_load(make_config: Callable[..., Path]) -> None:
    cfg = load(make_config('''\
        [services.job]
        command = ["job"]
        schedule = "*/5 9-17 * * mon-fri"
        timezone = "Europe/Paris"
        overlap = "queue"
        missed = "run"
        [services.web]
        command = ["web"]
        restart_schedule = "@daily"
        restart_prevent_exit_codes = [78, "SIGABRT"]
        hooks = { pre_start = "migrate --yes", pre_stop = { command = ["drain"], timeout = "1m" } }
        security = { umask = "027", clear_env = true, capabilities = ["cap_net_bind_service"] }
        '''), check_accounts=False)
    web = cfg.services["web"]
    assert web.security.capabilities == ("NET_BIND_SERVICE",) and web.security.umask == 0o27
    assert web.restart_prevent_exit_codes == (78, "SIGABRT")
    assert web.hooks.pre_start is not None and web.hooks.pre_start.command == ("migrate", "--yes")
    assert cfg.services["job"].restart == "never"


def test_the_running_config_record_round_trips_with_hooks_security_schedules_and_alerts(
        make_config: Callable[[str], Path]) -> None:
    """A decision process restarted by the keeper runs with the record of the config that
    was running (herder.config.to_record / from_record, through JSON): every issue-18 key
    must come back as the same objects (a hook came back as a dict and the core crashed on
    the restarted decision process's first HookDone)."""
    import json

    from herder.config import from_record, to_record

    cfg = load(make_config('''
        [alerts]
        targets = ["exec:true"]
        on = ["failed", "adopted"]
        [hooks]
        on_event = [{ command = ["true"], on = ["exit"] }]
        [services.web]
        command = ["sleep", "1000"]
        restart_schedule = "0 3 * * *"
        timezone = "Europe/Paris"
        restart_prevent_exit_codes = [3]
        [services.web.hooks]
        pre_start = { command = ["true"], timeout = "5s", privileged = true }
        post_stop = ["true"]
        [services.web.security]
        no_new_privileges = true
        capabilities = ["NET_BIND_SERVICE"]
        umask = "027"
        read_only_paths = ["/usr"]
        [services.job]
        command = ["true"]
        schedule = "*/5 * * * *"
        '''))
    back = from_record(json.loads(json.dumps(to_record(cfg))))
    assert back == dataclasses.replace(cfg, warnings=())
    assert back.services["web"].hooks.get("pre_start") == cfg.services["web"].hooks.get("pre_start")
