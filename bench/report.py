"""Writes bench/RESULTS.md from the figure rows the benchmarks appended (tab-separated:
section, figure, value, unit, target, floor name, floor value): machine, date, commit, load, and
one table of every figure beside its floor, with the ratio.

    python3 bench/report.py <figures.tsv> <RESULTS.md> <load before> <load after> [seconds the run took]

The cost figures (section "Cost per operation", bench/cost.rs; each named "<operation> · <column>")
are pivoted into their own section, one row per operation. `--update` rewrites only that section
of an existing RESULTS.md, leaving the rest as it is (`bench/run cost`):

    python3 bench/report.py --update <figures.tsv> <RESULTS.md>
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


COST = "Cost per operation"
SEPARATOR = " · "
# Operations whose figures are listed, not tabled: the prices used, the wallet item's size.
NOTES = {"price": "Prices and settings used", "wallet item": "The wallet item every payment from it rewrites"}


def read_rows(tsv):
    rows = []
    with open(tsv, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 7:
                rows.append(parts)
    return rows


def commit_text():
    commit = sh("git", "rev-parse", "--short", "HEAD")
    if sh("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return commit


def money(v):
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.3f}"


def pivot(rows, columns_wanted):
    """Operations (in order) and their values by column, for the columns `columns_wanted` keeps."""
    ops, columns, values = [], [], {}
    for _, name, value, *_ in rows:
        op, _, column = name.partition(SEPARATOR)
        if op in NOTES or not columns_wanted(column):
            continue
        if op not in ops:
            ops.append(op)
        if column not in columns:
            columns.append(column)
        values[(op, column)] = value
    return ops, columns, values


def table(rows, columns_wanted, show):
    ops, columns, values = pivot(rows, columns_wanted)
    lines = ["| Operation | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for op in ops:
        cells = [show(c, values[(op, c)]) if (op, c) in values else "" for c in columns]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return lines


def cost_section(rows):
    """The cost section's lines, from its figure rows."""
    if not rows:
        return []
    units = lambda c: c.startswith("RCU") or c.startswith("WCU")
    lines = [
        f"## {COST}",
        "",
        f"Written by `bench/run` (`bench/run cost` rewrites this section alone) on "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit {commit_text()}:",
        "bench/cost.rs on DynamoDB Local, each operation run 5 times, figures per operation (average).",
        "Capacity units: writes as DynamoDB Local reports them (`ReturnConsumedCapacity: INDEXES`), reads",
        "computed from the items returned by AWS's rules (DynamoDB Local reports an empty Query or a missing",
        "key as free; its own read figure is in the last column). An operation includes what follows its",
        "commit in the same invocation (the outbox marks after publishing). How each figure is made, the",
        "prices' sources and what 1M payments cost: docs/cost.md.",
        "",
        "Capacity units per operation (on-demand request units are the same units):",
        "",
    ]
    lines += table(rows, units, lambda _, v: number(v))
    lines += ["", "Requests and on-demand price per 1M operations (USD):", ""]
    lines += table(rows, lambda c: not units(c), lambda c, v: money(v) if c.startswith("$") else number(v))
    for note, title in NOTES.items():
        listed = [(n.partition(SEPARATOR)[2], v, u) for _, n, v, u, *_ in rows if n.startswith(note + SEPARATOR)]
        if listed:
            lines += ["", f"{title}:", ""]
            lines += [f"- {name}: {float(value):g} {unit}" for name, value, unit in listed]
    return lines


def update(tsv, out):
    """Replaces (or appends) the cost section of `out` with the one `tsv` makes."""
    section = cost_section([r for r in read_rows(tsv) if r[0] == COST])
    if not section:
        print("no cost figures: nothing to update")
        return
    with open(out, encoding="utf-8") as f:
        text = f.read()
    heading = f"## {COST}\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    else:
        end = text.find("\n## ", start + len(heading))
        rest = "" if end < 0 else text[end:]
        text = text[:start] + "\n".join(section) + "\n" + rest
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"updated the cost section of {out}")


def main():
    if sys.argv[1] == "--update":
        update(sys.argv[2], sys.argv[3])
        return
    tsv, out, load_before, load_after = sys.argv[1:5]
    took = f"; the whole run took {int(sys.argv[5]) / 60:.0f} min (builds included)" if len(sys.argv) > 5 else ""
    rows = read_rows(tsv)
    cost = [r for r in rows if r[0] == COST]
    rows = [r for r in rows if r[0] != COST]
    commit = commit_text()
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
    if cost:
        lines += [""] + cost_section(cost)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(rows) + len(cost)} figures)")


if __name__ == "__main__":
    main()
