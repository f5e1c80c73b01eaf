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
    """Write a JSON Schema per topic, an AsyncAPI 3 document (the topics) and an
    OpenAPI 3.1 document (the worker's HTTP API)."""
    import json

    from pipeline.bootstrap import build
    from pipeline.config.asyncapi import export_schemas
    from pipeline.config.rules import load_rules
    from pipeline.worker.openapi import openapi_document

    settings = cli_settings()
    topics = topics_of(settings)
    release = version("leadflow")
    written = export_schemas(topics, out_dir, release, settings.kafka_bootstrap, settings.web_url)
    stage = build(settings, topics, load_rules(settings.rules_dir))  # its routes, not started
    openapi = out_dir / "openapi.json"
    document = openapi_document(stage.pages, release, settings.web_url)
    openapi.write_text(json.dumps(document, indent=2) + "\n")
    for path in [*written, openapi]:
        console.print(f"wrote {path}")
