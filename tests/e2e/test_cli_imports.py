"""What the CLI imports on its everyday path (docs/performance.md: `herder status`)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def test_status_imports_no_argparse(tmp_path: Any) -> None:
    """`herder status` (no supervisor there) runs without importing argparse; its error is the usual one."""
    code = ("import sys\nfrom herder.cli import main\nrc = main(['status', '--socket', sys.argv[1]])\n"
            "print('argparse' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.sock")], capture_output=True, text=True,
                         env={**os.environ, "HERDER_SOCKET": ""}, timeout=120)
    assert out.stdout.split() == ["False", "3"], out
    assert "not running" in out.stderr
