"""`leadflow schemas …`: the event schemas for integrators."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from pipeline.entrypoints.cli.common import cli_settings, console, friendly, topics_of

app = typer.Typer(help="Event schemas.", no_args_is_help=True)


@app.command("export")
@friendly
def schemas_export(out_dir: Annotated[Path, typer.Argument(help="Where to write.")]) -> None:
    """Write a JSON Schema per topic and an AsyncAPI 3 document."""
    from pipeline.config.asyncapi import export_schemas

    for path in export_schemas(topics_of(cli_settings()), out_dir, version("leadflow")):
        console.print(f"wrote {path}")
