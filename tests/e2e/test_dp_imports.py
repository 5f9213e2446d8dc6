"""What the decision process of an idle `herder up` holds in memory (issue 20's memory target,
docs/performance.md): it never imported argparse, shutil (with bz2, lzma, zlib), zoneinfo
(its config has no schedule) or the keeper's capture machinery, which it does not use; each
module stays in memory for the process's life. Measured in the real decision process, started by a real keeper, once its
services run: a sitecustomize on PYTHONPATH (the keeper passes its environment on) gives
only that process a thread that, when the test writes a FIFO, writes `sys.modules` to a file."""

from __future__ import annotations

import os
from pathlib import Path

from ctl_harness import NO_MIN_UPTIME, Herd, run
from herdertest import wait_until

NOT_AT_IDLE = ("argparse", "gettext", "shutil", "bz2", "lzma", "zlib", "herder.keeper.capture",
               "herder.keeper.fastpath", "herder.logs._forward", "zoneinfo", "sysconfig")
SITECUSTOMIZE = '''
import os, sys
def _probe():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            if b"herder.runtime.dp" not in f.read().split(b"\\0"):
                return
    except OSError:
        return
    fifo, out = os.environ["HERDER_TEST_FIFO"], os.environ["HERDER_TEST_MODULES"]
    import _thread
    def answer():
        with open(fifo) as f:       # until the test writes it
            f.read()
        with open(out + ".tmp", "w") as f:
            f.write("\\n".join(sorted(sys.modules)))
        os.rename(out + ".tmp", out)
    _thread.start_new_thread(answer, ())
_probe()
'''


def test_an_idle_decision_process_has_not_imported_what_it_does_not_use() -> None:
    h = Herd(NO_MIN_UPTIME + "".join(f'[services.s{i}]\ncommand = ["sleep", "100000"]\n' for i in range(3)))
    probe = h.dir / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(SITECUSTOMIZE)
    fifo, out = h.dir / "ask", h.dir / "modules"
    os.mkfifo(fifo)
    env = {**os.environ, "HERDER_TEST_FIFO": str(fifo), "HERDER_TEST_MODULES": str(out),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(probe), os.environ.get("PYTHONPATH")]))}
    try:
        r = run("up", "-d", "-c", str(h.config), env=env)     # returns once the three run
        assert r.returncode == 0, r.stderr
        assert all(s["state"] == "running" for s in h.status().values())
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)    # ENXIO: no decision process waits on it
        os.write(fd, b"go")
        os.close(fd)
        modules = set(wait_until("the decision process's module list", lambda: _read(out)).split("\n"))
        assert {"asyncio", "herder.runtime.supervisor", "herder.logs._hub"} <= modules   # it is that process
        assert not modules & set(NOT_AT_IDLE), sorted(modules & set(NOT_AT_IDLE))
    finally:
        h.close()


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
