"""The small programs an export writes into other engines, run for real against local servers.

A Compose healthcheck runs HTTP_ONCE / TCP_ONCE inside the container, systemd's
ExecStartPost runs POLL, a Kubernetes init container runs the wait program: each is plain
Python, so each is run here with `python3 -c` exactly as the target would, against real
servers on 127.0.0.1. The Kubernetes API server is the one seam that cannot run here:
a stand-in HTTPS server (a self-signed certificate made with openssl) answers the two GETs
the wait makes, with the JSON shapes of the real batch/v1 Job and apps/v1 Deployment.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herder.export import probes


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(responses, tls=None) → port; responses: list of (status, body) answered in turn (the last repeats)."""
    servers: list[_Server] = []

    def start(responses: list[tuple[int, str]], tls: ssl.SSLContext | None = None, seen: list[Any] | None = None
              ) -> int:
        todo = list(responses)

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if seen is not None:
                    seen.append((self.path, self.headers.get("Authorization")))
                status, body = todo.pop(0) if len(todo) > 1 else todo[0]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *a: object) -> None:
                pass

        srv = _Server(("127.0.0.1", 0), H)
        if tls is not None:
            srv.socket = tls.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return int(srv.server_address[1])

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def run(argv: tuple[str, ...] | list[str], timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if argv[0] == "python3" else argv[0], *argv[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def test_http_once(serve: Any) -> None:
    from herder.config.model import Health, Ready

    port = serve([(200, "all fine")])
    url = f"http://127.0.0.1:{port}/health"
    assert run(probes.once("http", Ready(http=url), 2.0) or ()).returncode == 0
    assert run(probes.once("http", Health(http=url, body="fine$"), 2.0) or ()).returncode == 0
    nomatch = run(probes.once("http", Health(http=url, body="^ok"), 2.0) or ())
    assert nomatch.returncode == 1 and "body does not match" in nomatch.stderr
    sick = serve([(503, "no")])
    res = run(probes.once("http", Ready(http=f"http://127.0.0.1:{sick}/"), 2.0) or ())
    assert res.returncode == 1 and "503" in res.stderr


def test_tcp_once() -> None:
    from herder.config.model import Ready

    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        assert run(probes.once("tcp", Ready(tcp=f"127.0.0.1:{port}"), 2.0) or ()).returncode == 0
    closed = run(probes.once("tcp", Ready(tcp=f"127.0.0.1:{port}"), 2.0) or ())
    assert closed.returncode == 1 and "not ready" in closed.stderr


def test_poll_waits_until_the_check_passes(serve: Any, tmp_path: Path) -> None:
    from herder.config.model import Ready

    port = serve([(503, "starting"), (503, "starting"), (200, "ok")])
    res = run(probes.poll(Ready(http=f"http://127.0.0.1:{port}/", interval=0.05)) or ())
    assert res.returncode == 0
    flag = tmp_path / "flag"
    # exec: passes once the file exists; the second attempt creates it
    script = f"import os,sys; p={str(flag)!r}; e=os.path.exists(p); open(p,'a').close(); sys.exit(0 if e else 1)"
    argv = probes.poll(Ready(exec=(sys.executable, "-c", script), interval=0.05)) or ()
    assert run(argv).returncode == 0 and flag.exists()


@pytest.fixture
def api(tmp_path: Path, serve: Any) -> Iterator[Any]:
    """A stand-in for the Kubernetes API server (labelled seam): TLS, a token, a namespace."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (it makes the stand-in API server's certificate)")
    sa = tmp_path / "sa"
    sa.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=api",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(sa / "ca.crt")], check=True, capture_output=True, timeout=60)
    (sa / "token").write_text("sekrit\n")
    (sa / "namespace").write_text("shop-ns\n")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sa / "ca.crt", tmp_path / "key.pem")

    def wait(kind: str, name: str, cond: str, answers: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
        seen: list[Any] = []
        port = serve([(200, json.dumps(a)) for a in answers], tls, seen)
        env = {"HERDER_SA_DIR": str(sa), "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(port), "PATH": "/usr/bin:/bin"}
        return run(["python3", "-c", probes.WAIT, kind, name, cond], env=env, timeout=60), seen

    yield wait


def test_wait_for_a_completed_job(api: Any) -> None:
    running = {"spec": {"parallelism": 1}, "status": {"active": 1}}
    done = {"spec": {}, "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    res, seen = api("job", "migrate", "completed", [running, done])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "waiting for migrate (completed)" in res.stdout
    assert seen[0] == ("/apis/batch/v1/namespaces/shop-ns/jobs/migrate", "Bearer sekrit")


def test_wait_fails_when_the_job_failed(api: Any) -> None:
    failed = {"status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}}
    res, _ = api("job", "migrate", "completed", [failed])
    assert res.returncode == 1 and "migrate failed" in res.stderr


def test_wait_for_every_replica_ready(api: Any) -> None:
    half = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}}
    full = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2}}
    res, seen = api("deployment", "db", "healthy", [half, full])
    assert res.returncode == 0, res.stdout + res.stderr
    assert [p for p, _ in seen] == ["/apis/apps/v1/namespaces/shop-ns/deployments/db"] * 2
