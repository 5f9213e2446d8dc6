"""The config model: what herder.toml may contain, declared once.

Each dataclass is a TOML table; each field says how it is parsed, its built-in default
and what it does. docs/config.md and the JSON Schema are generated from these classes.
Durations are float seconds, sizes int bytes, signals their names ("SIGTERM").
"""

from __future__ import annotations

from dataclasses import dataclass

from herder.config.lifecycle import (
    MISSED_POLICIES,
    OVERLAP_POLICIES,
    Hooks,
    Security,
    p_cron,
    p_exit_statuses,
    p_timezone,
)
from herder.config.probe_values import (
    p_cpus,
    p_hostport,
    p_opt_argv,
    p_opt_size,
    p_regex,
    p_rlimit,
    p_url,
)
from herder.config.schema import (
    opt,
    p_argv,
    p_auto_switch,
    p_bool,
    p_depends,
    p_duration,
    p_enum,
    p_env,
    p_float,
    p_forward,
    p_int,
    p_int_list,
    p_mode,
    p_opt_duration,
    p_opt_str,
    p_output,
    p_signal,
    p_size,
    p_str,
    table,
)

RESTART_POLICIES = ("always", "on-failure", "never")
KILL_MODES = ("tree", "group", "main")
LOG_FORMATS = ("text", "json")
OVERFLOW_MODES = ("block", "drop")
READY_KINDS = ("notify", "http", "tcp", "exec", "log")
HEALTH_KINDS = ("http", "tcp", "exec")
HEALTH_ACTIONS = ("restart", "none")
CONSOLE_MODES = ("auto", "text", "json", "off")
Problem = tuple[tuple[str, ...], str]


def _kinds(table_: object, names: tuple[str, ...]) -> list[str]:
    return [k for k in names if getattr(table_, k) not in (None, False)]


def _only_one(table_: object, names: tuple[str, ...], what: str) -> list[Problem]:
    kinds = _kinds(table_, names)
    return [((kinds[1],), f"set only one {what}; got {' and '.join(kinds)}")] if len(kinds) > 1 else []


@dataclass(frozen=True)
class Backoff:
    """Delay before restart n (n = 0, 1, …): min(max, initial × factor^n), then ± jitter."""

    initial: float = opt(0.1, p_duration, "delay before the first restart", example='"100ms"')
    factor: float = opt(2.0, p_float(1.0), "multiplier per consecutive restart (≥ 1)")
    max: float = opt(30.0, p_duration, "longest delay", example='"30s"')
    jitter: float = opt(0.1, p_float(0.0, 1.0), "random spread, as a fraction of the delay (0 to 1)")
    reset_after: float = opt(60.0, p_duration, "a run this long resets n to 0", example='"60s"')


@dataclass(frozen=True)
class StartLimit:
    """More than `burst` failed starts within `interval` park the service in `failed`."""

    burst: int = opt(5, p_int(1), "failed starts tolerated inside the interval")
    interval: float = opt(60.0, p_duration, "the sliding window", example='"60s"')


@dataclass(frozen=True)
class Logs:
    """Where a service's output goes (capture, rotation and forwarding: see docs/logs.md)."""

    stdout: str = opt("auto", p_output("auto"), 'auto = {log_dir}/{name}.log | a path | "inherit" | "null"')
    stderr: str = opt("merge", p_output("merge", "auto"),
                      'merge (into stdout\'s file) | auto = {log_dir}/{name}.err.log | a path | "inherit" | "null"')
    timestamps: bool = opt(True, p_bool, "prefix every line with its RFC 3339 wall-clock time (ms, UTC)")
    format: str = opt("text", p_enum(*LOG_FORMATS),
                      "text | json (one object per line: ts, service, instance, stream, line)")
    max_size: int = opt(50 * 1024**2, p_size, "rotate when the file would grow past this; 0 = never by size",
                        example='"50MB"')
    max_files: int = opt(10, p_int(0), "rotated files kept (oldest deleted first); 0 = keep none")
    rotate_every: float | None = opt(None, p_opt_duration, "also rotate this often (monotonic clock)", example='"1d"')
    compress: bool = opt(True, p_bool, "gzip rotated files, in the background")
    on_overflow: str = opt("block", p_enum(*OVERFLOW_MODES),
                           "disk slower than the child: block (backpressure, no byte lost) | drop (counted, reported)")
    buffer: int = opt(4 * 1024**2, p_size, "bytes per stream held in memory while the disk catches up", example='"4MB"')
    max_line: int = opt(32 * 1024, p_size, "longer lines are split into pieces of this size (never dropped)",
                        example='"32KB"')
    tail_lines: int = opt(20, p_int(0, 1000), "last stderr lines attached to each exit event")
    file_mode: int = opt(0o640, p_mode, "permissions of the log files herder writes (they carry the service's "
                         "output: not world-readable by default)", example='"0640"')
    forward: tuple[str, ...] = opt((), p_forward,
                                   'also send lines to: "journald" | "syslog" (/dev/log) | "syslog:HOST:PORT" (UDP) '
                                   '| "syslog:/PATH" | "eventlog" (Windows)', example='["journald"]')


@dataclass(frozen=True)
class Ready:
    """When an instance counts as ready (docs/health.md). Set at most one check; with none,
    an instance is ready as soon as it is spawned, and the other keys have no effect (so
    [defaults] may set a timeout for every service that has a check)."""

    notify: bool = opt(False, p_bool, "wait for READY=1 on $NOTIFY_SOCKET (the sd_notify protocol)")
    http: str | None = opt(None, p_url, "ready once this URL answers 2xx or 3xx", example='"http://127.0.0.1:8000/ready"')
    tcp: str | None = opt(None, p_hostport, "ready once host:port accepts a connection", example='"127.0.0.1:5432"')
    exec: tuple[str, ...] | None = opt(None, p_opt_argv, "ready once this command exits 0", example='["pg_isready"]')
    log: str | None = opt(None, p_regex, "ready once a line of the service's output matches this regular expression",
                          example='"Application startup complete"')
    timeout: float = opt(30.0, p_duration, "not ready by then: a failed start (stopped, then backoff)", example='"30s"')
    interval: float = opt(0.5, p_duration, "pause between attempts of an http, tcp, exec or log check",
                          example='"500ms"')
    attempt_timeout: float = opt(2.0, p_duration, "longest one http, tcp or exec attempt may take", example='"2s"')

    @property
    def kind(self) -> str | None:
        return next(iter(_kinds(self, READY_KINDS)), None)

    def check(self) -> list[Problem]:
        return _only_one(self, READY_KINDS, "readiness check")


@dataclass(frozen=True)
class Health:
    """Liveness while running: a probe every `interval`, and/or a watchdog (docs/health.md)."""

    http: str | None = opt(None, p_url, "healthy while this URL answers 2xx or 3xx", example='"http://127.0.0.1:8000/health"')
    tcp: str | None = opt(None, p_hostport, "healthy while host:port accepts connections", example='"127.0.0.1:5432"')
    exec: tuple[str, ...] | None = opt(None, p_opt_argv, "healthy while this command exits 0", example='["check.sh"]')
    body: str | None = opt(None, p_regex, "with http: the response body must also match this regular expression",
                           example='"ok"')
    interval: float = opt(10.0, p_duration, "time from one probe's end to the next probe", example='"10s"')
    timeout: float = opt(2.0, p_duration, "a probe taking longer fails", example='"2s"')
    initial_delay: float = opt(0.0, p_duration, "wait this long after the instance is ready before the first probe",
                               example='"5s"')
    failure_threshold: int = opt(3, p_int(1), "consecutive failures that make the instance unhealthy")
    success_threshold: int = opt(1, p_int(1), "consecutive successes that make it healthy")
    action: str = opt("restart", p_enum(*HEALTH_ACTIONS),
                      "on unhealthy: restart (through the stop path) | none (event only)")
    watchdog: float | None = opt(None, p_opt_duration,
                                 "WATCHDOG=1 must arrive at least this often (sets WATCHDOG_USEC)",
                                 example='"30s"')

    @property
    def kind(self) -> str | None:
        return next(iter(_kinds(self, HEALTH_KINDS)), None)

    def check(self) -> list[Problem]:
        if _only_one(self, HEALTH_KINDS, "health probe"):
            return _only_one(self, HEALTH_KINDS, "health probe")
        if self.body is not None and self.http is None:
            return [(("body",), "body is only checked with an http probe; expected http = \"URL\" too")]
        if self.watchdog is not None and self.watchdog <= 0:
            return [(("watchdog",), "expected a duration above zero")]
        return []


@dataclass(frozen=True)
class Limits:
    """Resource limits (docs/health.md): rlimits set before exec, cgroup limits, RSS watch."""

    memory: int | None = opt(None, p_opt_size,
                             "hard memory limit of the instance's cgroup; over it the kernel OOM-kills "
                             "(reported as reason oom)", example='"512MB"')
    cpu: float | None = opt(None, p_cpus, "CPU quota of the instance's cgroup, in CPUs (0.5 = half of one)",
                            example="0.5")
    max_memory_restart: int | None = opt(None, p_opt_size, "RSS of the whole process tree above this: graceful restart",
                                         example='"400MB"')
    memory_check_interval: float = opt(5.0, p_duration, "how often max_memory_restart samples the RSS", example='"5s"')
    nofile: int | None = opt(None, p_rlimit, "RLIMIT_NOFILE (soft = hard) set before exec", example="4096")
    nproc: int | None = opt(None, p_rlimit, "RLIMIT_NPROC (soft = hard) set before exec", example="512")
    core: int | None = opt(None, p_rlimit, 'RLIMIT_CORE in bytes, or "unlimited" (soft = hard) set before exec',
                           example="0")

    def check(self) -> list[Problem]:
        if self.memory is not None and self.max_memory_restart is not None and self.max_memory_restart >= self.memory:
            return [(("max_memory_restart",), "must be below limits.memory, else the OOM killer acts first; "
                     "expected a smaller size")]
        return []


@dataclass(frozen=True)
class ServiceSpec:
    """One [services.NAME] table, with [defaults] and the built-in defaults merged under it."""

    command: tuple[str, ...] = opt(parse=p_argv, doc="argv list, or a string split like a shell would (shlex)",
                                   required=True, example='["python", "app.py"]')
    shell: bool = opt(False, p_bool, "run the command (one string) through /bin/sh -c")
    cwd: str | None = opt(None, p_opt_str, "working directory, relative to the config file; {replica} is substituted")
    env: dict[str, str] = opt(parse=p_env, doc="extra environment; {replica} is substituted", factory=dict)
    env_file: str | None = opt(None, p_opt_str, "dotenv file read at load time; `env` wins over it")
    user: str | None = opt(None, p_opt_str, "run as this user (herder must run as root); also sets HOME, USER, LOGNAME")
    group: str | None = opt(None, p_opt_str, "run with this group (default: the user's primary group)")
    replicas: int = opt(1, p_int(1, 10000), "instances NAME.0 … NAME.N-1 (a single instance is just NAME)")
    autostart: bool = opt(True, p_bool, "start with `herder up`")
    restart: str = opt("on-failure", p_enum(*RESTART_POLICIES), "when to restart after an exit")
    success_exit_codes: tuple[int, ...] = opt((0,), p_int_list, "exit codes that count as success")
    restart_prevent_exit_codes: tuple[int | str, ...] = opt(
        (), p_exit_statuses, "an exit with one of these codes or signals is never restarted, whatever `restart` "
        "says: the instance goes to exited (systemd's RestartPreventExitStatus=)")
    restart_force_exit_codes: tuple[int | str, ...] = opt(
        (), p_exit_statuses, "an exit with one of these codes or signals is restarted, whatever `restart` says "
        "(backoff and start_limit still apply; systemd's RestartForceExitStatus=)")
    min_uptime: float = opt(1.0, p_duration, "a run shorter than this is a failed start", example='"1s"')
    backoff: Backoff = table(Backoff, "restart delays")
    start_limit: StartLimit = table(StartLimit, "when to give up")
    stop_signal: str = opt("SIGTERM", p_signal, "first signal sent on stop", example='"TERM"')
    stop_timeout: float = opt(10.0, p_duration, "then SIGKILL to everything left", example='"10s"')
    kill: str = opt("tree", p_enum(*KILL_MODES),
                    "what stop and SIGKILL reach: tree (cgroup, else group + descendants) | group | main")
    reload_signal: str = opt("SIGHUP", p_signal, "signal for `herder signal`/reload of this service", example='"HUP"')
    depends_on: dict[str, str] = opt(parse=p_depends, doc="SERVICE = started | ready | healthy | completed",
                                     factory=dict, example='{ db = "ready" }')
    bind: bool = opt(False, p_bool, "restart this service whenever a dependency restarts")
    schedule: str | None = opt(None, p_cron, "run as a job on this calendar (cron syntax; docs/hooks.md#schedules): "
                               "`herder up` does not start it, each run ends by itself; restart defaults to never",
                               example='"0 3 * * *"')
    overlap: str = opt("skip", p_enum(*OVERLAP_POLICIES), "schedule: when a run is due while the last one still "
                       "runs: skip it | queue it (run once the last one ends) | replace (stop the last one)")
    missed: str = opt("skip", p_enum(*MISSED_POLICIES), "schedule: runs due while herder was down: skip them | run "
                      "(once, at start-up; systemd's Persistent=true)")
    restart_schedule: str | None = opt(None, p_cron, "restart the (running) service on this calendar, through the "
                                       "normal restart (rolling for replicas)", example='"0 4 * * *"')
    timezone: str | None = opt(None, p_timezone, "time zone of schedule and restart_schedule; default the machine's "
                               "local time", example='"Europe/Paris"')
    hooks: Hooks = table(Hooks, "commands around the process: pre_start, post_start, pre_stop, post_stop")
    security: Security = table(Security, "least privilege: capabilities, no_new_privileges, umask, private_tmp …")
    critical: bool = opt(False, p_bool, "herder cannot do without it: when it fails for good (failed, exited without "
                         "completing and not restarted, or waiting on a dependency that did), herder stops everything "
                         "in order and exits with critical_exit_code (docs/container.md)")
    critical_exit_code: int = opt(69, p_int(3, 125), "herder's exit code when this critical service fails for good "
                                  "(3 to 125; 69 is EX_UNAVAILABLE)")
    logs: Logs = table(Logs, "output capture")
    ready: Ready = table(Ready, "readiness: gates dependents (ready/healthy) and rolling restarts")
    health: Health = table(Health, "liveness while running")
    limits: Limits = table(Limits, "resource limits")

    def check(self) -> list[Problem]:
        out: list[Problem] = []
        watched = self.health.kind is not None or self.health.watchdog is not None
        if watched and self.health.action == "restart" and self.restart == "never":
            out.append((("health", "action"), 'restart = "never" means herder never restarts this service; expected '
                        'action = "none", or restart = "on-failure" or "always"'))
        if self.ready.log is not None and self.logs.stdout in ("null", "inherit"):
            out.append((("ready", "log"),
                        f'needs the output in a file herder reads, but logs.stdout = "{self.logs.stdout}"; '
                        'expected logs.stdout = "auto" or a path'))
        both = [c for c in self.restart_prevent_exit_codes if c in self.restart_force_exit_codes]
        if both:
            out.append((("restart_force_exit_codes",), f"{both[0]} is also in restart_prevent_exit_codes; expected "
                        "each code in one list only"))
        if self.schedule is not None and self.restart_schedule is not None:
            out.append((("restart_schedule",), "a service with a schedule is a job that ends by itself; expected "
                        "either schedule (a job) or restart_schedule (a long-running service)"))
        return out


@dataclass(frozen=True)
class HerderSettings:
    """The [herder] table: the supervisor itself."""

    state_dir: str = opt(".herder", p_str, "socket, journal, pid and run-state files; relative to the config file. "
                         "Unset: $HERDER_STATE_DIR if set (`herder install --system` sets /var/lib/herder). "
                         "{state_dir}/herder.sock must fit a Unix socket path (107 bytes): `up` refuses a longer one")
    log_dir: str | None = opt(None, p_opt_str, "service log files; default {state_dir}/logs")
    log_dir_mode: int = opt(0o750, p_mode, "permissions of the log folders herder creates", example='"0750"')
    shutdown_timeout: float = opt(60.0, p_duration, "hard deadline for stopping everything", example='"60s"')
    cgroups: bool = opt(True, p_bool, "track each instance in its own cgroup where herder can create one")
    socket_group: str | None = opt(None, p_opt_str, "open the API socket to this group (mode 0660); default owner only")
    api_tcp: str | None = opt(None, p_opt_str, 'also serve the API on TCP "HOST:PORT"; needs api_token_file',
                              example='"127.0.0.1:9180"')
    api_token_file: str | None = opt(None, p_opt_str, "file holding the bearer token for the TCP API "
                                     "(or set $HERDER_API_TOKEN)")
    journal_max_age: float = opt(7 * 86400.0, p_duration, "drop journal events older than this", example='"7d"')
    journal_max_rows: int = opt(100_000, p_int(100), "keep at most this many journal events")
    console: str = opt("auto", p_enum(*CONSOLE_MODES),
                       "services' lines also on herder's own stdout and stderr, one line per line: text = "
                       "`instance | line`, json = one object per line; auto = text when herder is a container's init "
                       "(PID 1; docs/container.md), else off (the terminal view of `herder up` is --console)")
    log_files: str = opt("auto", p_auto_switch, "per-service log files (logs.stdout/stderr = \"auto\"); auto = off "
                         "when herder is a container's init (the engine collects stdout), else on")


SERVICE_DEFAULTS_DOC = "merged under every [services.*] table (same keys as a service)"
