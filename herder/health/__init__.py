"""Health: readiness checks, liveness probes, the watchdog, sd_notify for children, limits.

The adapters the supervisor's runtime owns (see docs/health.md for the semantics):
`notify.NotifyServer` ($NOTIFY_SOCKET), `monitor.Checks` (one check or RSS sample when
the core asks), `limits.Limits` (cgroup limits at spawn, the oom reason at exit).
Every decision about what a result means is the core's (herder.core.step).
"""
