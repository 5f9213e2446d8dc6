"""The one registry of control commands: data that drives the API server, the client, the
CLI's subcommands and `/openapi.json` (architecture.md, "commands are data").

A `Command` names its HTTP method and path, its parameters and JSON shapes (JSON Schema),
the server-side handler and, when it has one, its CLI subcommand. Handlers and CLI
runners are "module:function" strings imported only when used, so the CLI that imports
this module never pays for the server side, and the server never imports the CLI.

Adding an endpoint = appending one `Command(...)` to COMMANDS and writing its handler:

    Command("logs", "GET", "/v1/logs/{name}", "Tail a service's log as JSON lines",
            handler="herder.logs.api:tail", media=NDJSON,
            params=(NAME, Param("follow", "query", "boolean", "keep streaming"),
                    Param("tail", "query", "integer", "last N lines", default=100)),
            cli=Cli("logs", "show service logs", "herder.logs.cli:run", args=(...)))

A handler is `async def handler(req: herder.control.server.Request) -> Reply | Stream`.
"""

from __future__ import annotations

TYPE_CHECKING = False   # not `from typing import …`: typing costs `herder status` ~3 ms; mypy reads this block
if TYPE_CHECKING:
    import re  # imported where a route is compiled or filled in: `herder status` does neither
    from typing import Any

JSON = "application/json"
NDJSON = "application/x-ndjson"
TEXT = "text/plain; version=0.0.4; charset=utf-8"


class _Record:
    """A small immutable record. Not a dataclass: importing dataclasses (and inspect) costs
    the CLI ~10 ms, a tenth of `herder status`'s budget (docs/performance.md)."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kw: Any) -> None:
        names = self.__slots__
        for name, value in zip(names, args, strict=False):
            object.__setattr__(self, name, value)
        for name, value in kw.items():
            object.__setattr__(self, name, value)
        for name in names[len(args):]:
            if name not in kw:
                object.__setattr__(self, name, self._defaults()[name])

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class Param(_Record):
    """A path or query parameter (query values arrive as strings and are converted)."""

    __slots__ = ("name", "where", "type", "doc", "default", "minimum", "maximum")
    name: str
    where: str                  # "path" | "query"
    type: str                   # JSON Schema type: string | integer | number | boolean
    doc: str
    default: Any
    minimum: int | None
    maximum: int | None

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"type": "string", "doc": "", "default": None, "minimum": None, "maximum": None}

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": self.type}
        if self.default is not None:
            s["default"] = self.default
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.maximum is not None:
            s["maximum"] = self.maximum
        if self.where == "path" and self.type == "string":
            s["minLength"] = 1
        return s


class Arg(_Record):
    """One argparse argument of a CLI subcommand: flags and add_argument keywords."""

    __slots__ = ("flags", "kw")
    flags: tuple[str, ...]
    kw: dict[str, Any]

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"kw": {}}


class Cli(_Record):
    """The CLI subcommand a command drives; `run(args) -> exit code` ("module:function")."""

    __slots__ = ("name", "help", "run", "args", "aliases")
    name: str
    help: str
    run: str
    args: tuple[Arg, ...]
    aliases: tuple[str, ...]

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"args": (), "aliases": ()}


class Command(_Record):
    """One API operation: route, shapes, handler ("module:function") and its CLI."""

    __slots__ = ("name", "method", "path", "summary", "handler", "params", "body", "response", "media",
                 "errors", "cli", "tags")
    name: str                             # operationId
    method: str
    path: str                             # "/v1/services/{name}"
    summary: str
    handler: str                          # "module:function", imported by the server
    params: tuple[Param, ...]
    body: dict[str, Any] | None           # JSON Schema of the request body (object)
    response: dict[str, Any] | None       # JSON Schema of a 200 JSON body, or of one line of a stream
    media: str
    errors: tuple[int, ...]               # documented error statuses besides 400
    cli: Cli | None
    tags: tuple[str, ...]

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {"params": (), "body": None, "response": None, "media": JSON, "errors": (), "cli": None, "tags": ()}

    def pattern(self) -> re.Pattern[str]:
        return _compile(self.path)

    def url(self, **path: str) -> str:
        if not path:
            return self.path   # `herder status` never pays for urllib.parse (and ipaddress)
        import re
        from urllib.parse import quote

        return re.sub(r"\{(\w+)\}", lambda m: quote(str(path[m.group(1)]), safe=""), self.path)


def _compile(path: str) -> re.Pattern[str]:
    import re

    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


# ---- shapes ------------------------------------------------------------------------------

ERROR: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "known": {"type": "array", "items": {"type": "string"}},
                   "problems": {"type": "array", "items": {"type": "string"}}},
}
_NULLSTR = {"type": ["string", "null"]}
INSTANCE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "service", "state", "pid", "since", "restarts", "exit", "health", "status"],
    "properties": {
        "name": {"type": "string"}, "service": {"type": "string"}, "state": {"type": "string"},
        "pid": {"type": ["integer", "null"]}, "since": {"type": "string"},
        "uptime": {"type": ["number", "null"]}, "min_uptime": {"type": "number"}, "restarts": {"type": "integer"},
        "exit": {"type": ["integer", "string", "null"]}, "health": _NULLSTR, "status": {"type": "string"},
        "reason": {"type": "string"}, "want": {"type": "string"}, "held": {"type": "boolean"},
        "blocked": {"type": "boolean"},
    },
}
INSTANCES: dict[str, Any] = {"type": "array", "items": INSTANCE}
ACTION_RESULT: dict[str, Any] = {
    "type": "object", "required": ["ok", "instances"],
    "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}, "instances": INSTANCES},
}
WAIT_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "wait": {"type": "boolean", "default": True,
                 "description": "answer once the instances reached their goal (or failed)"},
        "timeout": {"type": "number", "minimum": 0, "maximum": 86400, "default": 300,
                    "description": "seconds to wait at most"},
    },
}
SIGNAL_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["signal"],
    "properties": {"signal": {"type": "string", "minLength": 1, "description": "HUP, SIGHUP or a number"},
                   "tree": {"type": "boolean", "default": False, "description": "every process of the tree"}},
}
PLAN: dict[str, Any] = {
    "type": "object",
    "properties": {"add": {"type": "array", "items": {"type": "string"}},
                   "remove": {"type": "array", "items": {"type": "string"}},
                   "restart": {"type": "object",
                               "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                   "scale": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
                   "unchanged": {"type": "array", "items": {"type": "string"}},
                   "settings": {"type": "array", "items": {"type": "string"}}},
}
RELOAD_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"config": {"type": "string", "minLength": 1,
                              "description": "absolute path of the config (default: the one herder runs)"},
                   "dry_run": {"type": "boolean", "default": False}},
}
RELOAD_RESULT: dict[str, Any] = {
    "type": "object", "required": ["ok", "plan"],
    "properties": {"ok": {"type": "boolean"}, "applied": {"type": "boolean"}, "plan": PLAN,
                   "lines": {"type": "array", "items": {"type": "string"}},
                   "errors": {"type": "array", "items": {"type": "string"}}},
}
EVENT: dict[str, Any] = {
    "type": "object", "required": ["ts", "instance", "kind", "message"],
    "properties": {"id": {"type": "integer"}, "ts": {"type": "number"}, "instance": {"type": "string"},
                   "kind": {"type": "string"}, "message": {"type": "string"}},
}
HEALTH: dict[str, Any] = {
    "type": "object", "required": ["ok", "pid"],
    "properties": {"ok": {"type": "boolean"}, "pid": {"type": "integer"}, "version": {"type": "string"},
                   "uptime": {"type": "number"}, "config": {"type": "string"}, "state_dir": {"type": "string"},
                   "stopping": {"type": "boolean"},
                   "states": {"type": "object", "additionalProperties": {"type": "integer"}},
                   "journal_failures": {"type": "integer",
                                        "description": "events the journal could not write (missing from history)"},
                   "problems": {"type": "array", "items": {"type": "string"},
                                "description": "state herder could not trust since it started (docs/security.md)"},
                   "started_by": {"type": "string",
                                  "description": "why this decision process started: start, restart, upgrade, "
                                                 "upgrade_failed, keeper_lost (docs/supervisor.md)"},
                   "generation": {"type": "integer",
                                  "description": "decision processes the keeper has run, this one included"},
                   "installing": {"type": "string",
                                  "description": "upgrade: the version the installed herder reported"}},
}

SERVICES_HEALTH: dict[str, Any] = {
    "type": "object", "required": ["ok", "checked", "problems"],
    "properties": {"ok": {"type": "boolean"},
                   "checked": {"type": "array", "items": {"type": "string"},
                               "description": "the instances judged: the critical ones, else those wanted up"},
                   "problems": {"type": "array", "items": {"type": "string"},
                                "description": "one line per instance that is not ready and healthy"},
                   "critical": {"type": "boolean", "description": "some service is marked critical"},
                   "init": {"type": "string", "description": "herder as a container's init (PID 1 …), or empty"},
                   "orphans_reaped": {"type": "integer",
                                      "description": "processes herder reaped that it had not started itself"}},
}

# ---- the commands -----------------------------------------------------------------------

LOG_LINE: dict[str, Any] = {
    "type": "object", "required": ["ts", "service", "instance", "stream", "line"],
    "properties": {"ts": {"type": "string"}, "service": {"type": "string"}, "instance": {"type": "string"},
                   "stream": {"type": "string"}, "line": {"type": "string"}},
}
NAME = Param("name", "path", doc="a service name, an instance name such as web.0, or several separated by commas "
              "(acted on together, as one job)")
_H = "herder.control.handlers:"
_C = "herder.cli.ctl:"
_SERVICES = Arg(("services",), {"nargs": "+", "metavar": "SERVICE", "help": "service or instance names, or all"})
_NOWAIT = Arg(("--no-wait",), {"action": "store_true", "help": "return at once instead of waiting for the outcome"})
_TIMEOUT = Arg(("--timeout",), {"type": float, "default": 300.0, "metavar": "SECONDS",
                                "help": "wait at most this long (default 300)"})


def _action(verb: str, summary: str, help_: str) -> Command:
    return Command(
        f"service_{verb}", "POST", f"/v1/services/{{name}}/{verb}", summary, _H + verb,
        params=(NAME,), body=WAIT_BODY, response=ACTION_RESULT, errors=(404,), tags=("services",),
        cli=Cli(verb, help_, _C + "run_action", args=(_SERVICES, _NOWAIT, _TIMEOUT)))


COMMANDS: list[Command] = [
    Command("services_list", "GET", "/v1/services", "Every instance: state, pid, uptime, restarts, health, last exit",
            _H + "services_list", response=INSTANCES, tags=("services",),
            params=(Param("service", "query", doc="comma-separated service or instance names"),),
            errors=(404,),
            cli=Cli("status", "one line per instance: state, pid, uptime, restarts, health, last exit",
                    _C + "run_status",
                    args=(Arg(("services",), {"nargs": "*", "metavar": "SERVICE", "help": "service or instance "
                                              "names, or all (default: every instance)"}),
                          Arg(("--wide",), {"action": "store_true",
                                            "help": "one line per instance, never wrapped (the default in a pipe)"}),
                          Arg(("--no-color",), {"action": "store_true",
                                                "help": "no colour on a terminal either (also: NO_COLOR=1)"}),
                          Arg(("--names",), {"action": "store_true",
                                             "help": "only the names: services, then replicated instances, one a "
                                                     "line (for completion scripts)"})))),
    Command("service_get", "GET", "/v1/services/{name}", "The instances of one service (or one instance)",
            _H + "service_get", params=(NAME,), response=INSTANCES, errors=(404,), tags=("services",)),
    _action("start", "Start a service (wanted up; clears a manual stop)", "start services (and wait until running)"),
    _action("stop", "Stop a service; it stays stopped across herder restarts until started",
            "stop services; they stay stopped until `herder start`"),
    _action("restart", "Restart a service; replicas one at a time, each once running again",
            "restart services (rolling for replicas)"),
    Command("service_signal", "POST", "/v1/services/{name}/signal", "Send a signal to the main process (or the tree)",
            _H + "signal", params=(NAME,), body=SIGNAL_BODY, response=ACTION_RESULT, errors=(404,),
            tags=("services",),
            cli=Cli("signal", "send a signal to services' main processes", _C + "run_signal",
                    args=(Arg(("sig",), {"metavar": "SIG", "help": "HUP, SIGUSR1, 10 …"}), _SERVICES,
                          Arg(("--tree",), {"action": "store_true", "help": "every process of each tree"})))),
    Command("reload", "POST", "/v1/reload", "Re-read the config; apply only what changed (or just plan it)",
            _H + "reload", body=RELOAD_BODY, response=RELOAD_RESULT, errors=(409, 422), tags=("supervisor",),
            cli=Cli("reload", "re-read the config and apply the difference", _C + "run_reload",
                    args=(Arg(("--dry-run",), {"action": "store_true", "help": "print the plan, change nothing"}),))),
    Command("down", "POST", "/v1/down", "Stop every service in reverse dependency order, then herder",
            _H + "down", response=HEALTH, tags=("supervisor",),
            cli=Cli("down", "stop every service, then the supervisor", _C + "run_down",
                    args=(Arg(("--no-wait",), {"action": "store_true", "help": "do not wait for herder to exit"}),))),
    Command("upgrade", "POST", "/v1/upgrade",
            "Replace the running herder (keeper and decision process) with the installed version; "
            "services keep running", _H + "upgrade", response=HEALTH, errors=(409,), tags=("supervisor",),
            cli=Cli("upgrade", "replace the running herder with the installed version; services keep running",
                    _C + "run_upgrade")),
    Command("events", "GET", "/v1/events", "Events from the journal as JSON lines; follow=1 keeps streaming",
            _H + "events", media=NDJSON, response=EVENT, tags=("supervisor",),
            params=(Param("follow", "query", "boolean", "keep the stream open for new events", default=False),
                    Param("since", "query", doc="RFC 3339 time, unix seconds, or a duration ago such as 10m"),
                    Param("limit", "query", "integer", "at most this many past events (the latest)", 100, 0, 100000),
                    Param("service", "query", doc="comma-separated service or instance names"),
                    Param("snapshot", "query", "boolean", "begin with one `snapshot` line per instance",
                          default=False)),
            cli=Cli("events", "state changes, exits, restarts, from the journal", _C + "run_events",
                    args=(Arg(("-f", "--follow"), {"action": "store_true", "help": "keep printing new events"}),
                          Arg(("--since",), {"metavar": "T", "help": "RFC 3339 time or a duration ago (10m, 2h)"}),
                          Arg(("-n", "--limit"), {"type": int, "default": 100, "metavar": "N"}),
                          Arg(("services",), {"nargs": "*", "metavar": "SERVICE"})))),
    Command("logs", "GET", "/v1/logs/{name}", "A service's output as JSON lines; follow=1 keeps streaming",
            "herder.logs.api:tail", media=NDJSON, response=LOG_LINE, errors=(404, 409), tags=("services",),
            params=(Param("name", "path", doc="service, instance (web.0), several separated by commas, or *"),
                    Param("follow", "query", "boolean", "keep the stream open for new lines", default=False),
                    Param("tail", "query", "integer", "start with the last N lines (from memory)", 10, 0, 100000)),
            cli=Cli("logs", "services' output, merged in time order (files; -f streams from the supervisor)",
                    "herder.cli.logs:run",
                    args=(Arg(("-f", "--follow"), {"action": "store_true", "help": "keep printing new lines"}),
                          Arg(("-n", "--lines"), {"type": int, "default": 50, "metavar": "N",
                                                  "help": "last N lines of each instance (0 = all; default 50)"}),
                          Arg(("--since",),
                              {"metavar": "T", "help": 'lines after T: "10m" ago or 2024-05-01T12:00:00Z'}),
                          Arg(("--reopen",), {"action": "store_true",
                                              "help": "make the supervisor reopen its log files (after logrotate)"}),
                          Arg(("services",), {"nargs": "*", "metavar": "SERVICE"})))),
    Command("health", "GET", "/v1/health", "The supervisor itself", _H + "health", response=HEALTH,
            tags=("supervisor",)),
    Command("services_health", "GET", "/v1/health/services",
            "Every critical service (else every service wanted up) ready and healthy: a container's health",
            "herder.control.verdict:services_health", response=SERVICES_HEALTH, tags=("supervisor",),
            cli=Cli("health", "exit 0 when every critical service is ready and healthy, else 1 (for a HEALTHCHECK "
                    "or an exec probe)", "herder.cli.health:run")),
    Command("metrics", "GET", "/metrics", "Prometheus metrics", _H + "metrics", media=TEXT, tags=("supervisor",)),
    Command("openapi", "GET", "/openapi.json", "This document", _H + "openapi", response={"type": "object"},
            tags=("supervisor",)),
]


def by_name(name: str) -> Command:
    for c in COMMANDS:
        if c.name == name:
            return c
    raise KeyError(name)
