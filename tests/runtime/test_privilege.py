"""[security] with real processes, checked from each process's own view: /proc/PID/status
(NoNewPrivs, CapEff/CapBnd/CapAmb, Uid, Umask), a child's umask, binding a privileged port
as www-data with only NET_BIND_SERVICE (and failing to without it), a private /tmp, a
read-only path, a cleared environment. Needs root (herder switches accounts and creates
mount namespaces only as root); skipped otherwise with the reason."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from herdertest import PROGRAMS, ROOT, free_privileged_port, proc_status

from herder.config import load
from herder.config.lifecycle import Security
from herder.errors import ConfigError
from herder.process.privilege import own_caps, problems
from herder.testing import run
from herder.testing.harness import Running, run_supervisor

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root: [security] switches accounts and mounts")
SYS_PY = "/usr/bin/python3"          # the venv's python may live where www-data cannot read
NET_BIND_SERVICE = 1 << 10




def www_data() -> None:
    import pwd

    try:
        pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data account on this machine")


def machine_allows(**security: Any) -> None:
    """Skip, with herder's own reason, where this machine cannot give what the test asks
    (a container without CAP_SYS_ADMIN, no setpriv …): herder refuses such a start itself,
    which test_what_herder_cannot_give_fails_the_check_and_the_start checks."""
    found = problems(Security(**security), switches_account=True)
    if found:
        pytest.skip(f"this machine cannot: security.{found[0][0]}: {found[0][1]}")


def cmd(*args: str) -> str:
    # the program's source as `-c`: a private /tmp would hide a checkout that lives under /tmp
    # (CI's may), and another account may not be able to read the checkout at all
    argv = [SYS_PY, "-c", (PROGRAMS / "privileged.py").read_text(), *args]
    return "[" + ", ".join(json.dumps(a) for a in argv) + "]"    # JSON escapes are TOML's (\n)


async def seen(r: Running, name: str) -> dict[str, object]:
    """What the service printed about itself (its PRIV line, from the log hub)."""
    await r.wait_state(name, "running")

    async def first() -> bytes:      # the keeper's kept lines, then each new one: nothing falls between
        async for rec in r.sup.logs.follow([name], tail=50):
            if rec.line.startswith(b"PRIV "):
                return rec.line
        raise AssertionError(f"{name}'s log ended without its PRIV line")

    async with asyncio.timeout(10):
        line = await first()
    result: dict[str, object] = json.loads(line[5:])
    return result




def test_www_data_with_only_net_bind_service_binds_a_privileged_port(make_config: Callable[..., Path]) -> None:
    www_data()
    machine_allows(no_new_privileges=True, capabilities=("NET_BIND_SERVICE",))
    port, port2 = free_privileged_port(), None
    cfg = load(make_config(f'''
        [defaults]
        user = "www-data"
        ready = {{ log = "^PRIV " }}
        [services.web]
        command = {cmd(str(port))}
        security = {{ no_new_privileges = true, capabilities = ["NET_BIND_SERVICE"], umask = "027" }}
        [services.nocap]
        command = {cmd("PORT2")}
        security = {{ no_new_privileges = true, capabilities = [] }}
        '''.replace("PORT2", str(port + 1))))
    del port2

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            web = await seen(r, "web")
            pid = r.pid("web")
            assert pid is not None
            st = proc_status(pid)            # the running process, from /proc, not from herder
            assert st["Uid"].split()[0] == "33" and st["NoNewPrivs"] == "1"
            for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
                assert int(st[k], 16) == NET_BIND_SERVICE, (k, st[k])
            assert st["Umask"] == "0027"
            assert web["bind"] == "ok" and web["child_umask"] == "0027"
            nocap = await seen(r, "nocap")
            assert nocap["bind"] == "Permission denied"
            st2 = proc_status(r.pid("nocap") or 0)
            assert all(int(st2[k], 16) == 0 for k in ("CapEff", "CapBnd", "CapAmb")) and st2["NoNewPrivs"] == "1"

    run(body())


def test_root_with_capabilities_dropped_and_no_new_privileges(make_config: Callable[..., Path]) -> None:
    machine_allows(no_new_privileges=True, capabilities=("CHOWN",))
    cfg = load(make_config(f'''
        [services.svc]
        command = {cmd()}
        ready = {{ log = "^PRIV " }}
        security = {{ capabilities = ["CHOWN"], no_new_privileges = true }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            svc = await seen(r, "svc")
            st = svc["status"]
            assert isinstance(st, dict)
            assert st["Uid"].split()[0] == "0" and int(st["CapBnd"], 16) == 1 and int(st["CapEff"], 16) == 1

    run(body())


def test_private_tmp_read_only_paths_and_clear_env(make_config: Callable[..., Path], tmp_path: Path) -> None:
    machine_allows(private_tmp=True)
    ro = tmp_path / "ro"
    ro.mkdir()
    outside = Path("/tmp") / f".herder-hooks-outside-{os.getpid()}"
    outside.write_text("host")
    cfg = load(make_config(f'''
        [services.svc]
        command = {cmd()}
        cwd = "/"
        ready = {{ log = "^PRIV " }}
        env = {{ GIVEN = "1" }}
        security = {{ private_tmp = true, clear_env = true }}
        [services.ro]
        command = {cmd("--ro", str(ro))}
        ready = {{ log = "^PRIV " }}
        security = {{ read_only_paths = ["{ro}"] }}
        '''))

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            svc = await seen(r, "svc")
            tmp = svc["tmp"]
            assert isinstance(tmp, list) and outside.name not in tmp and len(tmp) == 1   # only its own file
            env = svc["env"]
            assert isinstance(env, dict)
            assert env["GIVEN"] == "1" and "PATH" in env and "REPORT_SOCKET" not in env and "HOME" not in env
            own = {"GIVEN", "PATH", "PWD", "NOTIFY_SOCKET"}       # NOTIFY_SOCKET: herder's readiness protocol
            assert {k for k in env if not k.startswith(("HERDER_", "LC_"))} <= own
            ro_seen = await seen(r, "ro")
            assert ro_seen["write"] == "Read-only file system"
            (ro / "from-herder").write_text("the path is read-only for the service only")

    try:
        run(body())
    finally:
        outside.unlink()


def test_paths_under_a_private_tmp_are_refused(make_config: Callable[..., Path], tmp_path: Path) -> None:
    path = make_config(f'''
        [services.svc]
        command = {cmd()}
        security = {{ private_tmp = true, read_only_paths = ["{tmp_path}"] }}
        ''')
    if not str(tmp_path).startswith(("/tmp/", "/var/tmp/")):
        pytest.skip(f"pytest's tmp_path {tmp_path} is not under /tmp here")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "services.svc.security.read_only_paths" in str(err.value) and "private_tmp" in str(err.value)
    path = make_config(f'''
        [services.svc]
        command = {cmd()}
        cwd = "{tmp_path}"
        security = {{ private_tmp = true }}
        ''')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert f"services.svc.security.private_tmp: the working directory {tmp_path.resolve()} is under" in str(err.value)


def test_what_herder_cannot_give_fails_the_check_and_the_start(make_config: Callable[..., Path]) -> None:
    if own_caps("CapEff") >> 24 & 1:
        pytest.skip("herder holds CAP_SYS_RESOURCE here; the test needs a capability herder lacks")
    path = make_config(f'''
        [services.svc]
        command = {cmd()}
        security = {{ capabilities = ["SYS_RESOURCE"] }}
        ''')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert f"{path}:4: services.svc.security.capabilities: herder itself does not hold CAP_SYS_RESOURCE" \
        in str(err.value)
    cfg = load(path, check_accounts=False)          # as if checked elsewhere: the spawn refuses too

    async def body() -> None:
        async with run_supervisor(cfg) as r:
            ev = await r.wait_for(lambda e: e.kind == "spawn_failed")
            assert "security.capabilities: herder itself does not hold CAP_SYS_RESOURCE" in ev.message

    run(body())
