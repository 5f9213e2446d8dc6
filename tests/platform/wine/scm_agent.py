"""The Windows tier's eyes on Wine's SCM (Windows side: runs under the Windows CPython).

One long-lived process per test session, so a status query costs milliseconds instead of
a Windows Python start-up (~1 s). It reads one JSON request per line on stdin and answers
one JSON line on stdout, through real pywin32:

    {"op": "query", "name": N}                       → the service's SERVICE_STATUS_PROCESS
    {"op": "control", "name": N, "code": C}          → ControlService(C), then its status
    {"op": "watch", "name": N, "until": S, "checkpoint": C, "timeout": T}
        → every distinct (state, checkpoint, wait hint, controls) seen, polling every 10 ms,
          until the state is S with a checkpoint ≥ C (default 0), or T seconds passed (the
          SCM has no wait call that Wine implements)

    {"op": "hold", "path": P} / {"op": "release", "path": P}
        → keep file P open (as an editor, a backup tool or a virus scanner does: without
          FILE_SHARE_DELETE, so it cannot be replaced) / close it again

Errors come back as {"error": WINERROR, "text": ...}; the agent itself never dies on one.
"""

import json
import sys
import time

import win32service

STATUS_KEYS = ("CurrentState", "ProcessId", "Win32ExitCode", "ServiceSpecificExitCode", "CheckPoint", "WaitHint",
               "ControlsAccepted")


def status(name):
    scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
    try:
        svc = win32service.OpenService(scm, name, win32service.SERVICE_QUERY_STATUS)
        try:
            st = win32service.QueryServiceStatusEx(svc)
        finally:
            win32service.CloseServiceHandle(svc)
    finally:
        win32service.CloseServiceHandle(scm)
    return {k: int(st[k]) for k in STATUS_KEYS}


def control(name, code):
    scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
    try:
        access = win32service.SERVICE_QUERY_STATUS | win32service.SERVICE_STOP | win32service.SERVICE_PAUSE_CONTINUE
        svc = win32service.OpenService(scm, name, access)
        try:
            win32service.ControlService(svc, code)
        finally:
            win32service.CloseServiceHandle(svc)
    finally:
        win32service.CloseServiceHandle(scm)
    return status(name)


def watch(name, until, timeout, checkpoint=0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        st = status(name)
        key = [st["CurrentState"], st["CheckPoint"], st["WaitHint"], st["ControlsAccepted"]]
        if not seen or seen[-1] != key:
            seen.append(key)
        reached = st["CurrentState"] == until and st["CheckPoint"] >= checkpoint
        if reached or time.monotonic() >= deadline:
            return {"seen": seen, "final": st, "reached": reached}
        time.sleep(0.01)


HELD = {}


def handle(req):
    op = req["op"]
    if op == "hold":
        HELD[req["path"]] = open(req["path"], "rb")  # noqa: SIM115 - held open until "release"
        return {"held": req["path"]}
    if op == "release":
        HELD.pop(req["path"]).close()
        return {"released": req["path"]}
    if op == "query":
        return status(req["name"])
    if op == "control":
        return control(req["name"], req["code"])
    if op == "watch":
        return watch(req["name"], req["until"], req["timeout"], req.get("checkpoint", 0))
    return {"error": -1, "text": f"unknown op {op}"}


def main():
    print(json.dumps({"ready": sys.version}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as e:  # noqa: BLE001 - pywintypes.error: (winerror, funcname, strerror)
            answer = {"error": getattr(e, "winerror", -1), "text": str(e)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
