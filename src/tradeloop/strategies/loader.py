"""Find a strategy class by name, ``module:Class``, ``path/to/file.py:Class`` or entry point.

Built-in names are listed in :data:`BUILTIN`; third-party packages register theirs under the
``tradeloop.strategies`` entry-point group, so users add strategies without editing tradeloop.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from tradeloop.strategies.base import Strategy

BUILTIN: dict[str, str] = {
    "market_making": "tradeloop.strategies.market_making:MarketMaking",
    "xarb": "tradeloop.strategies.xarb:CrossExchangeArbitrage",
    "xmm": "tradeloop.strategies.xmm:CrossExchangeMarketMaking",
    "stat_arb": "tradeloop.strategies.stat_arb:StatisticalArbitrage",
}

ENTRY_POINT_GROUP = "tradeloop.strategies"


class StrategyNotFound(LookupError):
    pass


def _class_from(obj: Any, where: str) -> type[Strategy[Any]]:
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyNotFound(f"{where} is not a tradeloop Strategy subclass")
    return obj


def load_strategy_class(spec: str) -> type[Strategy[Any]]:
    """Resolve ``spec`` to a Strategy subclass, with a clear error when it cannot."""
    if spec in BUILTIN:
        return load_strategy_class(BUILTIN[spec])
    if ":" not in spec:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == spec:
                return _class_from(ep.load(), f"entry point {spec!r}")
        known = ", ".join(sorted(BUILTIN))
        raise StrategyNotFound(f"unknown strategy {spec!r} (built-in: {known}; or use module:Class or file.py:Class)")
    target, _, cls_name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise StrategyNotFound(f"strategy file not found: {path}")
        module_name = f"tradeloop_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise StrategyNotFound(f"cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise StrategyNotFound(f"cannot import module {target!r}: {exc}") from None
    if not hasattr(module, cls_name):
        raise StrategyNotFound(f"{target} has no attribute {cls_name!r}")
    return _class_from(getattr(module, cls_name), spec)
