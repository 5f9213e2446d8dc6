"""ready.log matches the live lines of the run (from the log hub), not files read back.

Regressions of the file-reading implementation: it watched `logs.stdout` as given, so
replicas with a relative path (whose files are out.0.log, out.1.log next to the config)
never became ready; and a line written into a file that rotated before the next read
was never seen. The clock is a FakeClock that nobody moves: ready.timeout cannot fire,
so reaching `running` can only come from the line itself.
"""

from __future__ import annotations

from pathlib import Path

from health_harness import PY, prog, run, running

from herder.testing import FakeClock


def test_replicas_with_a_relative_log_path_become_ready(tmp_path: Path) -> None:
    clock = FakeClock()

    async def main() -> None:
        toml = f"""
[services.app]
command = {prog("notifier.py", "print:booting", "print:INFO: Application startup complete.")}
replicas = 2
logs = {{ stdout = "out.log" }}
ready = {{ log = "startup complete", timeout = "30s" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.reach("app.0", "running")
            await h.reach("app.1", "running")
        assert "startup complete" in (tmp_path / "out.0.log").read_text()
        assert "startup complete" in (tmp_path / "out.1.log").read_text()
    run(main, clock)


def test_the_line_is_seen_even_when_its_file_rotated_away(tmp_path: Path) -> None:
    clock = FakeClock()
    filler = "x" * 199
    script = tmp_path / "chatty.py"
    script.write_text(f"""
import os, signal, socket
for i in range(20):
    print("{filler}", flush=True)
print("READY-LINE", flush=True)
for i in range(20):
    print("{filler}", flush=True)
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:   # all printed: tell the test
    addr = os.environ["NOTIFY_SOCKET"]
    s.sendto(b"STATUS=printed", "\\0" + addr[1:] if addr.startswith("@") else addr)
signal.pause()
""")

    async def main() -> None:
        toml = f"""
[services.w]
command = ["{PY}", "{script}"]
logs = {{ max_size = "1KB", max_files = 50, compress = false, timestamps = false }}
ready = {{ log = "^READY-LINE$", interval = "1h", timeout = "30s" }}
"""
        async with running(tmp_path, toml, clock=clock) as h:
            await h.reach("w", "running")
            await h.wait(lambda e: e.kind == "status")
        logs = tmp_path / "st" / "logs"       # every line is in the files once herder stopped
        current = (logs / "w.log").read_text()
        rotated = [p for p in logs.iterdir() if p.name != "w.log" and p.name.startswith("w.")]
        assert "READY-LINE" not in current and rotated
        assert any("READY-LINE" in p.read_text() for p in rotated)
    run(main, clock)
