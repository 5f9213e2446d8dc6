"""Any file content through the config loader (issue 13): a `FILE:LINE: key: problem; expected …`
message or a valid config — never a traceback, never a hang.

The cases the audit found, then a fuzz corpus: hypothesis writes configs from herder's own
keys with hostile values (NaN, inf, huge numbers and strings, NUL, deep lists, wrong types),
then mutates their bytes (cuts, inserted garbage, duplicated lines). Derandomized, so a
failure reproduces; every example goes through `load`, the function `check`, `up` and
`reload` share.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herder.config import MAX_DEPTH, load
from herder.config.model import Backoff, Health, HerderSettings, Limits, Logs, Ready, ServiceSpec, StartLimit
from herder.config.schema import describe_fields
from herder.errors import ConfigError


def outcome(path: Path) -> list[str]:
    """The problems load() reports ([] for a valid config); anything else fails the test."""
    try:
        load(path)
    except ConfigError as e:
        assert e.problems, "a ConfigError without problems"
        for line in e.problems:
            assert line.startswith(str(path)), line
            assert "Traceback" not in line
        return e.problems
    return []


def write(tmp_path: Path, data: bytes | str, name: str = "herder.toml") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


OK = '[services.a]\ncommand = "true"\n'


@pytest.mark.parametrize(("text", "expect"), [
    (OK + "x = " + "[" * 1000 + "]" * 1000 + "\n", ":3: nested too deeply; expected tables and lists at most"),
    ("a" + ".b" * 2000 + " = 1\n", ":1: a.b.b: nested too deeply"),
    (OK + "env = " + "{ a = " * 40 + "1" + " }" * 40 + "\n", "nested too deeply"),
    (OK + 'user = "ro\\u0000ot"\n', ':3: services.a.user: contains a NUL character'),
    (OK + 'group = "\\u0000"\n', ':3: services.a.group: contains a NUL character'),
    ('[services.a]\ncommand = ["true", "a\\u0000"]\n', ":2: services.a.command.1: contains a NUL character"),
    (OK + 'env = { A = "x\\u0000" }\n', ":3: services.a.env.A: contains a NUL character"),
    (OK + 'cwd = "/tmp\\u0000"\n', ":3: services.a.cwd: contains a NUL character"),
    (OK + '"k\\u0000" = 1\n', "a key contains a NUL character"),
    (OK + "env = { \"\" = \"x\" }\n", ':3: services.a.env: "" is not a variable name'),
    (OK + "env = { \"A=B\" = \"x\" }\n", ':3: services.a.env: "A=B" is not a variable name'),
    (OK + "backoff = { factor = nan }\n", ":3: services.a.backoff.factor: expected a finite number; got nan"),
    (OK + "backoff = { jitter = inf }\n", "services.a.backoff.jitter: expected a finite number; got inf"),
    (OK + "limits = { cpu = nan }\n", "services.a.limits.cpu: expected a number of CPUs above zero"),
    (OK + "limits = { cpu = -inf }\n", "services.a.limits.cpu: expected a number of CPUs above zero"),
    (OK + "limits = { nofile = 99999999999999999999 }\n", "services.a.limits.nofile: expected a whole number ≥ 0"),
    (OK + "replicas = 99999999999999999999999\n", "services.a.replicas: 99999999999999999999999 is too large"),
    ('[herder]\njournal_max_rows = 99999999999999999999\n' + OK,
     "herder.journal_max_rows: 99999999999999999999 is too large"),
    (OK + f'stop_timeout = "{"9" * 400}s"\n',
     "services.a.stop_timeout: \"" + "9" * 60 + "…\" (401 characters) is too long"),
    (OK + f'logs = {{ max_size = "{"9" * 400}MB" }}\n', "services.a.logs.max_size: \"" + "9" * 60),
    (OK + "success_exit_codes = [256]\n", "services.a.success_exit_codes: expected a list of exit codes"),
    ("\x00\x01\x02", ":1: TOML syntax error"),
    (OK + "\xff\xfe\n", None),                                # written as UTF-8 text: valid garbage keys
])
def test_hostile_values_get_a_line_a_key_and_an_expectation(tmp_path: Path, text: str, expect: str | None) -> None:
    problems = outcome(write(tmp_path, text))
    assert problems, "accepted"
    if expect is not None:
        assert any(expect in p for p in problems), problems


def test_invalid_utf8_says_which_line(tmp_path: Path) -> None:
    p = write(tmp_path, OK.encode() + b"x = \xff\xfe\n")
    assert outcome(p) == [f"{p}:3: not UTF-8 text (invalid start byte at byte 34); expected a TOML file in UTF-8"]


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    assert outcome(write(tmp_path, b"\xef\xbb\xbf" + OK.encode())) == []


def test_binary_and_huge_files(tmp_path: Path) -> None:
    p = write(tmp_path, os.urandom(64 * 1024))
    assert outcome(p)
    big = write(tmp_path, OK + "# " + "x" * (10 * 1024 * 1024) + "\n")
    assert outcome(big) == [f"{big}: is over 4 MB; expected a TOML file of a sane size"]


def test_not_regular_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)                 # opening it for reading would block until a writer comes
    assert outcome(fifo) == [f"{fifo}: is a FIFO, not a regular file; expected a TOML file"]
    assert outcome(Path("/dev/zero")) == ["/dev/zero: is a device, not a regular file; expected a TOML file"]
    assert outcome(tmp_path) == [f"{tmp_path}: is a directory, not a regular file; expected a TOML file"]


def test_an_env_file_is_read_like_a_config(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.env")
    p = write(tmp_path, OK + 'env_file = "fifo.env"\n')
    assert any("services.a.env_file: is a FIFO" in x for x in outcome(p))
    p = write(tmp_path, OK + 'env_file = "/dev/zero"\n')
    assert any("services.a.env_file: is a device" in x for x in outcome(p))


@pytest.mark.parametrize(("text", "expect"), [
    ('[services.a]\ncommand = "no-such-program-xyz"\n', "services.a.command: command not found: no-such-program-xyz"),
    ('[services.a]\ncommand = ["/no/such/program"]\n', "services.a.command: /no/such/program: no such file"),
    ('[services.a]\ncommand = ["TMP/plain.txt"]\n', "services.a.command: TMP/plain.txt is not executable (mode 0644)"),
    ('[services.a]\ncommand = ["/tmp"]\n', "services.a.command: /tmp is not executable"),
    ('[services.a]\ncommand = "true"\ncwd = "/no/such/dir"\n', "services.a.cwd: /no/such/dir is not a folder"),
    ('[services.a]\ncommand = "true"\nenv = { PATH = "/nowhere" }\n',
     "command not found: true (searched PATH=/nowhere)"),
])
def test_values_that_would_make_every_start_fail_are_errors(tmp_path: Path, text: str, expect: str) -> None:
    (tmp_path / "plain.txt").write_text("")
    (tmp_path / "plain.txt").chmod(0o644)
    text, expect = text.replace("TMP", str(tmp_path)), expect.replace("TMP", str(tmp_path))
    problems = outcome(write(tmp_path, text))
    assert any(expect in p for p in problems), problems


def test_they_are_warnings_when_a_dependency_may_make_them(tmp_path: Path) -> None:
    p = write(tmp_path, '[services.build]\ncommand = "true"\n'
                        '[services.app]\ncommand = ["./out/app"]\ncwd = "."\ndepends_on = { build = "completed" }\n')
    cfg = load(p)
    assert cfg.warnings == (f"{p}:4: services.app.command: warning: ./out/app: no such file; it may appear before "
                            "the service starts (it waits for its dependencies); expected an installed program",)


@pytest.mark.skipif(os.geteuid() != 0, reason="another account needs root")
def test_a_program_the_services_account_cannot_reach(tmp_path: Path) -> None:
    """The cause of a flaky test: a program run as nobody from a checkout in a 0700 folder."""
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="herder-test-"))
    try:
        public.chmod(0o755)
        hidden = public / "private"
        hidden.mkdir(mode=0o700)
        (hidden / "run.sh").write_text("#!/bin/sh\n")
        (hidden / "run.sh").chmod(0o755)
        p = write(tmp_path, f'[services.a]\ncommand = ["{hidden / "run.sh"}"]\nuser = "nobody"\n')
        problems = outcome(p)
        assert any(f"services.a.command: {hidden} cannot be entered by nobody, so {hidden / 'run.sh'} cannot be run"
                   in x for x in problems), problems
        (hidden / "run.sh").rename(public / "run.sh")
        assert outcome(write(tmp_path, f'[services.a]\ncommand = ["{public / "run.sh"}"]\nuser = "nobody"\n')) == []
    finally:
        shutil.rmtree(public)


# ---- the fuzz corpus -------------------------------------------------------------------

def _keys(cls: type) -> list[str]:
    return [row[0].rsplit(".", 1)[-1] for row in describe_fields(cls)]


SERVICE_KEYS = _keys(ServiceSpec)
TABLE_KEYS = {"backoff": _keys(Backoff), "start_limit": _keys(StartLimit), "logs": _keys(Logs),
              "ready": _keys(Ready), "health": _keys(Health), "limits": _keys(Limits)}
HERDER_KEYS = _keys(HerderSettings)
WORDS = ["10s", "-1s", "0s", "1m30s", "250ms", "512MB", "0", "TERM", "SIGKILL", "always", "never", "tree", "notify",
         "http://127.0.0.1:1/", "127.0.0.1:0", "[::1]:80", "", " ", "{replica}", "true", "/bin/true", "/dev/zero",
         "..", "\x00", "\u202e", "a" * 300, "(", "*", "\\", "unlimited", "auto", "merge", "null", "inherit", "journald"]
SCALARS = (st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.sampled_from(WORDS))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.sampled_from(WORDS[:12]) | st.text(max_size=8), kids, max_size=3),
                      max_leaves=12)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items()) + "}"


D, SZ = ["1s", "100ms", "0s"], ["1MB", "64KB"]
VALID: dict[str, list[Any]] = {
    "command": [["true"], "true", ["sleep", "1"]], "shell": [False], "cwd": ["/tmp", "."], "env": [{"A": "1"}],
    "user": ["root", "nobody"], "group": ["root", "nogroup"], "replicas": [1, 2], "autostart": [True, False],
    "restart": ["always", "never", "on-failure"], "success_exit_codes": [[0, 1]], "min_uptime": D,
    "stop_signal": ["TERM"], "stop_timeout": D, "kill": ["tree", "group", "main"], "reload_signal": ["HUP"],
    "depends_on": [[], {}], "bind": [False], "initial": D, "max": D, "reset_after": D, "interval": D, "timeout": D,
    "attempt_timeout": D, "initial_delay": D, "memory_check_interval": D, "rotate_every": D, "factor": [2.0],
    "jitter": [0.1], "burst": [3], "stdout": ["auto", "null"], "stderr": ["merge", "auto"], "timestamps": [True],
    "format": ["json"], "max_size": SZ, "buffer": SZ, "max_line": SZ, "max_files": [3], "compress": [False],
    "on_overflow": ["drop"], "tail_lines": [5], "forward": [[]], "notify": [True], "http": ["http://127.0.0.1:1/"],
    "tcp": ["127.0.0.1:1"], "exec": [["true"]], "log": ["ready"], "body": ["ok"], "failure_threshold": [2],
    "success_threshold": [1], "action": ["none"], "watchdog": ["10s"], "memory": ["100MB"], "cpu": [0.5],
    "max_memory_restart": ["50MB"], "nofile": [1024], "nproc": [100], "core": [0], "state_dir": [".herder"],
    "log_dir": ["logs"], "shutdown_timeout": D, "cgroups": [False], "socket_group": ["root"],
    "api_tcp": ["127.0.0.1:0"], "journal_max_age": ["1d"], "journal_max_rows": [1000]}
POISON = ["\x00", "\u202e", "9" * 400, "{replica}", "/../", " ", "\n"]


def poisoned(v: Any, p: Any, front: bool) -> Any:
    """A valid value with a hostile string put before or after its text (non-strings replace it)."""
    if not isinstance(p, str):
        return p
    if isinstance(v, str):
        return p + v if front else v + p
    if isinstance(v, list) and v and isinstance(v[0], str):
        return [poisoned(v[0], p, front), *v[1:]]
    if isinstance(v, dict):
        return {k: poisoned(x, p, front) for k, x in v.items()}
    return v


def value_for(key: str) -> st.SearchStrategy[Any]:
    """Mostly what herder accepts (so validation goes deep), else the same poisoned, else anything."""
    valid = VALID.get(key, [True])
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.builds(
        poisoned, st.sampled_from(valid), st.sampled_from(POISON), st.booleans()), VALUES)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append("[herder]")
        for k in draw(st.lists(st.sampled_from(HERDER_KEYS), max_size=4, unique=True)):
            lines.append(f"{k} = {toml_value(draw(value_for(k)))}")
    for name in draw(st.lists(st.sampled_from(["a", "b", "web", "x-1", "bad name", "ü"]), min_size=1, max_size=3,
                              unique=True)):
        lines.append(f"[services.{json.dumps(name, ensure_ascii=False)}]")
        lines.append(f"command = {toml_value(draw(value_for('command')))}")
        for k in draw(st.lists(st.sampled_from(SERVICE_KEYS), max_size=5, unique=True)):
            if k in TABLE_KEYS:
                sub = draw(st.lists(st.sampled_from(TABLE_KEYS[k]), max_size=3, unique=True))
                lines.append(f"{k} = {toml_value({x: draw(value_for(x)) for x in sub})}")
            elif k != "command":
                lines.append(f"{k} = {toml_value(draw(value_for(k)))}")
    return "\n".join(lines) + "\n"


MUTATIONS = st.lists(st.tuples(st.sampled_from(["cut", "insert", "flip", "dup", "token"]),
                               st.integers(0, 10_000), st.binary(max_size=8)), max_size=4)
TOKENS = [b"[", b"]", b"{", b"}", b'"', b"'''", b"\\u0000", b"\x00", b"\n[services.a]\n", b"nan", b"=", b".",
          b"\xef\xbb\xbf"]


def mutate(data: bytes, steps: list[tuple[str, int, bytes]]) -> bytes:
    for op, at, blob in steps:
        at = at % (len(data) + 1)
        if op == "cut":
            data = data[:at] + data[at + len(blob) * 3:]
        elif op == "insert":
            data = data[:at] + blob + data[at:]
        elif op == "flip" and data:
            i = at % len(data)
            data = data[:i] + bytes([data[i] ^ (blob[0] if blob else 0xFF)]) + data[i + 1:]
        elif op == "dup":
            data = data[:at] + data[at // 2:at] + data[at:]
        else:
            data = data[:at] + TOKENS[at % len(TOKENS)] + data[at:]
    return data


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(doc=documents())
def test_fuzz_generated_configs_never_crash(tmp_path: Path, doc: str) -> None:
    outcome(write(tmp_path, doc))


@FUZZ
@given(doc=documents(), steps=MUTATIONS)
def test_fuzz_mutated_configs_never_crash(tmp_path: Path, doc: str, steps: list[tuple[str, int, bytes]]) -> None:
    outcome(write(tmp_path, mutate(doc.encode(), steps)))


POISONED = [(k, v, p) for k, vs in VALID.items() for v in vs[:1] for p in [*POISON, "", [], {}, 2 ** 64, math.nan]]


def _place(key: str, value: Any) -> str:
    """One valid service with `key` set to value (in its table for table keys)."""
    table = next((t for t, keys in TABLE_KEYS.items() if key in keys and key not in SERVICE_KEYS), None)
    if key in HERDER_KEYS and key not in SERVICE_KEYS:
        return f"[herder]\n{key} = {toml_value(value)}\n" + OK
    if table is not None:
        return OK + f"{table} = {toml_value({key: value})}\n"
    if key == "command":
        return f"[services.a]\ncommand = {toml_value(value)}\n"
    return OK + f"{key} = {toml_value(value)}\n"


def test_every_key_poisoned_in_an_otherwise_valid_config(tmp_path: Path) -> None:
    """Each key of herder's schema, in a config that is valid otherwise, with each hostile value
    (a poison put before and after a valid string, or in its place): the random fuzz above
    rarely makes everything else valid at once, and only then do the later checks run."""
    for key, valid, poison in POISONED:
        for front in (False, True):
            outcome(write(tmp_path, _place(key, poisoned(valid, poison, front))))


def test_max_depth_is_what_herders_own_tables_need() -> None:
    assert MAX_DEPTH >= 6      # services.NAME.health.exec.0 is 5 deep
