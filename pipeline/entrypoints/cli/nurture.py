"""`leadflow nurture …`: a lead's nurture programs, as the worker holds them."""

from __future__ import annotations

from typing import Any

import typer

from pipeline.entrypoints.cli.common import (
    LeadId,
    cli_settings,
    first_found,
    friendly,
    from_worker,
    print_lines,
)

app = typer.Typer(help="Nurture programs per lead.", no_args_is_help=True)


@app.command("status")
@friendly
def nurture_status(lead_id: LeadId) -> None:
    """Print the lead's segments, contact permissions, programs, next steps and history.

    Asks the worker that owns the lead's partition (GET /v1/leads/{id}/nurture, with the
    operator key): the step timers live in its table.
    """
    from pipeline.domain.nurture.programs import NurtureStatus, explain_status

    def status(found: Any) -> NurtureStatus:
        return NurtureStatus.model_validate(found)

    settings = cli_settings()
    path = f"/v1/leads/{lead_id}/nurture"
    # the worker is the only source: nothing else holds a lead's pending steps
    held = first_found(
        f"lead {lead_id}: the worker holds no such lead",
        from_worker(settings, path, status, only=f"lead {lead_id}"),
    )
    print_lines(explain_status(held))
