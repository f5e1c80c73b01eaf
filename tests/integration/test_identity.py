"""Identity resolution through the real broker and a running worker: one person
by several keys is one lead, an anonymous visitor's history follows them to
the lead they start later, and a won customer's next inquiry finds their lead."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from pipeline.adapters.kafka.reader import read_to_end
from pipeline.adapters.worker_api import get_json, wait_until_stored
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from pipeline.domain.identify.identity import pseudonym
from schemas.envelope import utcnow
from schemas.lead import ActivityRecorded, LeadCaptured
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.pipeline import TIMEOUT_S, Pipeline
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    state: Path = tmp_path_factory.mktemp("identity")
    settings = isolated_settings(kafka, state)
    with WorkerProcess(settings, state / "worker.log"):
        yield Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))


def captured(pipeline: Pipeline, lead: str) -> LeadCaptured:
    """The LeadCaptured of the inquiry whose own lead would be `lead` (found by its trace)."""
    topic = pipeline.topics.captured
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for _, raw in asyncio.run(read_topic(pipeline.settings.kafka_bootstrap, topic)):
            event = LeadCaptured.model_validate_json(raw or b"")
            if event.payload.inquiry_id.endswith(lead):
                return event
        time.sleep(0.3)
    raise AssertionError(f"no LeadCaptured for {lead}")


def contact(pipeline: Pipeline, **fields: str) -> dict[str, str]:
    return {"first_name": "Jonas", "last_name": "Weber", **fields}


def test_one_person_by_email_phone_and_name_at_the_company_is_one_lead(pipeline: Pipeline) -> None:
    run, topics = pipeline.run, pipeline.topics
    company = f"Weber & {run} Maschinenbau GmbH"
    form, _ = pipeline.inquiry(
        "id-form", contact=contact(pipeline, email=f"jonas@{run}.de", company=company)
    )
    pipeline.send(topics.inquiries, form)
    first = captured(pipeline, "id-form")
    assert not first.merged
    fair, _ = pipeline.inquiry(  # the fair list: only his phone, the company spelt otherwise
        "id-fair",
        source={"channel": "trade_fair", "event": "hannover-messe"},
        contact={
            "first_name": "JONAS",
            "last_name": "Weber",
            "phone": "+49 89 1234567",
            "company": f"WEBER und {run} Maschinenbau",
        },
    )
    pipeline.send(topics.inquiries, fair)
    by_name = captured(pipeline, "id-fair")
    assert (by_name.lead_id, by_name.matched_on, by_name.match_score) == (
        first.lead_id,
        "company",
        100,
    )
    call, _ = pipeline.inquiry(  # another address, the phone the fair list brought
        "id-call", contact=contact(pipeline, email=f"j.weber.{run}@gmail.com", phone="089 1234567")
    )
    pipeline.send(topics.inquiries, call)
    by_phone = captured(pipeline, "id-call")
    assert (by_phone.lead_id, by_phone.matched_on) == (first.lead_id, "phone")
    # the address the walk saw first now belongs to the person, too
    mail, _ = pipeline.inquiry("id-mail", contact={"email": f"J.Weber.{run}@gmail.com"})
    pipeline.send(topics.inquiries, mail)
    assert captured(pipeline, "id-mail").lead_id == first.lead_id


NAMESAKES = [("Max", "Hoffmann"), ("Mia", "Hoffmann"), ("Lea", "Koch"), ("Lena", "Koch")]
NAMESAKES += [("Hannah", "Schäfer"), ("Anna", "Schäfer"), ("Max", "Hoffmann")]


def test_namesakes_at_one_company_with_their_own_address_and_phone_are_separate_leads(
    pipeline: Pipeline,
) -> None:
    run, topics = pipeline.run, pipeline.topics
    people = [
        pipeline.inquiry(
            f"ns-{n}",
            contact={
                "first_name": first,
                "last_name": last,
                "email": f"{first}.{last}.{n}@{run}.de".lower().replace("ä", "ae"),
                "phone": f"+49 30 55{n}{n}{n}{n}{n}",
                "company": f"Namensvetter {run} GmbH",
                "postal_code": f"{10115 + n}",
            },
        )[0]
        for n, (first, last) in enumerate(NAMESAKES)
    ]
    pipeline.send(topics.inquiries, *people)
    leads = [captured(pipeline, f"ns-{n}") for n in range(len(NAMESAKES))]
    assert [lead.merged for lead in leads] == [False] * len(NAMESAKES)
    assert len({lead.lead_id for lead in leads}) == len(NAMESAKES)  # two Max Hoffmanns too


def activity(pipeline: Pipeline, n: str, **who: Any) -> dict[str, Any]:
    return {
        "activity_id": f"{pipeline.run}-{n}",
        "occurred_at": utcnow().isoformat(),
        "activity_type": "page_view",
        "details": {"url": f"/pricing/{n}"},
        **who,
    }


async def _waiting_keys(bootstrap: str, topic: str, partitions: int) -> set[bytes]:
    """Keys in the changelog of the table that keeps activities of unknown people."""
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    return {
        r.key async for _, r in read_to_end(bootstrap, parts, "read_committed") if r.key and r.value
    }


def test_an_anonymous_visitor_gets_their_history_when_they_fill_a_form(pipeline: Pipeline) -> None:
    run, topics = pipeline.run, pipeline.topics
    email = f"visitor-{run}@firma.de"
    pipeline.send(topics.activity, *(activity(pipeline, f"pv{i}", email=email) for i in range(3)))
    changelog = f"{pipeline.settings.app_id}-identity-waiting-activities-changelog"
    deadline = time.monotonic() + TIMEOUT_S
    key = f'"{pseudonym(f"email:{email}")}"'.encode()  # the table keys by a hash
    partitions = topics.identify.partitions
    while key not in asyncio.run(
        _waiting_keys(pipeline.settings.kafka_bootstrap, changelog, partitions)
    ):
        assert time.monotonic() < deadline, "the page views were never kept for the visitor"
        time.sleep(0.5)

    form, _ = pipeline.inquiry("visitor", contact={"email": email.upper()})
    pipeline.send(topics.inquiries, form)
    lead = str(captured(pipeline, "visitor").lead_id)
    history = pipeline.wait_for(topics.lead_activity, lead, lambda found: len(found) >= 3)
    assert sorted(a.payload.activity_id for a in history) == [f"{run}-pv{i}" for i in range(3)]
    assert all(isinstance(a, ActivityRecorded) for a in history)


def test_an_activity_nobody_can_be_found_by_is_rejected_with_its_bytes(pipeline: Pipeline) -> None:
    body = activity(pipeline, "ghost", phone="12")
    pipeline.send(pipeline.topics.activity, body)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for _, raw in asyncio.run(
            read_topic(pipeline.settings.kafka_bootstrap, pipeline.topics.rejected)
        ):
            rejection = MessageRejected.model_validate_json(raw or b"").payload
            original = base64.b64decode(rejection.original_b64)
            if original == orjson.dumps(body):
                assert [r.code for r in rejection.reasons] == ["activity_without_person"]
                return
        time.sleep(0.5)
    raise AssertionError("the activity without a person never reached leads.rejected")


def test_a_won_customer_is_recognised_by_their_phone(pipeline: Pipeline) -> None:
    run, topics = pipeline.run, pipeline.topics
    first, _ = pipeline.inquiry(
        "cust-1", contact={"email": f"k-{run}@gmail.com", "phone": "040 7654321"}
    )
    pipeline.send(topics.inquiries, first)
    lead = str(captured(pipeline, "cust-1").lead_id)
    pipeline.wait_for(topics.qualified, lead)
    won = {
        "outcome_id": f"{run}-won",
        "lead_id": lead,
        "occurred_at": utcnow().isoformat(),
        "outcome": "won",
    }
    pipeline.send(topics.feedback, won, key=lead.encode())
    again, _ = pipeline.inquiry(
        "cust-2", contact={"email": f"k.new-{run}@web.de", "phone": "+49 40 7654321"}
    )
    pipeline.send(topics.inquiries, again)
    second = captured(pipeline, "cust-2")
    assert (str(second.lead_id), second.merged, second.matched_on) == (lead, True, "phone")


def test_lead_show_prints_the_timeline_from_the_running_worker(pipeline: Pipeline) -> None:
    run, topics = pipeline.run, pipeline.topics
    form, _ = pipeline.inquiry("tl-form", contact={"email": f"tl-{run}@firma.de"})
    fair, _ = pipeline.inquiry(
        "tl-fair",
        source={"channel": "trade_fair", "event": "dmexco"},
        contact={"email": f"TL-{run}@firma.de"},
    )
    pipeline.send(topics.inquiries, form)
    lead = str(captured(pipeline, "tl-form").lead_id)
    pipeline.send(topics.inquiries, fair)
    assert str(captured(pipeline, "tl-fair").lead_id) == lead
    asyncio.run(wait_until_stored(pipeline.settings))
    shown = leadflow(pipeline.settings, "lead", "show", lead)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    created = next(i for i, line in enumerate(lines) if "lead created" in line)
    merged = next(i for i, line in enumerate(lines) if "merged into this lead (matched on" in line)
    assert created < merged and "trade_fair" in lines[merged] and "qualified #1" in shown.stdout
    assert f"tl-{run}@" not in shown.stdout.casefold()  # the timeline names no address
    unknown = leadflow(pipeline.settings, "lead", "show", "not-a-lead")
    assert unknown.returncode != 0 and "is not a lead id" in unknown.stdout + unknown.stderr


def test_a_fair_list_import_says_how_many_rows_were_merged(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    run, topics = pipeline.run, pipeline.topics
    known, _ = pipeline.inquiry("fair-known", contact={"email": f"kunde@{run}.de"})
    pipeline.send(topics.inquiries, known)
    captured(pipeline, "fair-known")
    namesakes = "\n".join(
        f"{first},{last},{first}.{n}@{run}.de,030 66{n}{n}{n}{n}{n},Messe {run} GmbH"
        for n, (first, last) in enumerate(NAMESAKES)
    )
    listed = tmp_path / "fair.csv"
    listed.write_text(
        "Vorname,Nachname,E-Mail,Telefon,Firma\n"
        f"{namesakes}\n"
        f"Kai,Kunde,KUNDE@{run}.de,,\n"  # a returning person: their known address
        f"Max,Hoffmann,max.0@{run}.de,,Messe {run} GmbH\n"  # row 1 again, on this list
        "Otto,Falk,otto-at-falk.de,,\n",
        encoding="utf-8",
    )
    done = leadflow(pipeline.settings, "import", str(listed), "--wait", "120", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10 rows: 8 accepted, 1 rejected" in done.stdout
    assert "1 duplicates of an earlier row" in done.stdout
    assert (
        "placed: 7 new leads, 2 merged into existing leads (2 on email; 1 into a lead of an "
        "earlier row), 0 excluded" in " ".join(done.stdout.split())
    )


def test_an_operator_splits_a_wrong_merge_off_and_merges_two_leads_by_hand(
    pipeline: Pipeline,
) -> None:
    run, topics = pipeline.run, pipeline.topics
    father = {"first_name": "Max", "last_name": "Hoffmann", "company": f"Hoffmann {run} AG"}
    first, _ = pipeline.inquiry("fix-father", contact={**father, "email": f"max@{run}.de"})
    pipeline.send(topics.inquiries, first)
    lead = str(captured(pipeline, "fix-father").lead_id)
    son, _ = pipeline.inquiry("fix-son", contact={**father, "phone": "+49 171 3456789"})
    pipeline.send(topics.inquiries, son)
    merged = captured(pipeline, "fix-son")
    assert (str(merged.lead_id), merged.matched_on) == (lead, "company")  # nothing against it

    split = leadflow(pipeline.settings, "lead", "split", lead, f"{run}-fix-son", timeout=240)
    assert split.returncode == 0, split.stdout + split.stderr
    new = split.stdout.split(" it is lead ")[1].split()[0]
    assert new != lead
    # the son's lead is captured again and goes through the pipeline as a lead of its own
    [qualified] = pipeline.wait_for(topics.qualified, new)
    assert qualified.trace_id == merged.trace_id and qualified.payload.iteration == 1

    # the son was answered once: his answer on the new lead repeats the first one's id
    def answers(found: list[Any]) -> list[Any]:
        return [t for t in found if t.payload.purpose == "fulfillment"]

    [answer] = answers(pipeline.wait_for(topics.touches, new, lambda f: bool(answers(f))))
    first_answers = answers(pipeline.wait_for(topics.touches, lead, lambda f: len(answers(f)) > 1))
    assert answer.event_id in {t.event_id for t in first_answers if t.trace_id == merged.trace_id}
    call, _ = pipeline.inquiry("fix-call", contact={"phone": "0171 3456789"})
    pipeline.send(topics.inquiries, call)
    assert str(captured(pipeline, "fix-call").lead_id) == new
    again = leadflow(pipeline.settings, "lead", "split", lead, f"{run}-fix-father")
    assert again.returncode == 1 and "started lead" in again.stdout

    private, _ = pipeline.inquiry("fix-private", contact={**father, "email": f"max@web-{run}.de"})
    pipeline.send(topics.inquiries, private)
    other = captured(pipeline, "fix-private")
    assert not other.merged  # another address: another person, as far as anyone could tell
    joined = leadflow(pipeline.settings, "lead", "merge", lead, str(other.lead_id), timeout=240)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert f"lead {other.lead_id} merged into lead {lead}" in joined.stdout
    later, _ = pipeline.inquiry("fix-later", contact={"email": f"MAX@web-{run}.de"})
    pipeline.send(topics.inquiries, later)
    found = captured(pipeline, "fix-later")
    assert (str(found.lead_id), found.matched_on) == (lead, "email")

    asyncio.run(wait_until_stored(pipeline.settings))
    told = [e["summary"] for e in get_json(pipeline.settings, f"/v1/leads/{lead}/timeline")]
    assert f"inquiry {run}-fix-son split off into lead {new} by an operator" in told
    assert f"lead {other.lead_id} merged into this lead by an operator" in told
    theirs = [e["summary"] for e in get_json(pipeline.settings, f"/v1/leads/{new}/timeline")]
    assert f"split off lead {lead} by an operator: inquiry {run}-fix-son" in theirs
    assert "lead created" in theirs and any(s.startswith("qualified #1") for s in theirs)
    assert f"inquiry {run}-fix-call merged into this lead (matched on phone)" in theirs
    assert not any("fix-son merged into" in s for s in theirs)  # that is the father's story
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(pipeline.settings, "/v1/leads/not-a-lead/captures")
    assert refused.value.code == 400
