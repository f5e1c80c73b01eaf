"""`leadflow rules …`: check the rule files RevOps edits, explain a lead's score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.entrypoints.cli.common import (
    LeadId,
    cli_settings,
    console,
    first_found,
    friendly,
    from_topic,
    from_worker,
    print_lines,
    topics_of,
)

app = typer.Typer(help="Business rules RevOps edits (LEADFLOW_RULES_DIR).", no_args_is_help=True)


@app.command("check")
@friendly
def rules_check(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="One rule file, e.g. rules/scoring.yaml (default: all seven files "
            "of the rules directory, LEADFLOW_RULES_DIR)."
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="scoring, nurture, routing, exclusions, enrichment, costs or targets "
            "(default: the file's name)"
        ),
    ] = None,
) -> None:
    """Validate the rule files (or one); name every broken file, its keys and problems."""
    from pipeline.config.rules import check_rule_file, rules_summary

    if file is not None:
        console.print(f"[green]ok[/green] {file}: {check_rule_file(file, kind)}", soft_wrap=True)
        return
    for path, summary in rules_summary(cli_settings().rules_dir):
        console.print(f"[green]ok[/green] {path}: {summary}", soft_wrap=True)


@app.command("copy")
@friendly
def rules_copy(
    directory: Annotated[Path, typer.Argument(help="A new directory for the rules.")],
) -> None:
    """Copy the shipped rules into DIRECTORY, to edit them there (then set
    LEADFLOW_RULES_DIR to it); an existing directory is never written into."""
    import shutil

    from pipeline.config.settings import SHIPPED_RULES
    from pipeline.errors import ConfigError

    if directory.exists():
        raise ConfigError(f"{directory} exists already; name a new directory.")
    shutil.copytree(SHIPPED_RULES, directory)
    console.print(f"[green]copied[/green] the shipped rules into {directory}")
    console.print(f"set LEADFLOW_RULES_DIR={directory.absolute()}")


@app.command("explain")
@friendly
def rules_explain(lead_id: LeadId) -> None:
    """Print how the lead's current score came about (asks the worker, else reads the topic)."""
    import json

    from pipeline.domain.qualify.scoring import explain
    from schemas.lead import LeadQualified, Qualification

    def held(state: dict[str, Any]) -> Qualification | None:
        last = state.get("last")
        return None if last is None else Qualification.model_validate_json(json.dumps(last))

    settings = cli_settings()
    topic = topics_of(settings).qualified
    qualification = first_found(
        f"no qualification of lead {lead_id} on {topic.name}",
        from_worker(settings, f"/v1/leads/{lead_id}/qualification", held),
        from_topic(
            settings, topic, lead_id, lambda raw: LeadQualified.model_validate_json(raw).payload
        ),
    )
    print_lines(explain(qualification))
