"""Turn bench/out/results.json into the tables of docs/performance.md and a PNG of the ratios.

    bench/.build/venv/bin/python bench/report.py [results.json] [--doc docs/performance.md] [--png FILE]

Only the text between the `<!-- bench:begin -->` and `<!-- bench:end -->` markers is
replaced, so the hand-written analysis around it survives a re-run. "herder ahead ×" is
how many times better herder is than the peer: peer ÷ herder where lower is better,
herder ÷ peer for throughput; above 1 means herder is ahead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
FLOOR = "floor"   # bench/floor.py: a row of its own where measured, no ratio, not in the chart


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    unit: str
    lower_better: bool
    target: float | None
    target_text: str
    floor: float = 0.0   # resolution: a herder figure below it is taken as this for ratios
    job: str = ""        # the tool's command for this job is named in the table (tool.commands[job])
    note: str = ""       # a line under the table


def measures(info: dict[str, Any]) -> list[Measure]:
    """The rows, in order, with issue 20's targets for herder."""
    p = info["plan"]
    n, mb = p["n"], p["log_bytes"] / 1e6
    ns = p.get("scale_ns") or [n]
    big = max(ns)
    stop_t = p["stop_timeout"] * 1000
    return [
        Measure("restart_ms", "restart: SIGKILL → next start", "ms", True, 2.0, "≤ 2 ms"),
        Measure("start_ms", f"start-all: launch → {n} started", "ms", True, 300.0, "≤ 300 ms (for 200)"),
        Measure("idle_cpu_s", f"idle CPU, {n} running, over {p['idle_seconds']:g} s", "s", True,
                0.1 * p["idle_seconds"] / 30, "≈ 0", floor=0.01),
        Measure("idle_rss_mb", f"idle RSS of the supervisor's own processes, {n} running", "MB", True, 18.0,
                "≤ 18 MB"),
        Measure("idle_pss_mb", f"idle PSS of the same ({n} running; shared pages split)", "MB", True, None, ""),
        Measure("status_ms", f"status of {n} services (CLI wall time)", "ms", True, 40.0, "≤ 40 ms", job="status"),
        Measure("logs_mbps", f"logs: {mb:g} MB of 100-byte lines → file", "MB/s", False, 1500.0,
                "≥ 1.5 GB/s, 0 lost"),
        Measure("stop_ms", f"stop-all: {n} ignore SIGTERM, stop timeout {p['stop_timeout']:g} s", "ms", True,
                stop_t + 50, f"≤ {stop_t + 50:g} ms", job="stop"),
        Measure("stop_exit_ms", f"stop-all by the exit command: {n} ignore SIGTERM", "ms", True, None, "",
                job="exit"),
        Measure("orphans", "orphans left after stop (of 2)", "", True, 0.0, "0", job="exit"),
        Measure("scale_rss_kb", f"memory per added service, RSS, N {min(ns)} → {big}", "KB", True, None, ""),
        Measure("scale_pss_kb", f"memory per added service, PSS, N {min(ns)} → {big}", "KB", True, None, ""),
        Measure("start_max_ms", f"start-all: launch → {big} started", "ms", True, None, ""),
        Measure("idle_max_cpu_s", f"idle CPU, {big} running, over {p.get('scale_idle_seconds', 0):g} s", "s", True,
                None, "≈ 0", floor=0.01),
        Measure("recover_ms", f"kill -9 of herder ({n} services) → supervising again", "ms", True, None, ""),
        Measure("recover_dp_ms", f"kill -9 of herder's decision process ({n} services) → a new one answering",
                "ms", True, None, "(keeper: the services' parent stays)"),
    ]


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def value(slot: dict[str, Any] | None) -> tuple[float | None, bool]:
    """(the figure to compare, whether it is a lower bound because the wait was capped)."""
    if not slot:
        return None, False
    if slot.get("capped"):
        return float(slot["capped"][0]["cap_s"]) * 1000, True
    return slot.get("median"), False


def ratio(m: Measure, herder: float | None, peer: float | None) -> float | None:
    if herder is None or peer is None:
        return None
    if herder < m.floor and peer < m.floor:
        return None          # both below what can be measured: no ratio
    h = max(herder, m.floor)
    if m.lower_better:
        return peer / h if h > 0 else None
    return h / peer if peer > 0 else None


def cell(m: Measure, slot: dict[str, Any] | None) -> tuple[str, str, str]:
    """(median, min–max, n) as table cells."""
    if not slot:
        return "—", "", ""
    if slot.get("pending"):
        return "pending", slot["pending"], ""
    if slot.get("capped"):
        c = slot["capped"]
        return f"> {c[0]['cap_s'] * 1000:,.0f} (cap)", f"{c[0]['still_running']} still running at the cap", str(len(c))
    if "median" not in slot:
        return "failed", "; ".join(slot.get("errors", []))[:120], "0"
    if m.key == "orphans":
        return f"{slot['median']:g}", "", str(slot["n"])
    return fmt(slot["median"]), f"{fmt(slot['min'])}–{fmt(slot['max'])}", str(slot["n"])


def floor_note(m: Measure, herder: float | None, floor: float | None) -> str:
    """The floor's row says how far herder is above it."""
    if herder is None or floor is None:
        return "the floor (bench/floor.py)"
    d = herder - floor
    return f"the floor (bench/floor.py): herder {'+' if d >= 0 else '−'}{fmt(abs(d))} {m.unit}".rstrip()


def verdict(m: Measure, slot: dict[str, Any] | None, lost: bool) -> str:
    v, capped = value(slot)
    if v is None or m.target is None:
        return ""
    ok = (v <= m.target) if m.lower_better else (v >= m.target and not lost)
    return "met" if ok and not capped else "**missed**"


def markdown(doc: dict[str, Any], png_name: str | None) -> str:
    info, res = doc["info"], doc["results"]
    tools = list(info["versions"])
    mach = info["machine"]
    out = [f"Machine: {mach['cores']} cores ({mach['cpu']}), {mach['memory_gb']} GB, kernel {mach['kernel']}, "
           f"Python {mach['python']}. Load average at start {' / '.join(f'{x:.2f}' for x in mach['loadavg_start'])}, "
           f"at end {' / '.join(f'{x:.2f}' for x in mach.get('loadavg_end', []))}. "
           f"{'Quick mode. ' if info['quick'] else ''}Run took {info.get('seconds', '?')} s.", "",
           "Versions: " + "; ".join(info["versions"].values()) + ".", ""]
    if info.get("skipped"):
        out += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in info["skipped"].items()) + ".", ""]
    out += ["| measure | tool | median | min–max | n | herder ahead × | target | command |",
            "|---|---|---|---|---|---|---|---|"]
    commands = info.get("commands", {})
    for m in measures(info):
        per = res.get(m.key, {})
        hv, _ = value(per.get("herder"))
        for t in tools:
            slot = per.get(t)
            if slot is None and (m.key in ("stop_exit_ms", "recover_ms", "recover_dp_ms") or t == FLOOR):
                continue   # measured only where it applies (supervisord's shutdown; herder; the floor's rows)
            med, rng, n = cell(m, slot)
            unit = f" {m.unit}" if m.unit and med not in ("—", "pending", "failed") else ""
            lost = any(not c.get("sha256_ok", True) or c["bytes_in_file"] != c["bytes_expected"]
                       for c in (slot or {}).get("checks", []))
            if t == "herder":
                r, tgt = ("" if med == "pending" else "1"), f"{m.target_text}: {verdict(m, slot, lost) or 'pending'}"
            elif t == FLOOR:
                r, tgt = "", floor_note(m, hv, value(slot)[0])
            else:
                pv, capped = value(slot)
                x = ratio(m, hv, pv) if m.key != "orphans" else None
                r = "" if x is None else (f"≥ {x:.1f}" if capped or (hv is not None and hv < m.floor) else f"{x:.2f}")
                tgt = ""
            if m.key == "logs_mbps" and slot and slot.get("checks"):
                bad = [c for c in slot["checks"] if not c["sha256_ok"]]
                rng += "; bytes exact" if not bad else f"; {len(bad)} run(s) lost or changed bytes"
            if m.key == "idle_rss_mb" and slot and "uss_mb" in slot:
                rng += f"; USS {slot['uss_mb']:g} MB"
            if m.key == "idle_rss_mb" and slot and len(slot.get("per_process", [])) > 1:
                rng += "; " + ", ".join(f"{x['role']} RSS {x['rss_mb']:g} / PSS {x['pss_mb']:g} / USS {x['uss_mb']:g}"
                                        for x in slot["per_process"])
            if m.key == "orphans" and slot and slot.get("survivors"):
                rng = "survivors: " + (", ".join(slot["survivors"][0]) or "none")
            if m.key.startswith("scale_") and slot and slot.get("by_n"):
                rng += "; MB at N " + ", ".join(f"{k}: {v:g}" for k, v in slot["by_n"].items())
            if m.key == "recover_ms" and slot and slot.get("services"):
                sv = slot["services"][-1]
                rng += f"; the killed herder's services: {sv['old_still_alive']} still running, {sv['new_starts']} new"
            if t == "herder" and m.target is None:
                tgt = m.target_text
            if m.key == "recover_ms" and slot and slot.get("mode"):
                tgt = slot["mode"]
            how = (commands.get(t) or {}).get(m.job, "") if m.job else ""
            if m.job == "exit" and not how:
                how = (commands.get(t) or {}).get("stop", "")
            out.append(f"| {m.title} | {t} | {med}{unit} | {rng} | {n} | {r} | {tgt} | {how} |")
    out += ["", "Settings (no restart delay wherever the tool allows it; stop timeout "
            f"{info['plan']['stop_timeout']:g} s for all):", ""]
    for t, s in info["settings"].items():
        out.append(f"- **{t}**: " + ", ".join(f"`{k}` = {v}" for k, v in s.items()))
    out += ["", f"herder logs: {info.get('herder_logs_mode', '?')}. herder status: {info.get('herder_status', '?')}.", ""]
    errs = [(mk, t, e) for mk, per in res.items() for t, slot in per.items() for e in slot.get("errors", [])]
    if errs:
        out += ["Errors during the run:", ""] + [f"- {mk} / {t}: {e}" for mk, t, e in errs] + [""]
    if png_name:
        out += [f"![herder ahead ×, per measure and peer]({png_name})", ""]
    return "\n".join(out)


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info, res = doc["info"], doc["results"]
    peers = [t for t in info["versions"] if t not in ("herder", FLOOR)]
    ms = [m for m in measures(info) if m.key not in ("orphans", "stop_exit_ms", "recover_ms", "recover_dp_ms")]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    height = 0.8 / max(1, len(peers))
    top = 1.0
    for i, peer in enumerate(peers):
        ys, xs, capped = [], [], []
        for j, m in enumerate(ms):
            per = res.get(m.key, {})
            hv, _ = value(per.get("herder"))
            pv, cap = value(per.get(peer))
            x = ratio(m, hv, pv)
            if x is None:
                continue
            ys.append(j + (i - (len(peers) - 1) / 2) * height)
            xs.append(x)
            capped.append(cap or (hv is not None and hv < m.floor))
        bars = ax.barh(ys, xs, height=height, label=peer)
        top = max([top, *xs])
        for b, x, c in zip(bars, xs, capped):
            ax.text(b.get_width() * 1.05, b.get_y() + b.get_height() / 2, ("≥ " if c else "") + fmt(x) + "×",
                    va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(right=top * 4)   # room for the labels
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(ms)), [m.title for m in ms], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("herder ahead × (peer ÷ herder; logs: herder ÷ peer), log scale; > 1: herder better", fontsize=8)
    for j, m in enumerate(ms):
        if (res.get(m.key, {}).get("herder") or {}).get("pending"):
            ax.text(1.05, j, "herder: pending", va="center", fontsize=7, style="italic")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"herder vs peers, {info['plan']['n']} services{' (quick)' if info['quick'] else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_doc(doc_path: Path, section: str) -> None:
    text = doc_path.read_text() if doc_path.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc_path.write_text(f"{head}{BEGIN}\n{section}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", type=Path, default=HERE / "out" / "results.json")
    ap.add_argument("--doc", type=Path, help="rewrite this markdown file's bench section (else print it)")
    ap.add_argument("--png", type=Path, help="write the ratio chart here")
    args = ap.parse_args(argv)
    doc = json.loads(args.results.read_text())
    png_name = None
    if args.png:
        chart(doc, args.png)
        png_name = args.png.name
    section = markdown(doc, png_name)
    if args.doc:
        update_doc(args.doc, section)
        print(f"bench: wrote {args.doc}" + (f" and {args.png}" if args.png else ""), file=sys.stderr)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
