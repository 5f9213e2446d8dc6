"""The example web service (examples/web): serves a page on $PORT (80 by default, which
takes CAP_NET_BIND_SERVICE as a non-root user), answers /health, and on POST /drain stops
taking new work (/health then says 503, so a load balancer takes it out). Stdlib only: it
runs as www-data with the system's python."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

draining = False


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: dict[str, object]) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(503 if draining else 200, {"draining": draining})
        else:
            self._send(200, {"hello": "world", "uid": os.getuid(), "schema": schema()})

    def do_POST(self) -> None:
        global draining
        if self.path == "/drain":
            draining = True
            print("draining: no new work taken", flush=True)
            self._send(200, {"draining": True})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, fmt: str, *args: object) -> None:
        return None


def schema() -> str:
    try:
        with open(os.environ.get("SCHEMA_FILE", "schema.version")) as f:
            return f.read().strip()
    except OSError:
        return "none"


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "80"))), Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"listening on {server.server_address[0]}:{server.server_address[1]} as uid {os.getuid()}", flush=True)
server.serve_forever()
