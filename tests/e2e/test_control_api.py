"""The control API against real supervisors: socket safety, 4xx answers, tokens, status, intent."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

from ctl_harness import request, run

SLEEPERS = """
[services.a]
command = ["sleep", "1000"]
[services.w]
command = ["sleep", "1000"]
replicas = 3
depends_on = { a = "started" }
"""

NOBODY_CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
    except PermissionError:
        print("EACCES"); sys.exit(0)
    s.sendall(b"GET /v1/services HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(data.split(b"\\r\\n")[0].decode())
""")


def as_nobody(sock: str) -> str:
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I",
                        "-c", NOBODY_CLIENT, sock], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_socket_is_0600_and_other_uids_are_refused(herd):
    h = herd(SLEEPERS)
    r = h.up()
    assert r.returncode == 0, r.stdout + r.stderr
    assert stat.S_IMODE(os.stat(h.sock).st_mode) == 0o600
    assert as_nobody(h.sock) == "EACCES"          # the file mode stops it first
    os.chmod(h.sock, 0o666)                        # past the file mode, SO_PEERCRED still refuses
    assert as_nobody(h.sock) == "HTTP/1.1 403 Forbidden"
    assert request(h.sock, "GET", "/v1/health")[0] == 200   # root (the owner) is fine


def test_socket_group_opens_it_to_a_group(herd):
    h = herd(SLEEPERS, 'socket_group = "nogroup"')
    r = h.up()
    assert r.returncode == 0, r.stderr
    st = os.stat(h.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I",
                        "-c", NOBODY_CLIENT, h.sock], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "HTTP/1.1 200 OK"


def test_tcp_listener_refuses_to_start_without_a_token(herd):
    h = herd(SLEEPERS, 'api_tcp = "127.0.0.1:0"')
    env = {k: v for k, v in os.environ.items() if k != "HERDER_API_TOKEN"}
    r = run("up", "-d", "-c", str(h.config), env=env)
    assert r.returncode != 0
    assert "token" in r.stderr
    assert h.holder() is None     # nothing kept running


def test_tcp_listener_wants_the_bearer_token(herd):
    import http.client
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = herd(SLEEPERS, f'api_tcp = "127.0.0.1:{port}"\napi_token_file = "token"')
    (h.dir / "token").write_text("s3cret-token-0123456789\n")
    (h.dir / "token").chmod(0o644)
    r = h.up()                                      # a token others may read is refused, as ssh refuses a key
    assert r.returncode == 2 and f"{h.dir / 'token'} is accessible by others (mode 0644)" in r.stderr, r.stderr
    assert f"chmod 600 {h.dir / 'token'}" in r.stderr and h.holder() is None
    (h.dir / "token").chmod(0o600)
    r = h.up()
    assert r.returncode == 0, r.stderr

    def get(headers):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/v1/services", headers=headers)
        resp = c.getresponse()
        resp.read()
        c.close()
        return resp.status

    assert get({}) == 401
    assert get({"Authorization": "Bearer wrong"}) == 401
    assert get({"Authorization": "Bearer s3cret-token-0123456789"}) == 200


def test_4xx_answers_and_never_a_500(herd):
    h = herd(SLEEPERS)
    assert h.up().returncode == 0
    s = h.sock
    status, body = request(s, "GET", "/v1/services/nope")
    assert status == 404 and body["known"] == ["a", "w"] and "nope" in body["error"]
    assert request(s, "POST", "/v1/services/nope/stop", {})[0] == 404
    assert request(s, "DELETE", "/v1/services")[0] == 405
    assert request(s, "GET", "/v1/nothing")[0] == 404
    assert request(s, "POST", "/v1/services/a/signal", raw=b"{not json")[0] == 400
    status, body = request(s, "POST", "/v1/services/a/signal", {"signal": "NOPE"})
    assert status == 400 and "unknown signal" in body["error"]
    status, body = request(s, "POST", "/v1/services/a/stop", {"wait": "yes"})
    assert status == 400 and "body.wait" in body["error"]
    assert request(s, "POST", "/v1/services/a/stop", {"bogus": 1})[0] == 400
    assert request(s, "GET", "/v1/events?limit=x")[0] == 400
    assert request(s, "GET", "/v1/events?since=yesterday-ish")[0] == 400
    assert request(s, "POST", "/v1/reload", {"config": "/nonexistent.toml"})[0] == 422
    status, body = request(s, "GET", "/v1/health")
    assert status == 200 and body["ok"] is True


def test_cli_exit_codes(herd):
    h = herd(SLEEPERS)
    r = h.cli("status")
    assert r.returncode == 3 and "not running" in r.stderr
    assert h.up().returncode == 0
    r = h.cli("status")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "PID"] and len(lines) == 5
    assert all(" running " in line for line in lines[1:])
    r = h.cli("stop", "nope")
    assert r.returncode == 2 and "known: a, w" in r.stderr
    r = run("status", "--socket", h.sock, "w", "--json")
    assert [x["name"] for x in json.loads(r.stdout)] == ["w.0", "w.1", "w.2"]
    r = run("status", "-c", str(h.dir / "missing.toml"))
    assert r.returncode == 2


def test_stopped_by_hand_stays_stopped_across_restarts(herd):
    h = herd(SLEEPERS)
    assert h.up().returncode == 0
    r = h.cli("stop", "w.1")
    assert r.returncode == 0 and "w.1: stopped" in r.stdout
    assert h.cli("down").returncode == 0
    assert h.holder() is None
    r = h.up()
    assert r.returncode == 0, r.stdout + r.stderr
    st = h.status()
    assert st["w.1"]["state"] == "stopped" and st["w.1"]["held"] is True
    assert st["w.0"]["state"] == "running"
    assert h.cli("start", "w.1").returncode == 0
    assert h.status()["w.1"]["state"] == "running"
    assert json.loads((h.state / "intent.json").read_text())["stopped"] == []


def test_metrics_in_prometheus_format(herd):
    h = herd(SLEEPERS)
    assert h.up().returncode == 0
    status, text = request(h.sock, "GET", "/metrics")
    assert status == 200
    assert 'herder_instance_up{instance="w.2",service="w"} 1.0' in text
    assert 'herder_instance_state{instance="a",service="a",state="running"} 1.0' in text
    assert "herder_process_resident_memory_bytes" in text
    assert "herder_instance_restarts_total" in text


def test_openapi_lists_every_registry_command(herd):
    sys.path.insert(0, os.getcwd())
    from herder.control.registry import COMMANDS

    h = herd(SLEEPERS)
    assert h.up().returncode == 0
    status, doc = request(h.sock, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    ops = {op["operationId"] for methods in doc["paths"].values() for op in methods.values()}
    assert ops == {c.name for c in COMMANDS}
