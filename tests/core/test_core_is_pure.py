"""The core decides without I/O: no module of herder.core imports os, asyncio, time,
subprocess, socket or threading (architecture.md rule 15), at the top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "herder" / "core"
FORBIDDEN = {"os", "asyncio", "time", "subprocess", "socket", "threading", "selectors"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
