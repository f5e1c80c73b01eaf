"""`leadflow`: the operator's interface. Each command does one thing, prints what
happened, and exits non-zero on failure with a message instead of a traceback.

This module is the whole command surface at a glance: the root commands, in the
order `leadflow --help` lists them, and one sub-app per module. What the
commands share (console, error handling, settings, tables, asking the worker
with a fallback) is in `common`. Each command imports what it runs inside its
body, so starting the CLI loads neither Faust nor Kafka nor the warehouse.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.entrypoints.cli import (
    common,
    experiments,
    imports,
    kafka,
    lead,
    nurture,
    privacy,
    replay,
    report,
    routing,
    rules,
    run,
    schemas,
    topics,
)

app = typer.Typer(
    help="Leadflow: event-driven lead management on Kafka.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # every sub-command inherits it
    pretty_exceptions_enable=False,  # errors are one line (common.friendly), never a trace
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"leadflow {version('leadflow')}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    """Leadflow: event-driven lead management on Kafka."""
    common.DEBUG["traceback"] = debug


app.command()(run.queues)
app.command()(run.worker)
app.command()(run.demo)
app.command("import")(imports.import_file)
app.command("crm-bridge")(run.crm_bridge)
app.command("replay")(replay.replay)
app.command()(run.clean)
app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")
app.add_typer(report.app, name="report")
app.add_typer(routing.app, name="routing")
app.add_typer(rules.app, name="rules")
app.add_typer(experiments.app, name="experiments")
app.add_typer(lead.app, name="lead")
app.add_typer(nurture.app, name="nurture")
app.add_typer(privacy.app, name="privacy")


def main() -> None:
    """The `leadflow` console script (pyproject: `pipeline.entrypoints.cli:main`)."""
    app()
