"""`leadflow kafka …`: the local Kafka for development and tests, one broker or a
KRaft cluster of several (`--brokers 3`) on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.config.settings import Settings
from pipeline.entrypoints.cli.common import cli_settings, console, friendly

app = typer.Typer(
    help="The local Kafka: one broker, or a cluster of several.", no_args_is_help=True
)


def cluster_dir(settings: Settings) -> Path:
    """Where `kafka up --brokers N` keeps the local cluster (beside the single broker)."""
    return settings.state_dir / "kafka-cluster"


@app.command("up")
@friendly
def kafka_up(
    brokers: Annotated[
        int,
        typer.Option(
            min=1,
            max=9,
            help="1: one broker on LEADFLOW_KAFKA_BOOTSTRAP's port. More: a KRaft cluster "
            "of that many brokers (each also a controller) on that port, +2, +4 …, "
            "replication factor the cluster's size, min.insync.replicas 2.",
        ),
    ] = 1,
) -> None:
    """Fetch (once), format (once) and start the local broker or cluster; wait until it
    accepts connections. Run again, it starts what is stopped and changes nothing else."""
    from pipeline.dev.local_kafka import LocalCluster, LocalKafka

    def log(line: str) -> None:
        console.print(f"[dim]{line}[/dim]")

    settings = cli_settings()
    single = LocalKafka(settings)
    if brokers == 1:
        status = single.up(log=log)
        console.print(f"Kafka is up at [bold]{status.bootstrap}[/bold]")
        return
    cluster = LocalCluster(cluster_dir(settings), brokers, first_port=single.port)
    cluster.up(log=log)
    console.print(
        f"Kafka cluster of {brokers} brokers is up at [bold]{cluster.bootstrap}[/bold]\n"
        f"  use it: LEADFLOW_KAFKA_BOOTSTRAP={cluster.bootstrap} "
        f"LEADFLOW_TOPIC_REPLICATION_FACTOR={brokers} LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS="
        f"{min(2, brokers)} leadflow topics apply"
    )


@app.command("status")
@friendly
def kafka_status() -> None:
    """Is the local broker (or cluster) running? (exit 1 if not)"""
    from pipeline.dev.local_kafka import LocalCluster, LocalKafka

    settings = cli_settings()
    cluster = LocalCluster.existing(cluster_dir(settings))
    if cluster is not None:
        nodes = cluster.status()
        for n, node in enumerate(nodes, 1):
            state = f"running (pid {node.pid})" if node.running else "not running"
            console.print(f"cluster broker {n} at {node.bootstrap}: {state}")
        if all(node.running for node in nodes):
            return
        raise typer.Exit(1)
    status = LocalKafka(settings).status()
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
    """Stop the local broker (and a local cluster) cleanly; data is kept unless --purge."""
    from pipeline.dev.local_kafka import LocalCluster, LocalKafka

    settings = cli_settings()
    cluster = LocalCluster.existing(cluster_dir(settings))
    if cluster is not None:
        stopped = cluster.down(purge=purge)
        console.print("Kafka cluster stopped" if stopped else "Kafka cluster was not running")
    stopped = LocalKafka(settings).down(purge=purge)
    console.print("Kafka stopped" if stopped else "Kafka was not running")
    if purge:
        console.print("broker data removed")
