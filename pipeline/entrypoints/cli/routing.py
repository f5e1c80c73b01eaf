"""`leadflow routing …`: who got a lead, and why."""

from __future__ import annotations

import typer

from pipeline.entrypoints.cli.common import (
    LeadId,
    cli_settings,
    first_found,
    friendly,
    from_topic,
    print_lines,
    topics_of,
)

app = typer.Typer(help="Who gets which lead, and why.", no_args_is_help=True)


@app.command("explain")
@friendly
def routing_explain(lead_id: LeadId) -> None:
    """Print the lead's queue, the rule that chose it, its owner and how (leads.sales-ready)."""
    from pipeline.domain.distribute.routing import explain_assignment
    from schemas.lead import LeadAssigned

    settings = cli_settings()
    topic = topics_of(settings).sales_ready
    # no worker view to ask first: distribute holds its state by queue, not by lead
    assigned = first_found(
        f"lead {lead_id} has no owner yet (nothing on {topic.name})",
        from_topic(settings, topic, lead_id, LeadAssigned.model_validate_json),
    )
    print_lines(explain_assignment(assigned))
