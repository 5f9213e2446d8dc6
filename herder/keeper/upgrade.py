"""`herder upgrade`, the keeper's half: exec the installed version with nothing in flight.

The rules, each one a way a service was once hurt (docs/supervisor.md, "Upgrade in place"):

- Check before changing anything. The decision process runs `preflight` when the request
  comes in: a child of the *installed* interpreter and package imports the new keeper and
  decision process and says whether it reads this keeper's record version. A refusal
  changes nothing: the old decision process keeps running, `herder upgrade` exits 1.
- Import nothing from disk at upgrade time. Everything this path needs is imported when the
  keeper starts (this module, resume, the trampoline's text); the package on disk may be
  the new version's, half-written or broken by then.
- Exec only from the top of the keeper's loop (`Keeper._upgrade_due`), after a whole reap
  batch and a whole message batch were handled, never from inside one.
- Lose no signal and no exit. Signals are blocked before the writer is drained and stay
  blocked across execve (the kernel keeps them pending; the new keeper unblocks once its
  handlers are in place). Those already caught are handled first: SIGCHLD reaps (the exit
  records travel in the record), SIGTERM/SIGINT/SIGHUP become the pending requests the
  next decision process is welcomed with. The new keeper reaps once as it starts.
- Lose no byte. The pump stops reading and the writer writes everything it read; if that
  does not finish within DRAIN_TIMEOUT (a stuck disk), reading resumes and the upgrade is
  refused (`upgrade_failed`) rather than exec with unwritten bytes.
- Never leave the services without a parent that reads their pipes. The exec runs the
  trampoline (herder.keeper.trampoline), which loads the installed keeper or, when it
  cannot, holds the services itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from herder.keeper import trampoline, wire
from herder.keeper.resume import VERSION, build

if TYPE_CHECKING:
    from herder.keeper.keeper import Keeper

DRAIN_TIMEOUT = 10.0       # longest the writer may take to write what was read before the exec
PREFLIGHT_TIMEOUT = 60.0   # a cold import of the new version on a loaded machine
# by name: the module imports on Windows too (the API handlers import it; no keeper runs there)
_BLOCK = {getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGCHLD", "SIGPWR")
          if hasattr(signal, n)}
_TRAMPOLINE = trampoline.source()      # read now: at upgrade time the file on disk is the new version's


def preflight(exe: str) -> tuple[str, str]:
    """(installed version, "") when the install at `exe` can take over this keeper, else
    ("", why). Runs the new version's `python -m herder.keeper --can-resume V`: it imports
    the new keeper and decision process and checks the record version. Success is its
    last stdout line "ok VERSION", not only its exit status (the decision process's
    reaper may take the child's status first)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    try:
        r = subprocess.run([exe, "-P", "-m", "herder.keeper", "--can-resume", str(VERSION)], capture_output=True,
                           text=True, timeout=PREFLIGHT_TIMEOUT, env=env, stdin=subprocess.DEVNULL,
                           errors="replace", check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return "", f"cannot run the installed herder ({exe}): {e}"
    lines = r.stdout.strip().splitlines()
    if lines and lines[-1].startswith("ok "):
        return lines[-1][3:].strip(), ""
    err = [x for x in r.stderr.strip().splitlines() if x.strip()]
    said = err[-1].strip() if err else (lines[-1] if lines else f"exit status {r.returncode}")
    return "", f"the installed herder cannot take over: {said}"


def exec_keeper(k: Keeper, argv: list[str]) -> str:
    """Replace this keeper with the installed version (pid, children and fds kept). Returns
    only when it did not happen, with the reason; the keeper then carries on as it was."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK)     # from here on, signals wait in the kernel
    k.take_signals()                                          # the ones already caught
    k.reap()
    if k.code is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return "herder is stopping"
    if not k.capture.pause(DRAIN_TIMEOUT):
        k.capture.resume()
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return f"the log writer did not write what it had read within {DRAIN_TIMEOUT:g}s (a slow or stuck disk)"
    k.capture.pump.stop(close_channels=False)
    rec, fds = build(k, "upgrade", own=True)
    blob = wire.blob_fd(json.dumps({"record": rec, "fds": fds}).encode("utf-8", "surrogateescape"))
    boot = wire.blob_fd(_TRAMPOLINE)
    keep = [blob, boot, *fds]
    for f in keep:
        os.set_inheritable(f, True)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    sys.stdout.flush()
    sys.stderr.flush()
    exe = argv[0] if argv else sys.executable
    why = ""
    try:
        os.execv(exe, [exe, "-P", "-c", trampoline.BOOT, "--resume", str(blob), "--trampoline", str(boot)])
    except OSError as e:
        why = f"cannot exec {exe}: {e}"
    for f in keep:
        with contextlib.suppress(OSError):
            os.set_inheritable(f, False)
    os.close(blob)
    os.close(boot)
    k.restart_capture(rec["capture"], [fds[i] for i in rec["capture"]["fds"]])
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return why
