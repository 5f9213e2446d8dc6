"""Says what it sees of its own privileges, as one JSON line on stdout ("PRIV {...}"), then
waits for SIGTERM. argv: [PORT] binds 127.0.0.1:PORT first (to show NET_BIND_SERVICE);
[--ro PATH] tries to write into PATH. Stdlib only: it may run as another user (www-data)
with the system's python."""
import json
import os
import signal
import socket
import sys


def status() -> dict[str, str]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Umask"):
                out[key] = value.strip()
    return out


args = sys.argv[1:]
seen: dict[str, object] = {"status": status(), "env": dict(os.environ)}
if args and args[0].isdigit():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(args.pop(0))))
        s.listen()
        seen["bind"] = "ok"
    except OSError as e:
        seen["bind"] = e.strerror
if args[:1] == ["--ro"]:
    path = os.path.join(args[1], f".herder-ro-test-{os.getpid()}")
    try:
        with open(path, "w"):
            pass
        os.unlink(path)
        seen["write"] = "ok"
    except OSError as e:
        seen["write"] = e.strerror
mine = f"/tmp/.herder-private-{os.getpid()}"
with open(mine, "w") as f:
    f.write("x")
seen["tmp"] = sorted(os.listdir("/tmp"))
os.unlink(mine)          # without private_tmp this is the machine's /tmp: leave nothing behind
seen["child_umask"] = os.popen("sh -c umask").read().strip()
print("PRIV " + json.dumps(seen), flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
