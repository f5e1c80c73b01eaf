"""The Faust app and worker: transport settings, table recovery, changelog topics.

`pipeline.bootstrap` builds the app from these; nothing here knows a stage.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from pipeline.adapters.kafka.security import faust_credentials
from pipeline.config.settings import Settings
from pipeline.config.topics import ChangelogSpec
from pipeline.worker.table_store import table_store_url, use_memory_budget


def tables_ready(app: faust.App) -> bool:
    """Do the worker's tables hold everything their changelogs hold?

    Faust clears `actives_ready` when a rebalance starts (and it starts
    cleared) and sets it once the active partitions' changelogs are read
    (`Recovery.on_recovery_completed`); until then a table answers from
    whatever it has read so far, e.g. no load for any rep.
    """
    return bool(app.tables.actives_ready)


def partitions_assigned(app: faust.App) -> bool:
    """Has the consumer group given this worker partitions to work on (Faust's
    assignor, set at each rebalance)? Before the first rebalance completed it has none."""
    return bool(app.assignor.assigned_actives())


def faust_app(settings: Settings, partitions: int) -> faust.App:
    """The Faust app with our transport settings (bench/passthrough.py measures them bare)."""
    use_memory_budget(settings.table_memory_mib * 2**20)
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings.kafka),  # TLS, SASL: as every client
        store=table_store_url(settings.table_store),
        datadir=str(settings.state_dir / "worker"),
        key_serializer="raw",
        value_serializer="raw",
        web_host=settings.web_host,
        web_bind=settings.web_host,  # Faust binds 0.0.0.0 unless told: only where configured
        web_port=settings.web_port,
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes,
        broker_commit_interval=settings.commit_interval_seconds,
        producer_linger_ms=settings.producer_linger_ms,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_seconds / 10),
        processing_guarantee=settings.processing_guarantee,
        autodiscover=False,
        # Faust's own endpoints would serve table contents (personal data) and
        # the cluster's layout to anyone: every endpoint is ours, behind `Stage.page`.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )


def table_changelogs(app: faust.App) -> list[ChangelogSpec]:
    """Every table's changelog topic with the table's partition count, for
    `apply_topics` to create before the worker subscribes (see `ChangelogSpec`)."""
    return [
        ChangelogSpec(
            table.changelog_topic.get_topic_name(),
            table.partitions or app.conf.topic_partitions,
        )
        for table in app.tables.values()
    ]


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    The spinner turns the root logger to DEBUG so that every record moves it:
    aiokafka then builds (and our masking formats) a debug record for every
    fetch and produce request, a fifth of the worker's CPU under load.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def run_worker(
    app: faust.App, settings: Settings, loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """Run `app` until SIGTERM / Ctrl-C; Faust's own log at `faust_log_level`."""
    Worker(
        app, loglevel=settings.faust_log_level.upper(), loop=loop, quiet=True
    ).execute_from_commandline()
