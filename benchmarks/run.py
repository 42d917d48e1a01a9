"""Run tradeloop's benchmarks: each one is timed against a floor over the same data, in the same run.

    python benchmarks/run.py [--output results.json] [--only NAME] [--repeat 7] [--pure-python] [--list]

Every benchmark reports ``{name, floor_name, floor_seconds, seconds, ratio, target_ratio, passed,
n_messages, details}`` (best-of-N wall time, ``ratio = seconds / floor_seconds``), printed as a
table and written as JSON with the Python version and whether the C accelerator was in use.
Latency benchmarks (``latency.py``: a running node, one sample per event) report percentiles in
microseconds against their targets under ``"latency"``; their pictures go next to the JSON file.
Benchmarks live in ``benchmarks/bench_*.py`` and register themselves (see ``harness.py``).

Exit status: 0 when every benchmark that ran met its target, 1 otherwise, 2 on usage errors.
A benchmark whose sample data is missing is skipped (an error under ``CI=true``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FORCE_PURE_ENV = "TRADELOOP_PURE_PYTHON"  # same name as tradeloop.core.fastparse.FORCE_PURE_ENV


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, help="write the results as JSON to this file")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME (repeatable)")
    p.add_argument("--repeat", type=int, default=7, help="repetitions; the minimum time counts (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    p.add_argument(
        "--pure-python",
        action="store_true",
        help=f"force the pure-Python decimal parser (sets {FORCE_PURE_ENV}=1 before importing tradeloop)",
    )
    p.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    return args


def _discover() -> None:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for path in sorted(HERE.glob("bench_*.py")):
        importlib.import_module(path.stem)


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ["benchmark", "floor", "msgs", "floor us/msg", "us/msg", "ratio", "target", "result"]
    body = [
        [
            r["name"],
            r["floor_name"],
            str(r["n_messages"]),
            f"{r['details']['floor_us_per_message']:.3f}",
            f"{r['details']['us_per_message']:.3f}",
            f"{r['ratio']:.2f}x",
            f"{r['target_ratio']:.2f}x",
            "PASS" if r["passed"] else "FAIL",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.pure_python:
        os.environ[FORCE_PURE_ENV] = "1"
    # Imported only now so that --pure-python takes effect before tradeloop loads its parser.
    from harness import REGISTRY, run_benchmark
    from latency import LATENCY_REGISTRY, latency_table, run_latency
    from samples import SampleMissing

    from tradeloop.core import fastparse

    _discover()
    if args.list:
        for name, bench in REGISTRY.items():
            print(f"{name}: {bench.description} (floor {bench.floor_name}, target {bench.target_ratio}x)")
        for name, lat in LATENCY_REGISTRY.items():
            print(f"{name}: {lat.description} (targets {lat.targets_us} us)")
        return 0
    wanted = [n for item in args.only for n in item.split(",") if n]
    unknown = [n for n in wanted if n not in REGISTRY and n not in LATENCY_REGISTRY]
    if unknown:
        known = ", ".join([*REGISTRY, *LATENCY_REGISTRY])
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {known}", file=sys.stderr)
        return 2
    selected = [REGISTRY[n] for n in (wanted or list(REGISTRY)) if n in REGISTRY]
    selected_latency = [LATENCY_REGISTRY[n] for n in (wanted or list(LATENCY_REGISTRY)) if n in LATENCY_REGISTRY]
    out_dir = args.output.parent if args.output is not None else HERE

    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "accelerated": fastparse.ACCELERATED,
    }
    print(
        f"tradeloop benchmarks: Python {env['python']} ({env['implementation']}), "
        f"C accelerator {'ON' if env['accelerated'] else 'OFF'}, best of {args.repeat}"
    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    failed_setup = False
    for bench in selected:
        print(f"  running {bench.name} ...", file=sys.stderr, flush=True)
        try:
            result = run_benchmark(bench, repeat=args.repeat, warmup=args.warmup)
        except SampleMissing as exc:
            skipped.append({"name": bench.name, "reason": str(exc)})
            failed_setup = failed_setup or os.environ.get("CI") == "true"
            continue
        row = result.as_dict()
        row["details"].setdefault("accelerated", env["accelerated"])
        row["details"].setdefault("python", env["python"])
        rows.append(row)

    latency_rows: list[dict[str, Any]] = []
    for lat in selected_latency:
        print(f"  running {lat.name} ...", file=sys.stderr, flush=True)
        try:
            latency_rows.append(run_latency(lat, out_dir))
        except SampleMissing as exc:
            skipped.append({"name": lat.name, "reason": str(exc)})
            failed_setup = failed_setup or os.environ.get("CI") == "true"

    journal_rows = [r for r in rows if r["name"].startswith("journal_")]
    if journal_rows:
        # The journal benchmarks also report rates and the SQLite records/s target (bench_journal.py).
        from bench_journal import finish_rows, journal_table

        finish_rows(journal_rows)
    if rows:
        print(_table(rows))
    if journal_rows:
        print(journal_table(journal_rows))
    if latency_rows:
        print(latency_table(latency_rows))
    for r in latency_rows:
        for problem in r["details"].get("problems", []):
            print(f"PROBLEM {r['name']}: {problem}")
    for s in skipped:
        print(f"SKIPPED {s['name']}: {s['reason']}")
    for r in rows:
        for problem in r["details"].get("problems", []):
            print(f"PROBLEM {r['name']}: {problem}")

    if args.output is not None:
        report = {
            **env,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "repeat": args.repeat,
            "benchmarks": rows,
            "latency": latency_rows,
            "skipped": skipped,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output}")
    passed = all(r["passed"] for r in rows) and all(r["passed"] for r in latency_rows)
    return 0 if passed and not failed_setup else 1


if __name__ == "__main__":
    sys.exit(main())
