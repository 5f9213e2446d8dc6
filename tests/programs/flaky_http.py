"""An HTTP server for the health tests: /health answers 200 "ok" until the file named by
the second argument exists, then 500. Usage: flaky_http.py PORT BROKEN_FILE."""

from __future__ import annotations

import http.server
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        broken = os.path.exists(sys.argv[2])
        body = b"broken" if broken else b"ok"
        self.send_response(500 if broken else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {server.server_port}", flush=True)
    server.serve_forever()
