"""herder next to the other inits of multi-process images, measured in the same dockerd.

Four containers of the same image run side by side, each with a different PID 1 over
the same programs (examples/container's ticker, which orphans a `sleep` every tick, and
its worker, 2 s to finish after SIGTERM; files in peers/):

- herder (`herder up -c`), with a program that always fails (not critical, so that the
  two supervisors are compared on the same terms), as PID 1 and under `docker run --init`
  (docker-init, i.e. tini, as PID 1 and herder its child);
- supervisord 4.3 from PyPI, with the same three programs;
- tini (Debian's), its one child being the ticker;
- a plain program that waits for its one child (the control: it must collect zombies,
  or this test could not see a reaper missing).

Measured: zombies still there ten ticks after they were seen, what the always-failing
program does to the container, and `docker stop -t 10` (seconds, exit code). The numbers
in docs/container.md come from this test (run with -s to see the table). The facts
asserted are the ones the docs state.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from herdertest import wait_until
from shop_example import CONTAINER

from engines.dockerd import Dockerd
from engines.test_container import Box
from engines.test_container import image as image  # the fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PEERS = Path(__file__).resolve().parent / "peers"

INITS = {
    "herder": ("herder", "up", "-c", "/app/herder.toml"),
    "herder --init": ("herder", "up", "-c", "/app/herder.toml"),
    "supervisord": ("supervisord", "-c", "/app/supervisord.conf"),
    "tini": ("tini", "--", "sh", "/app/ticker.sh"),
    "plain": ("python3", "/app/reaper-less.py"),
}


class Peer(Box):
    def __init__(self, d: Dockerd, tag: str, app: Path, init: str) -> None:
        self.init = init
        run_args = ("--init",) if init.endswith("--init") else ()
        super().__init__(d, tag, app, f"herder-peer-{init.replace(' --', '-')}", *run_args, argv=INITS[init])

    def ticks(self) -> int:
        return sum(1 for line in self.logs()[0].splitlines() if "tick " in line)


def test_inits_side_by_side(dockerd: Dockerd, image: str, tmp_path: Path) -> None:
    def app(init: str) -> Path:     # one copy each: a herder's state_dir is the config's folder
        dest = tmp_path / init.replace(" --", "-")
        shutil.copytree(CONTAINER, dest, ignore=shutil.ignore_patterns("__pycache__", ".herder", "herder.toml"))
        for f in PEERS.iterdir():
            shutil.copy2(f, dest / f.name)
        return dest

    peers = {init: Peer(dockerd, image, app(init), init) for init in INITS}
    row: dict[str, dict[str, object]] = {init: {} for init in INITS}

    # zombies: sampled once every peer ticked a few times, then ten ticks later
    def ticking(n: int) -> bool:
        counts = {i: p.ticks() for i, p in peers.items()}
        assert all(p.state()["Running"] for p in peers.values()), counts
        return all(c >= n + (before[i][1] if before else 0) for i, c in counts.items())

    before: dict[str, tuple[set[str], int]] = {}
    wait_until("every peer ticking", lambda: ticking(5), 60)
    before = {init: (p.zombies(), p.ticks()) for init, p in peers.items()}
    wait_until("ten more ticks everywhere", lambda: ticking(10), 60)
    after = {init: p.zombies() for init, p in peers.items()}
    for init in peers:
        row[init]["zombies"] = len(before[init][0] & after[init])

    # the always-failing program: given up on by both supervisors; the container goes on
    peers["supervisord"].wait_log("gave up: crasher entered FATAL state")
    peers["herder"].wait_log("-> failed")
    under = peers["herder --init"]
    under.wait_log("-> failed")
    assert "the main process of a docker container, under docker-init (PID 1)" in under.logs()[1]
    for init in ("herder", "herder --init", "supervisord"):
        gave_up = "FATAL" if init == "supervisord" else "failed"
        row[init]["crash"] = gave_up + (", container runs on" if peers[init].state()["Running"] else "?")
    row["tini"]["crash"] = "(one child: tini exits with it)"

    # docker stop -t 10, all at once (each timed on its own; the plain one takes the 10 s)
    def stop(p: Peer) -> tuple[float, object]:
        t0 = time.monotonic()
        dockerd.docker("stop", "-t", "10", p.name, timeout=60)
        return round(time.monotonic() - t0, 1), p.state()["ExitCode"]

    with ThreadPoolExecutor(len(peers)) as pool:
        stops = dict(zip(peers, pool.map(stop, peers.values()), strict=True))
    for init, (took, code) in stops.items():
        row[init]["stop"] = f"{took}s, exit {code}"

    print("\ninit           zombies left after 10 ticks   always-failing program           docker stop -t 10")
    for init, r in row.items():
        print(f"{init:14} {r.get('zombies')!s:29} {r.get('crash', '-')!s:32} {r.get('stop', '-')}")

    assert row["herder"]["crash"] == "failed, container runs on"
    assert row["supervisord"]["crash"] == "FATAL, container runs on"
    assert row["herder"]["zombies"] == row["herder --init"]["zombies"] == 0
    assert row["supervisord"]["zombies"] == row["tini"]["zombies"] == 0
    assert stops["herder"][1] == stops["herder --init"][1] == 0
    assert stops["herder"][0] < 10 and stops["herder --init"][0] < 10
    # the control: its zombies stay, and ten ticks add ten more
    assert before["plain"][0] and before["plain"][0] <= after["plain"] and len(after["plain"]) >= 10
    assert stops["supervisord"][1] == 0 and stops["supervisord"][0] < 10
    assert stops["tini"][1] == 143                       # the child's SIGTERM death, as 128 + 15
    assert stops["plain"][1] == 137 and stops["plain"][0] >= 10   # SIGTERM dropped; the engine's SIGKILL
    dockerd.docker("rm", "-f", *(p.name for p in peers.values()))
