from __future__ import annotations

import uuid
from typing import Any

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse
from pipeline.domain.identify.identity import split_lead_id
from pipeline.domain.privacy.person import (
    Person,
    as_document,
    contacts_in,
    redact_person,
    scrub_text,
    texts_of,
)


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tables_with_lead_id(warehouse: Warehouse) -> list[tuple[str, dict[str, str]]]:
    """Every MergeTree table with a `lead_id` column, with its columns and types:
    tables added later are covered without a change here. Aggregated tables
    (AggregateFunction states, such as `lead_state`) are left out: they hold no
    text of an event, only what the materialized view extracts – channel,
    campaign, region, product, class, queue, rep, outcome – and no contact."""
    tables = warehouse.query(
        "SELECT database, name FROM system.tables WHERE engine LIKE '%MergeTree' "
        "AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') "
        "AND (database, name) IN "
        "(SELECT database, table FROM system.columns WHERE name = 'lead_id')"
    )
    found = []
    for row in tables:
        columns = warehouse.query(
            "SELECT name, type FROM system.columns WHERE database = "
            f"{sql_string(row['database'])} AND table = {sql_string(row['name'])}"
        )
        kinds = {c["name"]: c["type"] for c in columns}
        if not any(kind.startswith("AggregateFunction(") for kind in kinds.values()):
            found.append((f"{row['database']}.{row['name']}", kinds))
    return found


def _candidates(columns: dict[str, str], person: Person) -> str:
    """SQL condition for a superset of the person's rows: their lead ids, text
    holding one of their addresses, or the digits of one of their phones (any
    spelling). Which of these rows are really the person's – exactly, never by
    substring – `_person_rows` decides with `Person.owns_record`/`mentioned_in`."""
    terms = []
    if person.lead_ids:
        ids = ", ".join(sql_string(str(i)) for i in sorted(person.lead_ids, key=str))
        terms.append(f"toString(lead_id) IN ({ids})")
    for name, kind in columns.items():
        if "String" not in kind:
            continue
        text = f"ifNull(toString(`{name}`), '')"
        original = f"tryBase64Decode(JSONExtractString({text}, 'payload', 'original_b64'))"
        for where in (text, original):
            terms += [
                f"positionCaseInsensitiveUTF8({where}, {sql_string(email)}) > 0"
                for email in sorted(person.emails)
            ]
            terms += [
                f"position(replaceRegexpAll({where}, '[^0-9]', ''), {sql_string(digits)}) > 0"
                for digits in person.phone_digits
            ]
    return " OR ".join(terms) or "0"


def _person_rows(
    rows: list[dict[str, Any]], columns: dict[str, str], person: Person
) -> list[tuple[dict[str, Any], bool]]:
    """The candidate rows that are the person's own (True: their lead, or their
    contact/identity in a text column) or that mention one of their keys (False)."""
    leads = {str(i) for i in person.lead_ids}
    found = []
    for row in rows:
        texts = [v for k, v in row.items() if isinstance(v, str) and "String" in columns.get(k, "")]
        own = row.get("lead_id") in leads or any(person.owns_record(t) for t in texts)
        if own or any(person.mentioned_in(t) for t in texts):
            found.append((row, own))
    return found


def split_offs(warehouse: Warehouse) -> set[tuple[str, str]]:
    """(lead, the lead an inquiry became) for every inquiry an operator split off a
    lead (`leadflow lead split`)."""
    rows = warehouse.query(
        "SELECT toString(lead_id) AS left, "
        "JSONExtractString(payload, 'payload', 'other_lead') AS became "
        f"FROM {EVENTS_TABLE} WHERE event_type = 'IdentityCorrected' "
        "AND JSONExtractString(payload, 'payload', 'action') = 'split_off'"
    )
    return {(r["left"], r["became"]) for r in rows}


def split_off(row: dict[str, Any], splits: set[tuple[str, str]]) -> bool:
    """Whether the row's trace was split off the row's lead: the events it left on
    that lead (its merged capture, say) do not make the lead the person's."""
    if not row.get("trace_id") or not row.get("lead_id"):
        return False
    lead, trace = uuid.UUID(row["lead_id"]), uuid.UUID(row["trace_id"])
    return (str(lead), str(split_lead_id(trace, lead))) in splits


def resolve_person(warehouse: Warehouse, person: Person) -> Person:
    """Everything the warehouse links to the subject: the person's leads (also
    the provisional lead of an inquiry merged into an existing lead, by its
    trace, unless an operator split it off that lead), and the e-mail addresses and
    phone numbers of those leads. Only the
    person's own rows count: someone else's message that quotes their address
    does not make that lead theirs."""
    columns = {"payload": "String", "lead_id": "Nullable(UUID)"}
    splits = split_offs(warehouse)
    for _ in range(3):
        rows = warehouse.query(
            f"SELECT toString(lead_id) AS lead_id, toString(trace_id) AS trace_id, payload "
            f"FROM {EVENTS_TABLE} WHERE {_candidates(columns, person)}"
        )
        found = person
        traces = set()
        for row, own in _person_rows(rows, columns, person):
            if not own:
                continue
            for text in texts_of(row["payload"]):
                found = found.merge(contacts_in(as_document(text)))
            if row["lead_id"] and not split_off(row, splits):
                found = found.merge(Person(lead_ids=frozenset({uuid.UUID(row["lead_id"])})))
            if row["trace_id"]:
                traces.add(row["trace_id"])
        if traces:
            ids = ", ".join(sql_string(t) for t in sorted(traces))
            more = warehouse.query(
                f"SELECT DISTINCT toString(lead_id) AS lead_id, toString(trace_id) AS trace_id "
                f"FROM {EVENTS_TABLE} WHERE toString(trace_id) IN ({ids}) AND lead_id IS NOT NULL"
            )
            leads = (uuid.UUID(r["lead_id"]) for r in more if not split_off(r, splits))
            found = found.merge(Person(lead_ids=frozenset(leads)))
        if found == person:
            return person
        person = found
    return person


def export_person(warehouse: Warehouse, person: Person) -> dict[str, Any]:
    """Art. 15: every stored event of the person, oldest first, with the
    original bytes of rejected messages decoded. Only their own events: another
    lead's event that quotes their address is that other person's data."""
    columns = {"payload": "String", "lead_id": "Nullable(UUID)"}
    rows = warehouse.query(
        "SELECT toString(event_id) AS event_id, event_type, toString(lead_id) AS lead_id, "
        "toString(occurred_at) AS occurred_at, channel, campaign, topic, payload "
        f"FROM {EVENTS_TABLE} FINAL WHERE {_candidates(columns, person)} ORDER BY occurred_at"
    )
    events = []
    for row, own in _person_rows(rows, columns, person):
        if not own:
            continue
        row["data"] = as_document(row.pop("payload"))
        events.append(row)
    return {**person.as_json(), "events": events}


def _stripped(
    row: dict[str, Any], columns: dict[str, str], person: Person, own: bool
) -> dict[str, Any]:
    """The row without the person's data: their own row loses every personal
    field and any text naming them; someone else's row that mentions them only
    loses their addresses and numbers (its own contact, message and names stay)."""
    strip = redact_person if own else scrub_text
    return {
        name: strip(value, person)
        if isinstance(value, str) and "String" in columns.get(name, "")
        else value
        for name, value in row.items()
    }


def erase_in_warehouse(warehouse: Warehouse, person: Person) -> int:
    """Rows of the person, in every table with a lead_id column, are deleted and
    inserted again with their text columns stripped of personal data: the
    events stay countable (ids, times, channel, outcome), the person is gone.
    A row of theirs whose text holds nothing of them (a touch's channel and
    campaign in `lead_touches`) is left as it is.
    Rows of other people are untouched unless they quote one of the person's
    addresses or numbers, which alone is replaced.

    The DELETE names the rows by a hash of their content, not by the address:
    ClickHouse keeps the text of every mutation on disk."""
    changed = 0
    for table, columns in tables_with_lead_id(warehouse):
        row_hash = "cityHash64(toString(tuple(" + ", ".join(f"`{c}`" for c in columns) + ")))"
        candidates = warehouse.query(
            f"SELECT *, {row_hash} AS _row_hash FROM {table} WHERE {_candidates(columns, person)}"
        )
        hashes, stripped = set(), []
        for row, own in _person_rows(candidates, columns, person):
            found = int(row.pop("_row_hash"))
            clean = _stripped(row, columns, person, own)
            if clean != row:  # a row of theirs with nothing personal (a touch's campaign) stays
                hashes.add(found)
                stripped.append(clean)
        if not stripped:
            continue
        listed = ", ".join(map(str, sorted(hashes)))
        warehouse.execute(
            f"ALTER TABLE {table} DELETE WHERE {row_hash} IN ({listed}) SETTINGS mutations_sync = 2"
        )
        warehouse.insert(table, stripped)
        changed += len(stripped)
    return changed
