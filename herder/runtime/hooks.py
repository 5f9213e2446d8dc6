"""Running an instance's hooks: the effects RunHook and StopHook, the answer HookDone.

A hook is started like its service (herder.process.spawn: the same account, environment,
working directory, limits and [security], unless the hook is `privileged`), in a session
of its own so StopHook reaches everything it started through its process group. It is
not put in the instance's cgroup: `kill = "tree"` and the leftover sweep after the main
process's exit must not take a post_stop hook with them. It carries the instance's cookie
(HERDER_INSTANCE_ID), so a herder restarted after a crash finds it among what the last one
left, plus HERDER_HOOK; it gets no NOTIFY_SOCKET (a hook is not the service).

A hook is spawned by the decision process, not by the keeper: it is short-lived and
not adopted. Its pipes' read ends go to the keeper right after the spawn, which writes
its output to the service's log with the services' output, each line marked
`[hook NAME]`. Its exit comes from this process's reaper (Processes.watch); HookDone is
posted once the keeper says what it wrote is in the log (bounded by EXIT_DRAIN_WAIT),
so the failure event carries its last stderr lines. A decision process killed while a
hook runs leaves it to the keeper (the subreaper reaps it); the next one ends it and
reports the hook as ended, outcome unknown (herder.runtime.adopt). No decision is taken
here: timeouts and what a failure means are the core's (herder.core.lifecycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from dataclasses import dataclass

from herder.core import effects as fx
from herder.core.events import Event, HookDone
from herder.core.world import World
from herder.errors import SpawnError
from herder.logs._hub import EXIT_DRAIN_WAIT, LogHub, Outputs
from herder.process import spawn as spawner
from herder.runtime.clock import Clock
from herder.runtime.processes import Post, Processes


@dataclass
class Running:
    pid: int
    hook: fx.HookKind
    run: int


class Hooks:
    def __init__(self, world: World, procs: Processes, logs: LogHub, post: Post, clock: Clock) -> None:
        self.world = world
        self.procs = procs
        self.logs = logs
        self.post = post
        self.clock = clock
        self.running: dict[str, Running] = {}

    def launch(self, eff: fx.RunHook) -> spawner.Launch:
        inst = self.world.instances[eff.name]
        hook = inst.spec.hooks.get(eff.hook.value)
        if hook is None:
            raise SpawnError(f"no {eff.hook} hook in the config")
        spec = dataclasses.replace(inst.spec, command=hook.command)
        if hook.privileged:       # herder's own account, without [security] (systemd's "+" prefix)
            spec = dataclasses.replace(spec, user=None, group=None, security=dataclasses.replace(
                spec.security, no_new_privileges=False, capabilities=None, private_tmp=False, read_only_paths=()))
        launch = spawner.plan(inst.name, inst.replica, spec, self.procs.proc(inst.name).cookie, self.procs.base_env)
        launch.env["HERDER_HOOK"] = eff.hook.value
        return launch

    def run(self, eff: fx.RunHook) -> None:
        inst = self.world.instances[eff.name]
        started = self.clock.now()
        try:
            launch = self.launch(eff)
            outs = self.logs.outputs(inst, hook=eff.hook.value)
        except (OSError, KeyError, SpawnError) as e:
            self.post(HookDone(eff.name, eff.hook, eff.run, None, error=f"cannot prepare: {e}"))
            return
        try:
            popen = spawner.spawn(launch, *self.logs.hook_streams(outs))
        except SpawnError as e:
            outs.close_all()
            self.post(HookDone(eff.name, eff.hook, eff.run, None, error=str(e)))
            return
        self.logs.hook_started(eff.name, eff.run, outs)    # the keeper reads its pipes from now on
        popen.returncode = 0     # herder's reaper owns this pid: Popen must never waitpid() it
        self.running[eff.name] = Running(popen.pid, eff.hook, eff.run)

        def exited(code: int) -> None:
            if (r := self.running.get(eff.name)) is not None and r.pid == popen.pid:
                del self.running[eff.name]
            sig = signal.Signals(-code).name if code < 0 else None
            ev = HookDone(eff.name, eff.hook, eff.run, code if code >= 0 else None, sig,
                          seconds=self.clock.now() - started)
            self._after_output(outs, ev)

        self.procs.watch(popen.pid, exited)

    def _after_output(self, outs: Outputs, ev: Event) -> None:
        """Post `ev` once the hook's last output is in (at most EXIT_DRAIN_WAIT later)."""
        settled = self.clock.busy()
        sent = False

        def send() -> None:
            nonlocal sent
            if not sent:
                sent = True
                handle.cancel()
                settled()
                self.post(ev)

        handle = asyncio.get_running_loop().call_later(EXIT_DRAIN_WAIT, send)
        self.logs.drain_outputs(outs, send)

    def signal(self, eff: fx.StopHook) -> None:
        r = self.running.get(eff.name)
        if r is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(r.pid, eff.signal)
