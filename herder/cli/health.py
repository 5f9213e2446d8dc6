"""`herder health`: exit 0 when every critical service is ready and healthy, else 1.

Made for a Dockerfile HEALTHCHECK and a Kubernetes exec probe, which run it every few
seconds: it asks the supervisor once (GET /v1/health/services), prints one line, and
stays on the CLI's light import path. Exit codes: 0 healthy, 1 not (each problem on
stderr), 3 no supervisor answers (the engine counts every non-zero code as unhealthy).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from herder.cli.ctl import client
from herder.errors import EXIT_FAILED, EXIT_OK

TIMEOUT = 10.0   # a probe has its own timeout; this one keeps a stuck socket from outliving it


def run(args: Any) -> int:
    res = client(args, timeout=TIMEOUT).call("services_health")
    if args.json:
        sys.stdout.write(json.dumps(res, indent=1) + "\n")
    elif res["ok"]:
        what = "critical" if res.get("critical") else "wanted up"
        print(f"healthy: {len(res['checked'])} instance(s) {what}, all ready and healthy")
    else:
        for line in res["problems"]:
            print(f"unhealthy: {line}", file=sys.stderr)
    return EXIT_OK if res["ok"] else EXIT_FAILED
