"""restart_prevent_exit_codes / restart_force_exit_codes with real processes: an exit code
that means "do not restart me" parks the instance in `exited` with the reason and a
`restart_prevented` event under restart = "always"; a forced code restarts a service whose
policy is "never" (the decisions themselves are table- and property-tested in tests/core)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from herdertest import toml_list

from herder.config import load
from herder.testing import FakeClock, run
from herder.testing.harness import run_supervisor


def test_a_prevent_code_is_never_restarted_and_a_force_code_always(make_config: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = load(make_config(f'''
        [services.conf]
        command = ["sh", "-c", "echo bad config >&2; exit 78"]
        restart = "always"
        restart_prevent_exit_codes = [78]
        [services.worker]
        command = {toml_list(["sh", "-c", f'echo x >> {runs}; [ $(wc -l < {runs}) -ge 3 ] && exec sleep 1000; exit 0'])}
        restart = "never"
        restart_force_exit_codes = [0]
        backoff = {{ initial = "1s", jitter = 0.0 }}
        '''))
    clock = FakeClock(autojump=True)

    async def body() -> None:
        async with run_supervisor(cfg, clock=clock) as r:
            ev = await r.wait_for(lambda e: e.instance == "conf" and e.kind == "state" and e.data.get("to") == "exited")
            assert "restart_prevent_exit_codes" in ev.message
            prevented = r.find(lambda e: e.kind == "restart_prevented" and e.instance == "conf")
            assert prevented is not None and "exit 78" in prevented.message
            assert len([e for e in r.events if e.kind == "spawn" and e.instance == "conf"]) == 1
            await r.wait_for(lambda e: e.instance == "worker" and e.kind == "spawn"
                             and len([x for x in r.events if x.kind == "spawn" and x.instance == "worker"]) == 3)
            restarts = [e for e in r.events if e.kind == "restart" and e.instance == "worker"]
            assert len(restarts) == 2 and all("restart_force_exit_codes" in e.message for e in restarts)

    run(body(), clock)
