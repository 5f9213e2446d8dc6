"""Issue 18's "done when", through the CLI: the web example (examples/web) under `herder up`
as root. The operator sees each piece happen: the service runs as www-data with only
CAP_NET_BIND_SERVICE on a port below 1024 and no new privileges (read from /proc, and from
the service's own answer), its pre_start migration ran first and is in its log, `herder stop`
runs the pre_stop drain before the stop signal (the service says it drained), a copy whose
migration fails is a failed start whose alert reaches a JSON webhook on loopback, and the
restart_schedule path restarts a service on a real clock (every 2 seconds here; the nightly
time itself is tested on the virtual clock in tests/runtime/test_schedules.py)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ctl_harness import Herd
from herdertest import ROOT, Receiver, free_privileged_port, proc_status, wait_until

from herder.config.lifecycle import Security
from herder.process.privilege import problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web"
NET_BIND_SERVICE = 1 << 10

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root: herder switches the service to www-data")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()




def events(h: Herd) -> list[dict[str, Any]]:
    r = h.cli("events", "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]




def test_the_web_example_end_to_end(herd: Callable[..., Herd], receiver: Receiver) -> None:
    try:
        www = pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data account on this machine")
    found = problems(Security(no_new_privileges=True, capabilities=("NET_BIND_SERVICE",)), switches_account=True)
    if found:
        pytest.skip(f"this machine cannot: security.{found[0][0]}: {found[0][1]}")
    port = free_privileged_port()
    example = (EXAMPLE / "herder.toml").read_text()
    services = example[example.index("[alerts]"):]
    services = services.replace("127.0.0.1:9099", f"127.0.0.1:{receiver.port}").replace(
        'PORT = "80"', f'PORT = "{port}"').replace("127.0.0.1:80/", f"127.0.0.1:{port}/")
    assert str(port) in services and str(receiver.port) in services
    # this test's directory is under /tmp, which private_tmp would hide from the service (herder
    # check refuses that); tests/runtime/test_privilege.py checks private_tmp
    services = services.replace("private_tmp = true\n", "")
    # a second copy whose migration fails: a failed start, and an alert
    broken = services[services.index("[services.web]"):].replace("[services.web", "[services.broken").replace(
        'env = {', 'start_limit = { burst = 1, interval = "1h" }\nenv = { SCHEMA_VERSION = "broken",')
    # the nightly restart's path with a real clock: a restart_schedule every 2 seconds
    tick = '[services.tick]\ncommand = ["sleep", "100000"]\nrestart_schedule = "*/2 * * * * *"\n'
    h = herd(services + "\n" + broken + "\n" + tick)
    for f in ("web.py", "migrate.py", "drain.py"):
        shutil.copy(EXAMPLE / f, h.dir / f)
    (h.dir / "var").mkdir()
    os.chown(h.dir / "var", www.pw_uid, www.pw_gid)    # www-data writes var/schema.version (the example's step)

    r = h.up()
    assert "web" in r.stdout + r.stderr          # `up -d` reports; `broken` fails by design, so no rc check
    wait_until("web running", lambda: h.status()["web"]["state"] == "running", timeout=60)
    st = h.status()
    pid = st["web"]["pid"]
    ps = proc_status(pid)
    assert ps["Uid"].split()[0] == str(www.pw_uid) and ps["NoNewPrivs"] == "1"
    assert all(int(ps[k], 16) == NET_BIND_SERVICE for k in ("CapEff", "CapBnd", "CapAmb")), ps
    assert ps["Umask"] == "0027"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        page = json.loads(resp.read())
    assert page == {"hello": "world", "uid": www.pw_uid, "schema": "3"}

    # the migration ran before the service, as www-data, and is in the service's log
    log = (h.state / "logs" / "web.log").read_text()
    assert log.index("[hook pre_start] migrating schema to version 3") < log.index("listening on")
    assert (h.dir / "var" / "schema.version").stat().st_uid == www.pw_uid

    # the failing copy: a failed start naming the hook, and the alert on the webhook
    wait_until("broken failed", lambda: h.status()["broken"]["state"] == "failed", timeout=60)
    assert "pre_start hook exit 3" in h.status()["broken"]["reason"]
    got = wait_until("the failed alert on the webhook",
                     lambda: [m for m in receiver.got if str(m["title"]).endswith("broken: failed")], timeout=60)
    assert "pre_start hook exit 3" in str(got[0]["message"])
    kinds = {e["kind"] for e in events(h)}
    assert {"hook", "alert"} <= kinds

    # a restart_schedule restarts a running service through the normal path, and says so
    restarted = wait_until("a scheduled restart of tick", lambda: [
        e for e in events(h)
        if e["kind"] == "schedule" and e.get("action") == "restart" and e.get("service") == "tick"], timeout=60)
    assert "restart_schedule: due at" in restarted[0]["message"]
    wait_until("tick started again", lambda: len(
        [e for e in events(h) if e["kind"] == "spawn" and e["instance"] == "tick"]) >= 2, timeout=60)

    # the pre_stop drain runs before the stop signal
    s = h.cli("stop", "web")
    assert s.returncode == 0, s.stdout + s.stderr
    log = (h.state / "logs" / "web.log").read_text()
    assert log.index("draining: no new work taken") < log.index("[hook pre_stop] drain requested")
    hooks = [(e["hook"], e["phase"]) for e in events(h) if e["kind"] == "hook" and e["instance"] == "web"]
    assert hooks[-2:] == [("pre_stop", "start"), ("pre_stop", "end")]
