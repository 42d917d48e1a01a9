"""``tradeloop simulate``: one venue's local simulator, standalone on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer

from tradeloop.cli.common import console


def simulate(
    venue: str = typer.Option(..., "--venue", help="Venue whose simulator to run (see venues/connectors.py)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic market driving the books."),
    speed: float = typer.Option(1.0, "--speed", min=0.001, help="Synthetic market pace, x real time."),
    balances: str | None = typer.Option(
        None,
        "--balances",
        help="Starting balances, e.g. USDT=100000,BTC=1 (default: 100000 of each quote, 1 of each base).",
    ),
    seconds: float = typer.Option(0.0, "--seconds", min=0.0, help="Stop after this many seconds (0: until Ctrl-C)."),
    fence_tag: str | None = typer.Option(
        None,
        "--fence-tag",
        help="Refuse orders whose client order id starts with TAG and carries a failover fencing token lower "
        "than the highest already accepted (see GET /__sim/state 'fencing').",
    ),
) -> None:
    """Run VENUE's local simulator on 127.0.0.1 with books driven by the synthetic market.

    Prints the base URL and the name of the test API key it accepts (never the secret)."""
    from tradeloop.runtime.simulator_feed import run_synthetic
    from tradeloop.venues.connectors import UnknownConnector, get_connector
    from tradeloop.venues.simulator.fencing import Fencing
    from tradeloop.venues.simulator.local import build_simulator, parse_balances

    try:
        connector = get_connector(venue)
        amounts = parse_balances(balances) if balances is not None else None
        fence = Fencing(fence_tag) if fence_tag is not None else None
    except (UnknownConnector, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    async def main() -> None:
        sim = build_simulator(connector, balances=amounts)
        sim.core.fence = fence
        try:
            await sim.start(port=port)
        except OSError as exc:
            console.print(f"[red]cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}[/red]")
            raise typer.Exit(1) from None
        urls = connector.local_urls(sim.base_url)
        key = sim.credentials
        console.print(f"[bold]{venue}[/bold] simulator on [cyan]{sim.base_url}[/cyan]")
        console.print(f"  REST {urls.rest}  public WS {urls.ws_public}  private WS {urls.ws_private or '-'}")
        console.print(f"  test API key: {key.venue}/{key.name} (fingerprint {key.fingerprint})")
        console.print(f"  instruments: {', '.join(str(i) for i in sim.core.instruments)}")
        if fence is not None:
            console.print(f"  fencing: orders tagged {fence.tag!r} with a stale token are refused")
        console.print("  control: POST /__sim/fault, GET /__sim/state; Ctrl-C stops")
        print(sim.base_url, flush=True)  # stdout: machine-readable
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        sim.spawn(run_synthetic(sim.core, seed=seed, speed=speed), name=f"{venue}-synthetic-feed")
        try:
            if seconds > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds)
            else:
                await stop.wait()
        finally:
            await sim.stop()
            console.print(f"{venue} simulator stopped")

    asyncio.run(main())
