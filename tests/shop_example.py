"""The shop example (examples/shop) as the engine tiers use it: variants, exports, the image.

A variant is a copy of the example whose herder.toml has some values replaced (a failing
migration, a slow drain, a new version); it is exported with the real CLI (`python -m
herder export`), exactly as a user would, and the engines run the exported file unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "examples" / "shop"
CONTAINER = ROOT / "examples" / "container"     # herder as a container's init (issue 19)
IMAGE = "herder-shop:test"
FULL = ROOT / "tests" / "export" / "configs" / "full" / "herder.toml"   # every herder key set


def variant(dest: Path, **changes: tuple[str, str]) -> Path:
    """Copy the shop into dest and apply each (old, new) text change to its herder.toml;
    the change must apply (the test is about that value)."""
    return variant_of(SHOP, dest, changes)


def variant_of(example: Path, dest: Path, changes: dict[str, tuple[str, str]]) -> Path:
    """`variant` of any example (examples/container for the container tier)."""
    shutil.copytree(example, dest, ignore=shutil.ignore_patterns("__pycache__", ".herder"))
    path = dest / "herder.toml"
    text = path.read_text()
    for what, (old, new) in changes.items():
        assert old in text, f"{what}: {old!r} is not in {example.name}'s herder.toml"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def export(config: Path, target: str, out: Path, image: str = IMAGE) -> str:
    """Run `herder export TARGET -c config -o out --image image`; the report's text."""
    image_args = [] if target == "systemd" else ["--image", image]
    res = subprocess.run([sys.executable, "-m", "herder", "export", target, "-c", str(config), "-o", str(out),
                          *image_args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"herder export {target} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return (out / "export-report.txt").read_text()


def stamp(rfc3339: str) -> float:
    """Docker's RFC 3339 with nanoseconds → unix seconds."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def log_time(logs: str, needle: str) -> float:
    """Time of the first `docker logs -t` line containing needle."""
    for line in logs.splitlines():
        ts, _, text = line.partition(" ")
        if needle in text:
            return stamp(ts)
    raise AssertionError(f"no line with {needle!r} in:\n{logs}")
