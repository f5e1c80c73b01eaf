"""`leadflow lead …`: one lead's timeline, and an operator's corrections of what
identity resolution got wrong (split an inquiry off, merge two leads)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from pipeline.config.settings import Settings
from pipeline.entrypoints.cli.common import (
    LeadId,
    cli_settings,
    console,
    first_found,
    friendly,
    print_table,
    topics_of,
)
from pipeline.errors import LeadflowError, WorkerUnavailable

app = typer.Typer(
    help="One lead: its timeline; split or merge what identity resolution got wrong.",
    no_args_is_help=True,
)


def _lead_uuid(text: str) -> Any:
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        raise LeadflowError(f"{text!r} is not a lead id (a UUID)") from None


@app.command("show")
@friendly
def lead_show(lead_id: LeadId) -> None:
    """Print the lead's timeline: from the running worker, or the warehouse directly."""
    import json

    from rich.table import Table

    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.timeline import lead_timeline

    lead = _lead_uuid(lead_id)
    settings = cli_settings()
    rows = first_found(
        f"the warehouse knows no events of lead {lead}",
        lambda: through_worker_or_direct(
            settings,
            topics_of(settings),
            lambda: ask_worker(settings, f"/v1/leads/{lead}/timeline"),
            lambda w, _: lead_timeline(w, lead),
            json.loads,
        ),
    )
    table = Table(title=f"Lead {lead}")
    for column in ("when (UTC)", "channel", "what happened", "rules (variant)"):
        table.add_column(column)
    for row in rows:
        rules = row.get("rules", "")  # an older worker's answer has none
        table.add_row(row["occurred_at"][:19], row["channel"], row["summary"], rules)
    print_table(table)


def _stored(settings: Settings) -> None:
    """Wait until the warehouse has stored everything, so a lead's captures are all
    there (a correction needs the running worker: its identify stage applies it)."""
    from pipeline.adapters.worker_api import wait_until_stored, worker_answers

    if not worker_answers(settings):
        raise WorkerUnavailable(settings.web_url, "a correction")
    asyncio.run(wait_until_stored(settings))


def _captures(settings: Settings, lead: Any) -> list[Any]:
    """The lead's inquiries as captured (after `_stored`)."""
    from pydantic import TypeAdapter

    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.timeline import lead_captures
    from schemas.lead import LeadCaptured

    captures: list[Any] = first_found(
        f"the warehouse knows no inquiries of lead {lead}",
        lambda: through_worker_or_direct(
            settings,
            topics_of(settings),
            lambda: ask_worker(settings, f"/v1/leads/{lead}/captures"),
            lambda w, _: lead_captures(w, lead),
            TypeAdapter(list[LeadCaptured]).validate_json,
        ),
    )
    return captures


def _correct(settings: Settings, **fields: Any) -> list[Any]:
    """Send an operator's correction to the identify stage; what it did, per lead."""
    import uuid

    from pipeline.adapters.kafka.client import correct_and_wait
    from schemas.envelope import utcnow
    from schemas.lead import CorrectIdentity

    now = utcnow()
    command = CorrectIdentity(event_id=uuid.uuid4(), occurred_at=now, emitted_at=now, **fields)
    bootstrap = settings.kafka
    return asyncio.run(correct_and_wait(bootstrap, topics_of(settings), command, 120.0))


@app.command("split")
@friendly
def lead_split(
    lead_id: LeadId,
    inquiry: Annotated[
        str, typer.Argument(help="The inquiry's id (as `lead show` prints it) or its trace id.")
    ],
) -> None:
    """Split an inquiry off the lead it was merged into: it becomes a lead of its own
    (enriched, qualified and routed afresh), and its e-mail, phone and name at the
    company find that lead from now on."""
    lead = _lead_uuid(lead_id)
    settings = cli_settings()
    _stored(settings)
    captures = _captures(settings, lead)
    chosen = [c for c in captures if inquiry in (c.payload.inquiry_id, str(c.trace_id))]
    if not chosen:
        known = ", ".join(c.payload.inquiry_id for c in captures)
        raise LeadflowError(f"lead {lead} has no inquiry {inquiry!r} (its inquiries: {known})")
    if not chosen[0].merged:
        raise LeadflowError(
            f"inquiry {inquiry!r} started lead {lead}: split off the inquiries merged into it"
        )
    done = _correct(settings, action="split", lead=lead, captures=chosen[:1])
    [new] = [d for d in done if d.payload.action == "split_from"]
    console.print(
        f"inquiry {chosen[0].payload.inquiry_id} split off lead {lead}: it is lead "
        f"{new.lead_id} now ({new.payload.keys} identity keys find it), captured again",
        soft_wrap=True,
    )


@app.command("merge")
@friendly
def lead_merge(
    lead_id: LeadId,
    other: Annotated[str, typer.Argument(help="The lead of the same person, merged into it.")],
) -> None:
    """Merge two leads of one person by hand: every identity key of OTHER (its e-mail
    addresses, phones and names at companies) finds LEAD_ID from now on; both
    timelines record it. OTHER's own events stay its own."""
    lead, merged = _lead_uuid(lead_id), _lead_uuid(other)
    if lead == merged:
        raise LeadflowError("a lead cannot be merged into itself")
    settings = cli_settings()
    _stored(settings)  # once: then both leads' captures are in the warehouse
    _captures(settings, lead)  # the lead exists
    captures = _captures(settings, merged)
    done = _correct(settings, action="merge", lead=lead, other_lead=merged, captures=captures)
    keys = done[0].payload.keys
    console.print(
        f"lead {merged} merged into lead {lead}: {keys} identity keys find it from now on"
    )
