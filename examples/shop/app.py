"""The shop example's one program (standard library only), in four roles chosen by argv[1].

  server  an HTTP service: /ready and /health answer 200 once it listens (READY_DELAY
          seconds after start); /health answers 503 while the file SICK_FILE exists or
          HEALTHY=0. On SIGTERM it drains for DRAIN_SECONDS, then exits 0.
  job     a one-shot (a migration): works JOB_SECONDS, then exits JOB_EXIT.
  worker  a queue worker: prints "waiting for jobs", listens on PORT (for a tcp probe).
          It stops cleanly on SIGINT only: SIGTERM is ignored, so a manager that sends
          the wrong stop signal has to kill it.
  check   the exec probe: GET http://127.0.0.1:$PORT/health, exit 0 on 200.

Every line it prints starts with NAME, so one log shows which instance did what.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import socketserver
import sys
import time
import urllib.request

NAME = os.environ.get("NAME", "app")
PORT = int(os.environ.get("PORT", "8000"))


def log(*parts: object) -> None:
    print(f"{NAME}:", *parts, flush=True)


def sick() -> bool:
    flag = os.environ.get("SICK_FILE", f"/tmp/shop-sick-{PORT}")
    return os.environ.get("HEALTHY", "1") == "0" or os.path.exists(flag)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/ready" or (self.path == "/health" and not sick())
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(f"{NAME} {'ok' if ok else 'unhealthy'}\n".encode())

    def log_message(self, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def server() -> None:
    def on_term(*_: object) -> None:
        drain = float(os.environ.get("DRAIN_SECONDS", "0"))
        log(f"got SIGTERM, draining for {drain:g}s")
        time.sleep(drain)
        log("drained, exiting 0")
        os._exit(0)

    def on_int(*_: object) -> None:
        log("got SIGINT, exiting 0")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    delay = float(os.environ.get("READY_DELAY", "0"))
    log(f"starting (version {os.environ.get('VERSION', '1')}), ready in {delay:g}s")
    time.sleep(delay)
    with Server(("0.0.0.0", PORT), Handler) as srv:
        log(f"listening on {PORT}")
        srv.serve_forever()


def job() -> None:
    log("migrating")
    time.sleep(float(os.environ.get("JOB_SECONDS", "1")))
    code = int(os.environ.get("JOB_EXIT", "0"))
    log(f"done, exit {code}")
    sys.exit(code)


def worker() -> None:
    signal.signal(signal.SIGTERM, lambda *_: log("got SIGTERM, ignoring it (stop me with SIGINT)"))

    def on_int(*_: object) -> None:
        log("got SIGINT, finishing the current job and exiting 0")
        os._exit(0)

    signal.signal(signal.SIGINT, on_int)
    with socket.create_server(("0.0.0.0", PORT), reuse_port=False) as srv:
        log("waiting for jobs")
        while True:
            conn, _ = srv.accept()
            conn.close()


def check() -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2) as r:
            sys.exit(0 if r.status == 200 else 1)
    except OSError as e:
        sys.exit(f"{NAME}: unhealthy: {e}")


if __name__ == "__main__":
    roles = {"server": server, "job": job, "worker": worker, "check": check}
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in roles:
        sys.exit(f"usage: app.py {'|'.join(roles)}")
    roles[role]()
