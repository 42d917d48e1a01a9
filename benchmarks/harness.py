"""Benchmark registry and timing: each benchmark is measured against a floor on the same data.

A benchmark module (``benchmarks/bench_*.py``) registers :class:`Benchmark` objects with
:func:`register`. Its ``setup`` loads the data once and returns a :class:`Case`: two *prepare*
functions that return a ready-to-time callable (fresh state each repetition, built outside the
timed region), the number of messages and free-form details. The harness times floor and measured
runs interleaved, best of N (min), and reports ``ratio = measured / floor`` against the target.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Timed = Callable[[], object]


@dataclass
class Case:
    """What a benchmark's setup returns."""

    prepare_floor: Callable[[], Timed]
    """Returns the floor run, e.g. ``orjson.loads`` of every payload."""
    prepare_measured: Callable[[], Timed]
    """Returns the measured run (fresh state). Its return value is handed to ``verify``."""
    n_messages: int
    details: dict[str, Any] = field(default_factory=dict)
    verify: Callable[[object], list[str]] = lambda _result: []
    """Problems found in a measured run's result (empty: correct). Any problem fails the benchmark."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    floor_name: str
    target_ratio: float
    setup: Callable[[], Case]
    description: str = ""


@dataclass
class Result:
    name: str
    floor_name: str
    floor_seconds: float
    seconds: float
    ratio: float
    target_ratio: float
    passed: bool
    n_messages: int
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "floor_name": self.floor_name,
            "floor_seconds": self.floor_seconds,
            "seconds": self.seconds,
            "ratio": self.ratio,
            "target_ratio": self.target_ratio,
            "passed": self.passed,
            "n_messages": self.n_messages,
            "details": self.details,
        }


REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    if bench.name in REGISTRY:
        raise ValueError(f"benchmark {bench.name!r} registered twice")
    REGISTRY[bench.name] = bench
    return bench


def _time_once(prepare: Callable[[], Timed]) -> tuple[float, object]:
    run = prepare()
    gc.collect()
    start = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - start
    return elapsed, result


def run_benchmark(bench: Benchmark, repeat: int, warmup: int = 1) -> Result:
    """Time ``bench`` best-of-``repeat`` (floor and measured interleaved) and check its target."""
    case = bench.setup()
    for _ in range(warmup):
        _time_once(case.prepare_floor)
        _time_once(case.prepare_measured)
    floor_times: list[float] = []
    times: list[float] = []
    problems: list[str] = []
    for _ in range(repeat):
        elapsed, _ = _time_once(case.prepare_floor)
        floor_times.append(elapsed)
        elapsed, result = _time_once(case.prepare_measured)
        times.append(elapsed)
        problems.extend(p for p in case.verify(result) if p not in problems)
    floor_s, measured_s = min(floor_times), min(times)
    # Floor and measured run back to back, so a pair shares the machine's state; the median of the
    # pair ratios is a cross-check of the headline ratio that is robust to bursts of noise.
    pair_ratios = [t / f for t, f in zip(times, floor_times, strict=True)]
    ratio = measured_s / floor_s
    n = max(case.n_messages, 1)
    details = dict(case.details)
    details.update(
        {
            "repeat": repeat,
            "floor_us_per_message": floor_s / n * 1e6,
            "us_per_message": measured_s / n * 1e6,
            "floor_median_seconds": statistics.median(floor_times),
            "median_seconds": statistics.median(times),
            "median_pair_ratio": statistics.median(pair_ratios),
            "problems": problems,
        }
    )
    return Result(
        name=bench.name,
        floor_name=bench.floor_name,
        floor_seconds=floor_s,
        seconds=measured_s,
        ratio=ratio,
        target_ratio=bench.target_ratio,
        passed=ratio <= bench.target_ratio and not problems,
        n_messages=case.n_messages,
        details=details,
    )
