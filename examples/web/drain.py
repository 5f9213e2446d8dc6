"""pre_stop hook of the example web service: tells it to drain (POST /drain) before herder
sends the stop signal, as a Kubernetes preStop hook would."""

import os
import urllib.request

port = os.environ.get("PORT", "80")
req = urllib.request.Request(f"http://127.0.0.1:{port}/drain", method="POST")
with urllib.request.urlopen(req, timeout=10) as resp:
    print(f"drain requested: {resp.read().decode().strip()}", flush=True)
