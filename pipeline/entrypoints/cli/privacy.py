"""`leadflow privacy …`: a person's data, exported (GDPR Art. 15) or erased
(Art. 17). Both need the running worker: it owns the warehouse and runs the
erasure in its tables."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.config.settings import Settings
from pipeline.entrypoints.cli.common import cli_settings, console, friendly, topics_of
from pipeline.errors import LeadflowError, WorkerUnavailable

app = typer.Typer(
    help="A person's data: export it (GDPR Art. 15), erase it (Art. 17).", no_args_is_help=True
)

Subject = Annotated[str, typer.Argument(help="The lead's id, or the person's e-mail address.")]


def _person(settings: Settings, subject: str) -> Any:
    """The subject resolved by the running worker, once its warehouse has stored
    everything (it owns the warehouse; the erasure runs in it too)."""
    from pipeline.adapters.worker_api import post_json, wait_until_stored, worker_answers
    from pipeline.domain.privacy.person import Person

    if not worker_answers(settings):  # at once, not after waiting for the warehouse
        raise WorkerUnavailable(settings.web_url, "a privacy command")
    try:
        asyncio.run(wait_until_stored(settings))
        found = post_json(settings, "/v1/privacy/person", {"subject": subject})
    except OSError as exc:  # it stopped meanwhile
        raise WorkerUnavailable(settings.web_url, "a privacy command") from exc
    return Person.from_json(found)


@app.command("export")
@friendly
def privacy_export(
    subject: Subject,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
) -> None:
    """Everything stored about a person, as JSON (from the warehouse, which holds every event)."""
    import json

    from pipeline.adapters.worker_api import post_json

    settings = cli_settings()
    _person(settings, subject)  # waits until the warehouse has everything
    data = post_json(settings, "/v1/privacy/export", {"subject": subject})
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}: {len(data['events'])} events")


@app.command("erase")
@friendly
def privacy_erase(
    subject: Subject,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 600.0,
) -> None:
    """Erase a person from the worker's tables, the topics and the warehouse; the
    events stay countable without personal data (see docs/privacy.md)."""
    from pipeline.adapters.kafka.erasure import request_erasure

    settings = cli_settings()
    person = _person(settings, subject)
    if not person.markers:
        raise LeadflowError(f"nothing is stored about {subject!r}")
    shares = asyncio.run(
        request_erasure(settings.kafka, topics_of(settings), subject, person, timeout)
    )
    tables = sum(s.table_entries for s in shares)
    topics = sum(s.topic_partitions for s in shares)
    rows = sum(s.warehouse_rows for s in shares)
    console.print(
        f"erased {len(person.lead_ids)} lead(s): {tables} table entries, "
        f"{topics} topic partitions truncated, {rows} warehouse rows stripped"
    )
    if not all(s.complete for s in shares):
        raise LeadflowError("the erasure is incomplete; see the worker's log, then run it again")
