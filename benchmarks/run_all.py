"""Run every benchmark in this folder and print one summary table (``make bench``).

Each ``benchmarks/*_bench.py`` measures a part of CaseForum and, in the same run, a
bare anchor doing the same job with the bare framework (so the ratio says how close
CaseForum is to the ceiling on *this* machine at *this* load, which absolute numbers
on a shared machine cannot).  The scripts run one after the other, never in
parallel (they would measure each other), each in its own process with its own
throw-away data; their full output is passed through.

A benchmark reports its rows to this script by printing lines of the form::

    SUMMARY {"row": "thread page, 1 client", "caseforum": 7.4, "bare": 16.1,
             "ratio": 0.46, "goal": ">= 0.40", "unit": "req/s"}

(one JSON object on one line; ``ratio`` may be left out, and is then computed as
CaseForum / bare, or bare / CaseForum when ``"higher_is_better": false``).  A script
that prints no such line still gets a row, saying so, and a script that fails makes
the exit status 1.

    .venv/bin/python benchmarks/run_all.py             # everything, full size
    .venv/bin/python benchmarks/run_all.py --quick     # smaller runs, passed through
    .venv/bin/python benchmarks/run_all.py forum       # only scripts whose name has "forum"
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "SUMMARY "
GOAL_RE = re.compile(r"\s*(>=|<)\s*([0-9]+(?:\.[0-9]+)?)")


@dataclass
class Row:
    script: str
    row: str
    caseforum: float | None = None
    bare: float | None = None
    ratio: float | None = None
    goal: str = ""
    unit: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        def num(x: float | None) -> str:
            return "–" if x is None else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"

        unit = f" {self.unit}" if self.unit else ""
        return [self.row, num(self.caseforum) + (unit if self.caseforum is not None else ""),
                num(self.bare) + (unit if self.bare is not None else ""),
                num(self.ratio), self.goal or "–", self.note]


def discover(names: list[str]) -> list[Path]:
    """``*_bench.py`` next to this script, optionally those whose name contains one of
    ``names``, in name order."""
    found = sorted(HERE.glob("*_bench.py"))
    if names:
        found = [p for p in found if any(n in p.stem for n in names)]
    return found


def parse(script: str, line: str) -> Row | None:
    """A ``SUMMARY`` line as a row; ``None`` for any other line or a malformed one."""
    if not line.startswith(PREFIX):
        return None
    try:
        data = json.loads(line[len(PREFIX):])
        row = Row(script=script, row=str(data["row"]))
    except (ValueError, KeyError, TypeError):
        return None
    for key in ("caseforum", "bare", "ratio"):
        value = data.get(key)
        if isinstance(value, int | float):
            setattr(row, key, float(value))
    row.goal, row.unit = str(data.get("goal") or ""), str(data.get("unit") or "")
    if row.ratio is None and row.caseforum and row.bare:
        higher = data.get("higher_is_better", True)
        row.ratio = row.caseforum / row.bare if higher else row.bare / row.caseforum
    row.note = judge(row)
    return row


def judge(row: Row) -> str:
    """``>= R`` goals judge the ratio; ``< N`` goals (a time limit) judge CaseForum's own
    number."""
    found = GOAL_RE.match(row.goal)
    if not found:
        return ""
    limit = float(found.group(2))
    if found.group(1) == ">=" and row.ratio is not None:
        return "ok" if row.ratio >= limit else "below goal"
    if found.group(1) == "<" and row.caseforum is not None:
        return "ok" if row.caseforum < limit else "over the limit"
    return ""


def run(script: Path, extra: list[str], timeout: float) -> tuple[list[Row], int, float]:
    """Run one benchmark, echo its output, and collect its rows."""
    print(f"\n===== {script.name} {' '.join(extra)}".rstrip(), flush=True)
    started = time.perf_counter()
    rows: list[Row] = []
    proc = subprocess.Popen([sys.executable, str(script), *extra], cwd=HERE.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            row = parse(script.stem, line.strip())
            if row is not None:
                rows.append(row)
            if time.perf_counter() - started > timeout:
                raise subprocess.TimeoutExpired(proc.args, timeout)
        status = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        proc.terminate()  # the benchmarks clean up their servers on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        status = -1
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    return rows, status, time.perf_counter() - started


def table(rows: list[Row]) -> str:
    head = ["row", "CaseForum", "bare", "ratio", "goal", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*",
                        help="run only the benchmarks whose file name contains one of these")
    parser.add_argument("--quick", action="store_true",
                        help="passed to every benchmark: smaller, faster runs")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds one benchmark may take before it is stopped")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    args = parser.parse_args(argv)
    scripts = discover(args.names)
    if args.list or not scripts:
        for script in scripts:
            print(script.name)
        if not scripts:
            print("no benchmark matched", file=sys.stderr)
            return 2
        return 0
    extra = ["--quick"] if args.quick else []
    rows: list[Row] = []
    failed = []
    for script in scripts:
        found, status, took = run(script, extra, args.timeout)
        note = "" if status == 0 else ("timed out" if status == -1 else f"exit status {status}")
        if note:
            failed.append(script.name)
        for row in found:
            row.note = ", ".join(x for x in (row.note, note) if x)
        rows += found or [Row(script=script.stem, row=script.stem,
                              note=note or "printed no SUMMARY line")]
        print(f"===== {script.name}: {took:.0f} s", flush=True)
    print("\n## Summary\n")
    print(table(rows))
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
