"""The container example's one program (standard library only), in three roles (argv[1]).

  migrate  a one-shot job (a schema migration): prints what it applies, exits MIGRATE_EXIT.
  web      an HTTP server on PORT: / and /health answer 200. With FAIL_FIRST_BOOT=PATH it
           fails (exit 1) when PATH does not exist yet, after creating it: a container's
           first start fails, the next one works (the restart-policy demonstration).
           SIGTERM: closes and exits 0.
  worker   a queue worker: a job every 0.3 s. SIGTERM: finishes the current job (2 s,
           WORKER_DRAIN), then exits 0, the way real workers ignore a stop for a while.

Every line starts with the role, on stdout; warnings go to stderr.
"""

from __future__ import annotations

import http.server
import os
import signal
import socketserver
import sys
import time

PORT = int(os.environ.get("PORT", "8080"))


def say(role: str, *parts: object, err: bool = False) -> None:
    print(f"{role}:", *parts, file=sys.stderr if err else sys.stdout, flush=True)


def migrate() -> None:
    for n in range(1, 4):
        say("migrate", f"applied 000{n}")
        time.sleep(0.1)
    code = int(os.environ.get("MIGRATE_EXIT", "0"))
    say("migrate", "done" if code == 0 else f"failed: exit {code}", err=code != 0)
    sys.exit(code)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def web() -> None:
    marker = os.environ.get("FAIL_FIRST_BOOT")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        say("web", "cannot reach the database on first boot; exiting 1", err=True)
        sys.exit(1)
    srv = Server(("127.0.0.1", PORT), Handler)

    def stop(*_: object) -> None:
        say("web", "got SIGTERM, closing")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    say("web", "warning: serving plain HTTP", err=True)
    say("web", f"listening on {PORT}")
    srv.serve_forever()


def worker() -> None:
    stopping = False

    def finish(*_: object) -> None:
        nonlocal stopping
        stopping = True
        say("worker", f"got SIGTERM, finishing the current job ({os.environ.get('WORKER_DRAIN', '2')}s)")

    signal.signal(signal.SIGTERM, finish)
    n = 0
    while not stopping:
        n += 1
        say("worker", f"job {n} done")
        time.sleep(0.3)
    time.sleep(float(os.environ.get("WORKER_DRAIN", "2")))
    say("worker", "current job finished, exiting 0")


if __name__ == "__main__":
    {"migrate": migrate, "web": web, "worker": worker}[sys.argv[1]]()
