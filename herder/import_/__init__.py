"""Translations from other tools' configs to herder.toml (`herder import`, `herder init --from`).

Pure functions of their input files: each format module reads its files, builds a Draft
(the herder.toml to be, plus one report entry per source setting) and touches nothing
else. The CLI (herder/cli/import_cmd.py) writes the result after checking it with
herder's own config loader. One module per format, imported only when that format is
used: PyYAML, for instance, is loaded only for a PM2 YAML file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from herder.import_.draft import Draft
from herder.import_.values import Places

FORMATS = ("supervisord", "procfile", "pm2", "systemd")


@dataclass(frozen=True)
class Options:
    """Format-specific choices from the command line."""

    env: str | None = None          # procfile: the .env file(s), comma-separated; pm2: the env_<name> to apply
    formation: str | None = None    # procfile: foreman's -m, "all=1,web=2"


@dataclass(frozen=True)
class Translation:
    draft: Draft
    toml: str


def translate(fmt: str, files: list[Path], out_dir: Path, options: Options | None = None) -> Translation:
    """Translate `files` of format `fmt` into herder.toml text meant for `out_dir`.

    Raises ConfigError (`FILE:LINE: problem`) for input the source tool itself would refuse."""
    from herder.import_.toml_out import render

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    module = importlib.import_module(f"herder.import_.{fmt}")
    draft: Draft = module.translate(files, Places(out_dir), options or Options())
    return Translation(draft, render(draft))
