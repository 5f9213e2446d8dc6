"""Imported by test programs: send one JSON message to the test's datagram socket
(REPORT_SOCKET), or write it as a line on stdout when there is none.

Safe to call from a signal handler: a datagram, or one os.write of the whole line (print
would go through sys.stdout's buffer, and a handler that runs while another print is in
it dies with "reentrant call")."""
import json
import os
import socket


def report(**msg: object) -> None:
    path = os.environ.get("REPORT_SOCKET")
    if not path:
        os.write(1, (json.dumps(msg) + "\n").encode())
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(json.dumps(msg).encode(), path)
