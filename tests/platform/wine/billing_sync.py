"""The docs/service.md example, run by Wine's SCM as a herder.service program (Windows side).

    python billing_sync.py MARKS GO EXIT   (MARKS: a file it appends what happens to;
                                            GO: start-up lasts until this file exists;
                                            EXIT: main's return value, or "raise")

Installed by `herder service install` it is the service process itself (it imports
herder.service; herder's host applies --cwd and --env and runs it in-process): the
library sees services.exe as its parent and speaks the SCM's status protocol. Start-up
is slow on purpose (it waits for GO), so the SCM sees START_PENDING with advancing
checkpoints until ctx.ready(); the shutdown steps take a moment each, so it sees
STOP_PENDING with wait hints.

With BILLING_LINGER=1 in its environment, its exit takes a while after the SCM saw STOPPED
(as atexit work does: flushing, closing connections): it waits, up to 5 s, for the SCM's
service thread to end. Whatever that thread still reports after STOPPED then reaches the
SCM before the process is gone (pywin32 used to report STOPPED once more, with 1066 and
0x20000001 instead of the program's exit code).
"""

import asyncio
import atexit
import ctypes
import os
import sys
import threading
import time

from herder.service import Service

MARKS, GO, EXIT = sys.argv[1], sys.argv[2], sys.argv[3]


def mark(text: str) -> None:
    with open(MARKS, "a") as f:
        f.write(f"{text}\n")


class Db:
    async def connect(self) -> "Db":
        mark("db.connect")
        return self

    def close(self) -> None:   # sync: the library runs it in a worker thread
        time.sleep(0.4)
        mark("db.close")


class Server:
    async def drain(self) -> None:
        await asyncio.sleep(0.8)
        mark("server.drain")


svc = Service("billing-sync", start_timeout="20s")


def linger(service_thread: int) -> None:
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenThread(0x00100000, False, service_thread)   # SYNCHRONIZE
    if handle:
        kernel32.WaitForSingleObject(handle, 5000)
        kernel32.CloseHandle(handle)


@svc.main
async def main(ctx):
    db = await Db().connect()
    ctx.defer(db.close, timeout="5s")
    server = Server()
    ctx.defer(server.drain, timeout="30s")
    mark(f"pid {os.getpid()} mode {ctx.mode.value}")
    mark(f"cwd {os.getcwd()} region {os.environ.get('BILLING_REGION')}")
    if os.environ.get("BILLING_LINGER"):
        atexit.register(linger, threading.get_native_id())   # main runs on the SCM's service thread
    while not os.path.exists(GO):   # a slow start-up: the SCM must see checkpoints advance
        await asyncio.sleep(0.05)
    ctx.ready()
    mark("ready")
    await ctx.stopping
    mark(f"stopping: {ctx.stopping.reason}")
    if EXIT == "raise":
        raise RuntimeError("main failed on purpose")
    return int(EXIT)


@svc.on_reload
def reload(ctx):
    mark("reload")


@svc.on_pause
def pause(ctx):
    mark("pause")


@svc.on_continue
def resume(ctx):
    mark("continue")


if __name__ == "__main__":
    svc.run()
