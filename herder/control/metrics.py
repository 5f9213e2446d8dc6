"""`GET /metrics`: Prometheus text format through prometheus_client.

A custom collector reads the instances at scrape time (no gauges to keep in step with
state changes); the ProcessCollector adds herder's own CPU, memory and fds. The package
is imported on the first scrape, not at start-up, so a herder nobody scrapes never pays
for it (measured in docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from herder.core.instance import State
from herder.units import parse_signal

if TYPE_CHECKING:
    from herder.control.component import Control


class _Collector:
    def __init__(self, control: Control) -> None:
        self.control = control

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sup = self.control.sup
        now = sup.clock.now()
        state = GaugeMetricFamily("herder_instance_state", "1 for the instance's current state",
                                  labels=["instance", "service", "state"])
        up = GaugeMetricFamily("herder_instance_up", "1 when running (ready)", labels=["instance", "service"])
        restarts = CounterMetricFamily("herder_instance_restarts", "restarts since herder started",
                                       labels=["instance", "service"])
        uptime = GaugeMetricFamily("herder_instance_uptime_seconds", "seconds since the current process started",
                                   labels=["instance", "service"])
        last_exit = GaugeMetricFamily("herder_instance_last_exit_code",
                                      "last exit code (negative: killed by that signal number)",
                                      labels=["instance", "service"])
        cpu = CounterMetricFamily("herder_instance_cpu_seconds", "CPU time of the instance's process tree "
                                  "(its cgroup when it has one)", labels=["instance", "service"])
        rss = GaugeMetricFamily("herder_instance_memory_rss_bytes", "resident memory of the instance's process tree",
                                labels=["instance", "service"])
        procs = GaugeMetricFamily("herder_instance_processes", "processes in the instance's tree",
                                  labels=["instance", "service"])
        sampler = getattr(sup, "usage", None)   # herder.process.usage.attach
        for name, inst in sup.instances.items():
            lab = [name, inst.service]
            if sampler is not None and inst.pid is not None:
                from herder.process import usage

                use = usage.of(sup, sampler, name, inst.pid)
                if use.get("rss") is not None:
                    cpu.add_metric(lab, float(use["cpu_seconds"]))
                    rss.add_metric(lab, float(use["rss"]))
                    procs.add_metric(lab, float(use["procs"]))
            for s in State:
                state.add_metric([*lab, s.value], 1.0 if inst.state is s else 0.0)
            up.add_metric(lab, 1.0 if inst.state is State.RUNNING else 0.0)
            restarts.add_metric(lab, float(inst.restarts))
            uptime.add_metric(lab, now - inst.started_at if inst.started_at is not None else 0.0)
            if inst.last_exit is not None:
                ex = inst.last_exit
                if ex.signal:
                    last_exit.add_metric(lab, -float(parse_signal(ex.signal).value))
                else:
                    last_exit.add_metric(lab, float(ex.code or 0))
        yield from (state, up, restarts, uptime, last_exit, cpu, rss, procs)
        logs = {key: CounterMetricFamily(f"herder_log_{key}_bytes", doc, labels=["instance", "service"])
                for key, doc in (("dropped", "output bytes dropped (logs.on_overflow = drop)"),
                                 ("unwritten", "output bytes that could not be written (disk full, write error)"),
                                 ("written", "output bytes written to the log files"))}
        for name, inst in sup.instances.items():
            stats = sup.logs.stats(name)
            for key, family in logs.items():
                family.add_metric([name, inst.service], float(stats[f"{key}_bytes"]))
        yield from logs.values()
        events = CounterMetricFamily("herder_events", "events published since herder started")
        events.add_metric([], float(self.control.next_id - self.control.first_id))
        yield events
        lost = CounterMetricFamily("herder_journal_write_failures", "events the journal could not write "
                                   "(missing from `herder events`)")
        lost.add_metric([], float(self.control.journal_failures()))
        yield lost


def render(control: Control) -> bytes:
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    reg = control.metrics_registry
    if reg is None:
        reg = control.metrics_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(namespace="herder", registry=reg)
        reg.register(_Collector(control))
    return bytes(generate_latest(reg))
