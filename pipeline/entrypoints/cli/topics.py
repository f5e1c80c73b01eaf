"""`leadflow topics …`: the topic registry (topics.yaml) and the broker's topics."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from pipeline.config.settings import Settings
from pipeline.entrypoints.cli.common import cli_settings, console, friendly, topics_of

app = typer.Typer(help="Topics from topics.yaml.", no_args_is_help=True)


@app.command("apply")
@friendly
def topics_apply() -> None:
    """Create missing topics and table changelogs; report live settings that differ."""
    settings = cli_settings()
    report = apply(settings)
    for name in report.created:
        console.print(f"[green]created[/green]  {name}")
    for name in report.unchanged:
        console.print(f"[dim]ok[/dim]       {name}")
    for name, problems in report.drift.items():
        console.print(f"[yellow]drift[/yellow]    {name}: " + "; ".join(problems))


def apply(
    settings: Settings, worker_app: Any = None, loop: asyncio.AbstractEventLoop | None = None
) -> Any:
    """Create what topics.yaml names and every table's changelog (`ChangelogSpec`):
    all exist, with their partition counts, before a worker subscribes (`worker`
    and `demo` run this first)."""
    from pipeline.adapters.kafka.admin import apply_topics
    from pipeline.bootstrap import create_app
    from pipeline.config.rules import load_rules
    from pipeline.config.topics import Declared
    from pipeline.worker.faust_app import table_changelogs

    topics = topics_of(settings)
    if worker_app is None:
        worker_app = create_app(settings, topics, load_rules(settings.rules_dir))
    declared: list[Declared] = [*topics.all(), *table_changelogs(worker_app)]
    applying = apply_topics(
        settings.kafka,
        declared,
        settings.topic_replication_factor,
        settings.topic_min_insync_replicas,
    )
    return asyncio.run(applying) if loop is None else loop.run_until_complete(applying)


@app.command("list")
@friendly
def topics_list() -> None:
    """Show the registry: name, partitions, retention, key and value model."""
    for spec in topics_of(cli_settings()).all():
        retention = "forever" if spec.retention_days is None else f"{spec.retention_days}d"
        console.print(
            f"{spec.name:<24} {spec.partitions:>3}p {retention:>8}  key={spec.key}  {spec.value}"
        )
