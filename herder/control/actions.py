"""Operator actions on instances: start, stop, restart, as jobs of the core.

The API posts one Command per request (all its targets together: herder.core.jobs
orders stops like `down`, rolls the replicas of one service one at a time, stops then
starts several services in dependency order) and, when asked to wait, awaits the core's
Reply. Nothing here decides or polls.
"""

from __future__ import annotations

from herder.core.events import Command, Verb
from herder.runtime.ports import Host


async def act(sup: Host, verb: Verb, names: list[str], wait: bool, timeout: float) -> tuple[bool, str]:
    """Post the command; with `wait`, (ok, message) once the job is done or `timeout` passed."""
    if not wait:
        sup.post(Command(verb, tuple(names)))
        return True, ""
    reply = await sup.ask(lambda ticket: Command(verb, tuple(names), ticket, timeout))
    return reply.ok, reply.message
