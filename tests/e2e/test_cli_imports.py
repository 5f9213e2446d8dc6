"""What the CLI imports on its everyday path (docs/performance.md: `herder status`), against a
real supervisor: neither argparse, nor tomllib, nor socket.py (with selectors)."""

from __future__ import annotations

import subprocess
import sys

from ctl_harness import Herd

PROBE = ("import sys\nfrom herder.cli import main\nrc = main(sys.argv[1:])\n"
         "print(*(m in sys.modules for m in ('argparse', 'tomllib', 'socket', 'selectors')), rc, file=sys.stderr)")


def test_status_by_socket_and_by_config_file_imports_none_of_them() -> None:
    h = Herd('[services.a]\ncommand = ["sleep", "100000"]\n')
    try:
        assert h.up().returncode == 0
        for args in (["status", "--socket", h.sock], ["status", "-c", str(h.config)],
                     ["status", "-c", str(h.config), "--json", "a"]):
            out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
            assert out.stderr.split()[-5:] == ["False", "False", "False", "False", "0"], out
            assert "a" in out.stdout and "running" in out.stdout
    finally:
        h.close()
