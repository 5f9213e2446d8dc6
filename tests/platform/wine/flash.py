"""The "flash and exit" program from the field (Windows side): it never talks to the SCM.

    python flash.py MARKS SECONDS CODE

Appends "start PID" to MARKS, lives SECONDS, appends "exit CODE", exits with CODE.
Registered directly as a service, the SCM waits for a dispatcher that never comes
(error 1053); wrapped by herder's service host (`herder service install` without
--notify, the NSSM case), it runs and is restarted with backoff.
"""

import os
import sys
import time

marks, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with open(marks, "a") as f:
    f.write(f"start {os.getpid()}\n")
time.sleep(seconds)
with open(marks, "a") as f:
    f.write(f"exit {code}\n")
sys.exit(code)
