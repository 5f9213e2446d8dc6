"""What each added service costs: the supervisor's memory at N = 50, 200 and 1000, and
start-all and idle CPU at the largest N.

A supervisor's memory at one N mixes a fixed cost (an interpreter, a runtime, libraries)
with a cost per service; users who run many services care about the second. Memory is
taken at each N once every service has started and the tool has had a second to settle:
RSS and PSS summed over the tool's own processes (PSS splits shared pages among the
processes that map them, so a tool made of one small C supervisor per service, s6 and
runit, is not charged its shared libc 1000 times). The cost per added service is the
slope between the smallest and the largest N, in KB.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from procs import Tracker, cpu_seconds, memory, stamps, wait_stamps
from tools import Tool, stamp_services

START_CAP_S = 180.0   # 1000 services: supervisord and PM2 take tens of seconds


def scaling(res: Any, tool: Tool, work: Path, plan: Any, tracker: Tracker) -> None:
    """One tool at every N of plan.scale_ns, one session each (res: compare.Results)."""
    ns = sorted(plan.scale_ns)
    by_n: dict[int, dict[str, float]] = {}
    for n in ns:
        d = work / f"n{n}"
        out = d / "stamps"
        t0 = time.monotonic_ns()
        s = tool.launch(d, stamp_services(n, out), plan.stop_timeout, tracker, [out])
        try:
            got = wait_stamps(out, n, START_CAP_S)
            if got is None:
                res.error("scale_pss_kb", tool.name, f"N={n}: {len(stamps(out))} started within {START_CAP_S:g} s")
                continue
            if n == ns[-1]:
                res.add("start_max_ms", tool.name, (max(t for _, t in got[:n]) - t0) / 1e6)
                res.slot("start_max_ms", tool.name)["n_services"] = n
            time.sleep(plan.settle_seconds)   # start-up work done; what follows is the settled figure
            procs = s.own_processes()
            if n == ns[-1]:
                c0 = cpu_seconds(procs)
                time.sleep(plan.scale_idle_seconds)
                c1 = cpu_seconds(procs)
                res.add("idle_max_cpu_s", tool.name, sum(c1[k] - c0[k] for k in c1 if k in c0))
                res.slot("idle_max_cpu_s", tool.name).update(seconds=plan.scale_idle_seconds, n_services=n)
            mem = memory(procs)
            by_n[n] = {"rss_mb": round(mem["rss"] / 2**20, 2), "pss_mb": round(mem["pss"] / 2**20, 2),
                       "processes": len(procs)}
        finally:
            s.close(timeout=60)
    for key in ("pss", "rss"):
        slot = res.slot(f"scale_{key}_kb", tool.name)
        slot["by_n"] = {str(n): v[f"{key}_mb"] for n, v in by_n.items()}
        if ns[0] in by_n and ns[-1] in by_n:
            lo, hi = by_n[ns[0]][f"{key}_mb"], by_n[ns[-1]][f"{key}_mb"]
            res.add(f"scale_{key}_kb", tool.name, (hi - lo) * 1024 / (ns[-1] - ns[0]))
