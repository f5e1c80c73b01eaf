"""`leadflow kafka …`: the local single-node broker for development and tests."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.entrypoints.cli.common import cli_settings, console, friendly

app = typer.Typer(help="The local single-node Kafka broker.", no_args_is_help=True)


@app.command("up")
@friendly
def kafka_up() -> None:
    """Fetch (once), format (once) and start the local broker; wait until it accepts connections."""
    from pipeline.dev.local_kafka import LocalKafka

    status = LocalKafka(cli_settings()).up(log=lambda line: console.print(f"[dim]{line}[/dim]"))
    console.print(f"Kafka is up at [bold]{status.bootstrap}[/bold]")


@app.command("status")
@friendly
def kafka_status() -> None:
    """Is the local broker running? (exit 1 if not)"""
    from pipeline.dev.local_kafka import LocalKafka

    status = LocalKafka(cli_settings()).status()
    if not status.running:
        console.print(f"Kafka is not running at {status.bootstrap}")
        raise typer.Exit(1)
    owner = f"pid {status.pid}" if status.managed else "not started by leadflow"
    console.print(f"Kafka is running at {status.bootstrap} ({owner})")


@app.command("down")
@friendly
def kafka_down(
    purge: Annotated[
        bool,
        typer.Option(help="Also delete the broker's data and logs and the worker's table state."),
    ] = False,
) -> None:
    """Stop the local broker cleanly; its data is kept unless --purge."""
    from pipeline.dev.local_kafka import LocalKafka

    stopped = LocalKafka(cli_settings()).down(purge=purge)
    console.print("Kafka stopped" if stopped else "Kafka was not running")
    if purge:
        console.print("broker data removed")
