"""A plain program as PID 1 (the control): runs the ticker and waits for it alone, so the
orphans re-parented to it are never reaped, and it has no SIGTERM handler (as PID 1 the
kernel then drops the engine's SIGTERM)."""
import subprocess
import sys

sys.exit(subprocess.run(["sh", "/app/ticker.sh"]).returncode)
