"""Writes bench/RESULTS.md from the figure rows the benchmarks appended (tab-separated:
section, figure, value, unit, target, floor name, floor value): machine, date, commit, load, and
one table of every figure beside its floor, with the ratio.

    python3 bench/report.py <figures.tsv> <RESULTS.md> <load before> <load after> [seconds the run took]
"""

import datetime
import os
import platform
import subprocess
import sys


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory():
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        return f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "?"


def number(v):
    v = float(v)
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.2f}"


def main():
    tsv, out, load_before, load_after = sys.argv[1:5]
    took = f"; the whole run took {int(sys.argv[5]) / 60:.0f} min (builds included)" if len(sys.argv) > 5 else ""
    rows = []
    with open(tsv, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 7:
                rows.append(parts)
    commit = sh("git", "rev-parse", "--short", "HEAD")
    if sh("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run`; figures, not pass/fail. Each figure sits beside its floor (what it",
        "cannot beat, measured in the same run on the same machine), so a ratio reads at a glance.",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Commit: {commit}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {memory()}, {platform.system()} {platform.release()}",
        f"- Load average (1/5/15 min) before: {load_before}; after: {load_after} (the machine is shared){took}",
        "- Local figures: the `countersign serve` binary (profile `local-release`) and its load, `wrk` (16 connections,",
        "  2 threads), share this machine's cores; so do DynamoDB Local and the code it serves.",
        "- Value / floor: the figure divided by its floor (for a rate, the share of the floor reached;",
        "  for a latency, how many times the floor's). Targets are issue 12's.",
        "",
        "| Section | Figure | Value | Unit | Target | Floor | Floor value | Value / floor |",
        "|---|---|---:|---|---|---|---:|---:|",
    ]
    for section, name, value, unit, target, floor, floor_value in rows:
        ratio = ""
        if floor_value not in ("", None):
            fv = float(floor_value)
            if fv:
                ratio = f"{float(value) / fv:.2f}"
        fv_text = number(floor_value) if floor_value not in ("", None) else ""
        lines.append(
            f"| {section} | {name} | {number(value)} | {unit} | {target} | {floor} | {fv_text} | {ratio} |"
        )
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(rows)} figures)")


if __name__ == "__main__":
    main()
