"""`herder top` against a real supervisor: headless with Textual's pilot, and once through
tmux (Debian's tmux) as a person would use it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from typing import Any

import pytest
from ctl_harness import HERDER

SERVICES = """
[services.web]
command = ["sh", "-c", "echo hello from web; exec sleep 1000"]
[services.db]
command = ["sleep", "1000"]
"""


def test_top_pilot_shows_instances_logs_and_restarts_after_confirmation(herd: Any) -> None:
    from textual.widgets import DataTable, RichLog

    from herder.cli.top import Top
    from herder.control.client import Client

    h = herd(SERVICES)
    assert h.up().returncode == 0
    before = h.status()

    async def main() -> None:
        app = Top(Client(h.sock, timeout=30), interval=0.5)
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.query_one("#instances", DataTable)
            deadline = time.monotonic() + 30
            while table.row_count < 2 or "hello from web" not in "\n".join(
                    str(x) for x in app.query_one("#logs", RichLog).lines):
                assert time.monotonic() < deadline, "top never showed the instances and web's log"
                await pilot.pause(0.05)
            assert [str(table.get_cell_at((i, 0))) for i in range(2)] == ["web", "db"]
            assert str(table.get_cell_at((0, 1))) == "running"
            await pilot.press("r")
            await pilot.press("n")                     # declined: nothing happens
            await pilot.press("r")
            await pilot.press("y")
            while str(table.get_cell_at((0, 4))) != "1":   # RESTARTS of web, updated from events
                assert time.monotonic() < deadline + 30, "the restart never showed"
                await pilot.pause(0.05)
            await pilot.press("q")

    asyncio.run(main())
    after = h.status()
    assert after["web"]["restarts"] == 1 and after["web"]["pid"] != before["web"]["pid"]
    assert after["db"]["pid"] == before["db"]["pid"]


@pytest.mark.skipif(shutil.which("tmux") is None,
                    reason="needs tmux: `make test` installs it as root (tests/e2e/setup-tmux.sh)")
def test_top_in_tmux_end_to_end(herd: Any) -> None:
    h = herd(SERVICES)
    assert h.up().returncode == 0
    session = f"herder-top-{h.dir.name}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    f"{HERDER} top -c {h.config}"], check=True, timeout=30)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                              timeout=30).stdout

    def until(what: str, predicate: Any) -> str:
        deadline = time.monotonic() + 60
        while True:   # the screen is the only observable here: look again until it shows, bounded
            text = screen()
            if predicate(text):
                return text
            assert time.monotonic() < deadline, f"top never showed {what}:\n{text}"
            time.sleep(0.1)

    try:
        # the table and the log pane fill independently (two streams): wait for both
        until("the instances and web's log", lambda t: all(x in t for x in ("web", "db", "running", "NAME", "CPU",
                                                                            "MEM", "hello from web")))
        subprocess.run(["tmux", "send-keys", "-t", session, "Down"], check=True, timeout=30)
        subprocess.run(["tmux", "send-keys", "-t", session, "x"], check=True, timeout=30)
        until("the confirmation", lambda t: "Stop db?" in t)
        subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=True, timeout=30)
        until("db stopped", lambda t: any(line.split()[:2] == ["db", "stopped"] for line in t.splitlines()))
        assert h.status()["db"]["state"] == "stopped"
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True, timeout=30)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=30)
