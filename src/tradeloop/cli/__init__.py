"""The ``tradeloop`` command line: one module per command, registered here."""

from __future__ import annotations

import typer

from tradeloop.cli.audit import audit_app
from tradeloop.cli.backtest import backtest
from tradeloop.cli.control import kill, resume
from tradeloop.cli.keys import keys_app
from tradeloop.cli.live import live
from tradeloop.cli.paper import paper
from tradeloop.cli.record import record
from tradeloop.cli.replay import replay
from tradeloop.cli.report import report
from tradeloop.cli.simulate import simulate
from tradeloop.cli.split import split

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tradeloop: event-driven, deterministic multi-venue crypto trading engine.",
)


@app.callback()
def _root() -> None:
    """tradeloop: backtest, paper and live trading on one deterministic core."""


app.command()(backtest)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.command()(paper)
app.command()(live)
app.command()(record)
app.command(name="report")(report)
app.command()(replay)
app.command()(kill)
app.command()(resume)
app.command()(simulate)
app.command()(split)


def _expand_data_args(args: list[str]) -> list[str]:
    """Allow ``--data a.gz b.gz`` (several files after one flag) as well as repeated ``--data``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        if arg == "--data":
            j = i + 1
            while j < len(args) and not args[j].startswith("-"):
                if j > i + 1:
                    out.append("--data")
                out.append(args[j])
                j += 1
            i = j
            continue
        i += 1
    return out


def main() -> None:
    import sys

    sys.argv[1:] = _expand_data_args(sys.argv[1:])
    app()
