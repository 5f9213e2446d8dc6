"""Mutation fuzzing per parser: any mutation of a real-world file either imports into a
herder.toml that herder's loader accepts, or is refused with a ConfigError. Never anything
else (a traceback)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from golden import CASES_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herder.config import load
from herder.errors import ConfigError
from herder.import_ import Options, translate

SPECIAL = {
    "supervisord": "[]=:;#%()sd\n \t\\\"',_-program:numprocs=process_num ENV_",
    "procfile": ":=$#\n \t\"'-_.",
    "pm2": '{}[]:,"\n \t\\-_01 name script apps env instances true null',
    "systemd": "[]=\\\"'%$;#\n \t-@:+!{}ExecStart Service",
}
SEEDS = {
    "supervisord": ("supervisord-sample", "supervisord.conf"),
    "procfile": ("procfile-foreman", "Procfile"),
    "pm2-json": ("pm2-json", "ecosystem.json"),
    "pm2-yaml": ("pm2-yaml", "process.yml"),
    "systemd": ("systemd-debian", "app.service"),
}


@st.composite
def mutated(draw: st.DrawFn, seed: str, alphabet: str) -> str:
    text = seed
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        chunk = draw(st.text(st.sampled_from(alphabet) | st.characters(blacklist_categories=("Cs",)), max_size=12))
        if op == "insert":
            text = text[:i] + chunk + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + chunk + text[j:]
        else:
            text = text[:i] + text[i:j] * 2 + text[j:]
    return text


def _one(fmt: str, where: Path, name: str, text: str) -> None:
    (where / name).write_text(text, encoding="utf-8")
    try:
        t = translate(fmt, [Path(name)], where, Options(env="production" if fmt == "pm2" else None))
    except ConfigError as e:
        assert e.problems and all(p.startswith(tuple(str(x) for x in (name, where, "/", "--", "sub", "conf.d")))
                                  or ":" in p for p in e.problems)
        return
    (where / "herder.toml").write_text(t.toml)
    load(where / "herder.toml", check_accounts=False)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_mutations_import_or_are_refused_never_a_traceback(seed: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    case, name = SEEDS[seed]
    fmt = seed.split("-")[0]
    where = tmp_path / case
    shutil.copytree(CASES_DIR / case, where)
    monkeypatch.chdir(where)
    monkeypatch.setenv("HERDER_IMPORT_TEST", "x")
    original = (where / name).read_text()

    # pm2-json runs node on every mutation PM2's own JSON reader would evaluate: fewer examples
    examples = int(os.environ.get("HERDER_FUZZ_EXAMPLES", "60" if seed == "pm2-json" else "150"))

    @settings(max_examples=examples, deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    @given(mutated(original, SPECIAL[fmt]))
    def run(text: str) -> None:
        _one(fmt, where, name, text)

    run()
