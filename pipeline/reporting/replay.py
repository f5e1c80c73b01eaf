"""What-if replay, the read side (`leadflow replay`): the recorded history out of
`leadflow.lead_events`, replayed under the live rules and under a candidate rule
set (`pipeline.domain.replay`), and what would change, in report sections.

Two replays, because a replay is only as good as its reproduction of the record:
the live rules replayed must take exactly the recorded decisions, and every one
they do not is listed under "not reproduced" (a defect of the replay, or of a
record made under other rules), never folded into the changes. The changes are
the candidate's decisions against the live rules' replay, so such a defect does
not pass for an effect of the candidate.

The history is read page by page in the table's own order (`event_type`,
`event_id`), one row per event id (a redelivered event counts once, with the time
of its first version: when it was decided), through a `Query`:
the warehouse itself, or the running worker's `POST /v1/sql` in embedded mode
(the worker owns the chdb directory), so each page stays within the analyst
limits. Read only, always.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE
from pipeline.config.rules import load_rules
from pipeline.config.settings import Settings
from pipeline.domain.replay import (
    FIELDS,
    REQUALIFY,
    Decision,
    Input,
    LeadSummary,
    Record,
    RuleSet,
    changed,
    differences,
    replay,
    summaries,
)
from pipeline.errors import BadRequest, WorkerUnavailable
from schemas.lead import (
    ActivityRecorded,
    ClaimRequested,
    LeadEnriched,
    OutcomeRecorded,
    SlaBreached,
)

Rows = list[dict[str, Any]]
Query = Callable[[str], Rows]
PAGE = 5000
"""Rows per page: within the worker's analyst row limit (LEADFLOW_SQL_MAX_ROWS)."""
INPUTS: dict[str, TypeAdapter[Any]] = {
    model.model_fields["event_type"].default: TypeAdapter(model)
    for model in (LeadEnriched, ActivityRecorded, OutcomeRecorded, ClaimRequested, SlaBreached)
}
TIMED = (*FIELDS, "LeadRouted")
"""Events whose time is a stage's "now" for the next step (every decision, and routing)."""
TIMERS = ("RequalificationDue", "NurtureStepDue")
AT = "JSONExtractString(payload, 'occurred_at')"
EMITTED = "JSONExtractString(payload, 'emitted_at')"


@dataclass(frozen=True)
class Window:
    """The leads replayed: those first enriched in [since, until), with their whole
    history before `until` (and the pull claims in the window)."""

    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Window:
        def day(text: str | None, name: str) -> date | None:
            try:
                return date.fromisoformat(text) if text else None
            except ValueError:
                raise BadRequest(f"--{name} takes a date, e.g. 2026-11-01 (got {text!r})") from None

        window = cls(day(since, "since"), day(until, "until"))
        if window.since and window.until and window.since >= window.until:
            raise BadRequest("--since must be before --until")
        return window

    def sql(self) -> str:
        if self.since is None and self.until is None:
            return "1"
        first = [f"min(occurred_at) >= '{self.since}'"] if self.since else []
        first += [f"min(occurred_at) < '{self.until}'"] if self.until else []
        claims = f"occurred_at >= '{self.since}'" if self.since else "1"
        where = (
            f"(lead_id IN (SELECT lead_id FROM {EVENTS_TABLE} WHERE event_type = 'LeadEnriched' "
            f"GROUP BY lead_id HAVING {' AND '.join(first)}) OR (lead_id IS NULL AND {claims}))"
        )
        return where + (f" AND occurred_at < '{self.until}'" if self.until else "")


def earliest(expr: str, moment: str = "occurred_at") -> str:
    """`expr` of an event's first version: a stage that sends an event again after a
    redelivery (same id) stamps it anew, and the first stamp is when it was decided."""
    return (
        f"argMin({expr}, parseDateTime64BestEffortOrNull("
        f"JSONExtractString(payload, '{moment}'), 6))"
    )


def pages(
    query: Query, columns: str, types: tuple[str, ...], window: Window, page: int = PAGE
) -> Iterator[Rows]:
    """One row per event (`columns` aggregate its versions) of these types, page by page
    in the table's order (keyset, not OFFSET)."""
    names = ", ".join(f"'{t}'" for t in types)
    after = ""
    while True:
        rows = query(
            f"SELECT event_type, toString(event_id) AS id, {columns} FROM {EVENTS_TABLE} "
            f"WHERE event_type IN ({names}) AND {window.sql()}{after} "
            f"GROUP BY event_type, event_id ORDER BY event_type, event_id LIMIT {page}"
        )
        if rows:
            yield rows
        if len(rows) < page:
            return
        last = rows[-1]
        after = f" AND (event_type, event_id) > ('{last['event_type']}', toUUID('{last['id']}'))"


def read_record(query: Query, window: Window = Window(), page: int = PAGE) -> Record:
    """The recorded history of the window's leads."""
    record = Record()
    versions = earliest("payload", "emitted_at")
    for rows in pages(query, f"{versions} AS payload", tuple(INPUTS), window, page):
        record.inputs += [INPUTS[r["event_type"]].validate_json(r["payload"]) for r in rows]
    fields = {  # each only where its event type has it (`if` evaluates lazily)
        f"v{n}": earliest(
            f"if(event_type = '{kind}', "
            f"JSONExtractRaw(payload, {', '.join(repr(p) for p in path)}), '')"
        )
        for n, (kind, (_, path)) in enumerate(
            (kind, f) for kind, spec in FIELDS.items() for f in spec
        )
    }
    offsets, n = {}, 0
    for kind, spec in FIELDS.items():
        offsets[kind], n = n, n + len(spec)
    columns = (
        f"any(toString(lead_id)) AS lead, {earliest(AT)} AS at, "
        "any(if(event_type = 'TouchScheduled', "
        "JSONExtractString(payload, 'payload', 'purpose'), '')) AS purpose, "
        + ", ".join(f"{sql} AS {name}" for name, sql in fields.items())
    )
    for rows in pages(query, columns, TIMED, window, page):
        for r in rows:
            event_id, kind = uuid.UUID(r["id"]), r["event_type"]
            record.times[event_id] = datetime.fromisoformat(r["at"])
            record.kinds[event_id] = kind
            if kind not in FIELDS or (kind == "TouchScheduled" and r["purpose"] != "nurture"):
                continue
            first = offsets[kind]
            values = tuple(r[f"v{first + i}"] for i in range(len(FIELDS[kind])))
            record.decisions.append(Decision(event_id, uuid.UUID(r["lead"]), kind, values))
    timer_columns = (
        "any(toString(lead_id)) AS lead, any(JSONExtractString(payload, 'due_at')) AS due, "
        f"{earliest(EMITTED, 'emitted_at')} AS emitted, "
        "any(JSONExtractString(payload, 'step')) AS step"
    )
    for rows in pages(query, timer_columns, TIMERS, window, page):
        for r in rows:
            kind = r["step"] or REQUALIFY
            fired = (datetime.fromisoformat(r["due"]), datetime.fromisoformat(r["emitted"]))
            record.timers.setdefault((uuid.UUID(r["lead"]), kind), []).append(fired)
    moments = [
        *record.times.values(),
        *(e.emitted_at for e in record.inputs),
        *(emitted for fired in record.timers.values() for _, emitted in fired),
    ]
    record.end = max(moments, default=None)
    record.settle()
    return record


@dataclass(frozen=True)
class Outcomes:
    """A lead's recorded outcomes: won (in any sales cycle), lost, and the revenue
    (the latest won amount of each cycle, as the warehouse's lead state counts it)."""

    won: bool = False
    lost: bool = False
    revenue_eur: float = 0.0


def outcomes(inputs: list[Input]) -> dict[uuid.UUID, Outcomes]:
    won: dict[uuid.UUID, dict[int, tuple[datetime, float]]] = defaultdict(dict)
    lost: set[uuid.UUID] = set()
    for event in inputs:
        if not isinstance(event, OutcomeRecorded):
            continue
        o, cycle = event.payload.outcome, event.payload.cycle
        if o.outcome == "won":
            latest = won[event.lead_id].get(cycle)
            if latest is None or latest[0] <= o.occurred_at:
                won[event.lead_id][cycle] = (o.occurred_at, o.amount_eur or 0.0)
        elif o.outcome == "lost":
            lost.add(event.lead_id)
    return {
        lead: Outcomes(
            won=lead in won,
            lost=lead in lost,
            revenue_eur=sum(amount for _, amount in won.get(lead, {}).values()),
        )
        for lead in {*won, *lost}
    }


def run_replay(record: Record, live: RuleSet, candidate: RuleSet) -> dict[str, Rows]:
    """The report: summary, not reproduced, changed leads, funnel, rep load, outcomes."""
    baseline = replay(record, live)
    proposed = replay(record, candidate)
    defects = differences(record.decisions, baseline)
    before, after = summaries(baseline), summaries(proposed)
    changes = changed(before, after)
    leads = {e.lead_id for e in record.inputs if isinstance(e, LeadEnriched)}
    return {
        "summary": [
            {"measure": "leads replayed", "value": len(leads)},
            {"measure": "decisions recorded", "value": len(record.decisions)},
            {"measure": "decisions of the live rules, replayed", "value": len(baseline)},
            {"measure": "decisions of the candidate rules", "value": len(proposed)},
            {"measure": "not reproduced (replay defects)", "value": len(defects)},
            {"measure": "leads treated differently", "value": len(changes)},
        ],
        "not_reproduced": [
            {
                "lead_id": str(d.lead_id),
                "decision": d.kind,
                "event_id": str(d.event_id),
                "recorded": _shown(d.before),
                "replayed": _shown(d.after),
            }
            for d in defects
        ],
        "changed_leads": [
            {"lead_id": str(lead), "what": what, "live": _value(a), "candidate": _value(b)}
            for lead, found in changes.items()
            for what, a, b in found
        ],
        "funnel": _funnel(before, after),
        "rep_load": _load(before, after),
        "outcomes": _outcomes(changes, outcomes(record.inputs)),
    }


def _shown(values: dict[str, str] | Any) -> str | None:
    return None if values is None else ", ".join(f"{k}={v}" for k, v in values.items())


def _value(value: Any) -> str | None:
    if isinstance(value, tuple):
        return ", ".join(value) or None
    return None if value is None else str(value)


def _funnel(before: dict[uuid.UUID, LeadSummary], after: dict[uuid.UUID, LeadSummary]) -> Rows:
    def count(summaries: dict[uuid.UUID, LeadSummary], stage: str) -> int:
        if stage == "qualified":
            return sum(1 for s in summaries.values() if s.status is not None)
        return sum(1 for s in summaries.values() if getattr(s, stage))

    rows = []
    for stage in ("qualified", "mql", "sql"):
        live, candidate = count(before, stage), count(after, stage)
        rows.append(
            {"stage": stage, "live": live, "candidate": candidate, "delta": candidate - live}
        )
    return rows


def _load(before: dict[uuid.UUID, LeadSummary], after: dict[uuid.UUID, LeadSummary]) -> Rows:
    """Leads each rep owns at the end of the history, per queue."""

    def owners(summaries: dict[uuid.UUID, LeadSummary]) -> Counter[tuple[str, str]]:
        return Counter((s.queue or "", s.owner) for s in summaries.values() if s.owner)

    live, candidate = owners(before), owners(after)
    return [
        {
            "queue": queue,
            "rep": rep,
            "live": live[(queue, rep)],
            "candidate": candidate[(queue, rep)],
            "delta": candidate[(queue, rep)] - live[(queue, rep)],
        }
        for queue, rep in sorted({*live, *candidate})
    ]


def _outcomes(
    changes: dict[uuid.UUID, list[tuple[str, Any, Any]]], known: dict[uuid.UUID, Outcomes]
) -> Rows:
    """What the leads that would be treated differently did in fact: per change, and
    for all of them."""
    groups: dict[str, set[uuid.UUID]] = defaultdict(set)
    for lead, found in changes.items():
        groups["any change"].add(lead)
        for what, _, _ in found:
            groups[what].add(lead)
    rows = []
    for what in sorted(groups, key=lambda w: (w != "any change", w)):
        leads = groups[what]
        results = [known.get(lead, Outcomes()) for lead in leads]
        won = sum(r.won for r in results)
        rows.append(
            {
                "change": what,
                "leads": len(leads),
                "won": won,
                "lost": sum(r.lost for r in results),
                "revenue_eur": round(sum(r.revenue_eur for r in results), 2),
                "conversion": round(won / len(leads), 4) if leads else None,
            }
        )
    return rows


def report_json(report: dict[str, Rows]) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2)


def rule_set(rules_dir: Path, settings: Settings) -> RuleSet:
    """A rules directory, validated as at a worker's start, with the settings' day and minute."""
    rules = load_rules(rules_dir)
    return RuleSet(
        scoring=rules.scoring,
        nurture=rules.nurture,
        routing=rules.routing,
        day=timedelta(seconds=settings.nurture_day_seconds),
        minute=timedelta(seconds=settings.sla_minute_seconds),
    )


@contextmanager
def warehouse_query(settings: Settings) -> Iterator[tuple[Query, int]]:
    """How the history is read, and the page size: in embedded mode through the running
    worker's `POST /v1/sql` (it owns the chdb directory; pages within its row limit),
    else (no worker, or a ClickHouse server) from the warehouse itself."""
    from pipeline.adapters.warehouse.clickhouse import open_warehouse
    from pipeline.adapters.worker_api import ask_worker, worker_answers

    if settings.clickhouse_url is None and worker_answers(settings):

        def ask(sql: str) -> Rows:
            answer = ask_worker(settings, "/v1/sql", body=sql.encode())
            if answer is None:
                raise WorkerUnavailable(settings.web_url, "the warehouse (it stopped answering)")
            rows: Rows = orjson.loads(answer)["rows"]
            return rows

        yield ask, min(PAGE, settings.sql_max_rows)
        return
    warehouse = open_warehouse(settings)
    try:
        yield warehouse.query, PAGE
    finally:
        warehouse.close()
