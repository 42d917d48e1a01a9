"""Latency benchmarks: distributions measured on a running node, reported as percentiles against targets.

Unlike the ratio benchmarks of ``harness.py`` (a floor and a measured run over the same bytes), a
latency benchmark runs the system once for a while and collects one sample per event. A module
registers :class:`LatencyBenchmark` objects with :func:`register_latency`; ``run(out_dir)`` returns a
:class:`LatencyResult` (samples in nanoseconds) and may write pictures into ``out_dir``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted samples."""
    if not sorted_ns:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(sorted_ns)))
    return float(sorted_ns[rank - 1])


@dataclass
class LatencyResult:
    samples_ns: list[int]
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LatencyBenchmark:
    name: str
    description: str
    targets_us: dict[str, float]
    """Percentile name (``p50``, ``p99``) -> the most it may be, in microseconds."""
    run: Callable[[Path], LatencyResult]
    min_samples: int = 100


LATENCY_REGISTRY: dict[str, LatencyBenchmark] = {}

_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def register_latency(bench: LatencyBenchmark) -> LatencyBenchmark:
    if bench.name in LATENCY_REGISTRY:
        raise ValueError(f"latency benchmark {bench.name!r} registered twice")
    LATENCY_REGISTRY[bench.name] = bench
    return bench


def run_latency(bench: LatencyBenchmark, out_dir: Path) -> dict[str, Any]:
    """Run ``bench`` and summarize: percentiles in microseconds, each target checked."""
    result = bench.run(out_dir)
    samples = sorted(result.samples_ns)
    problems = list(result.problems)
    if len(samples) < bench.min_samples:
        problems.append(f"only {len(samples)} samples (at least {bench.min_samples} needed)")
    stats_us = {name: percentile(samples, q) / 1000 for name, q in _PERCENTILES.items()} if samples else {}
    if samples:
        stats_us["min"] = samples[0] / 1000
        stats_us["max"] = samples[-1] / 1000
        stats_us["mean"] = sum(samples) / len(samples) / 1000
    checks = {
        name: {"target_us": target, "measured_us": stats_us.get(name), "passed": stats_us.get(name, math.inf) <= target}
        for name, target in bench.targets_us.items()
    }
    return {
        "name": bench.name,
        "description": bench.description,
        "n_samples": len(samples),
        "percentiles_us": stats_us,
        "targets": checks,
        "passed": not problems and all(c["passed"] for c in checks.values()),
        "details": {**result.details, "problems": problems},
    }


def latency_table(rows: list[dict[str, Any]]) -> str:
    headers = ["latency benchmark", "samples", "p50 us", "p99 us", "max us", "targets", "result"]
    body = []
    for r in rows:
        p = r["percentiles_us"]
        targets = ", ".join(f"{k} <= {v['target_us']:g}" for k, v in r["targets"].items())
        body.append(
            [
                r["name"],
                str(r["n_samples"]),
                f"{p['p50']:.1f}" if "p50" in p else "-",
                f"{p['p99']:.1f}" if "p99" in p else "-",
                f"{p['max']:.1f}" if "max" in p else "-",
                targets,
                "PASS" if r["passed"] else "FAIL",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)
