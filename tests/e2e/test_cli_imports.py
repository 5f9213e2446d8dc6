"""What the CLI imports on its everyday path (docs/performance.md: `herder status`), against a
real supervisor: neither argparse, nor tomllib, nor socket.py (with selectors); and for the
table, neither json nor re nor collections (the answer is read by herder.control.jsonload)."""

from __future__ import annotations

import subprocess
import sys

from ctl_harness import Herd

HEAVY = ("argparse", "tomllib", "socket", "selectors")
TABLE = ("json", "re", "collections")    # `--json` prints with json (and so imports re)
# what herder imports: modules the interpreter's start-up already loaded do not count (an editable
# install's import hook imports re; a regular install does not)
PROBE = ("import sys\nbefore = set(sys.modules)\nfrom herder.cli import main\nrc = main(sys.argv[1:])\n"
         f"print(*(m in sys.modules and m not in before for m in {HEAVY + TABLE!r}), rc, file=sys.stderr)")


def _imported(args: list[str]) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert "a" in out.stdout and "running" in out.stdout, out
    *flags, rc = out.stderr.split()[-len(HEAVY + TABLE) - 1:]
    assert rc == "0", out
    return dict(zip(HEAVY + TABLE, (f == "True" for f in flags), strict=True))


def test_status_by_socket_and_by_config_file_imports_none_of_them() -> None:
    h = Herd('[services.a]\ncommand = ["sleep", "100000"]\n')
    try:
        assert h.up().returncode == 0
        for args in (["status", "--socket", h.sock], ["status", "-c", str(h.config)],
                     ["status", "-c", str(h.config), "a"]):
            assert not any(_imported(args).values()), args
        loaded = _imported(["status", "-c", str(h.config), "--json", "a"])
        assert not any(loaded[m] for m in HEAVY), loaded
    finally:
        h.close()
