"""Typed tables keep each table's stored form (state written before they existed
must still load) and give agents models, not JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.worker.tables import TypedTable, json_text, json_texts


class Assigned(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_type: Literal["assigned"] = "assigned"
    rep: str


class Routed(BaseModel):
    event_type: Literal["routed"] = "routed"
    queue: str


Decision = Annotated[Assigned | Routed, Field(discriminator="event_type")]


def test_a_model_kept_as_json_text_is_stored_as_before_and_loads_old_entries() -> None:
    raw: dict[Any, Any] = {"old": '{"event_type": "routed", "queue": "berlin"}'}
    table: TypedTable[Any] = TypedTable(raw, json_text(Decision, empty=True), "json")
    assert table.get("old") == Routed(queue="berlin")
    table["new"] = Assigned(rep="bea", note="extra fields too")
    assert raw["new"] == Assigned(rep="bea", note="extra fields too").model_dump_json()
    assert table["new"] == Assigned(rep="bea", note="extra fields too")
    table["unfilled"] = None
    assert raw["unfilled"] == ""
    assert "unfilled" in table and table.get("unfilled") is None
    assert table.get("missing") is None and "missing" not in table


def test_a_list_of_json_texts_and_plain_json_models() -> None:
    raw: dict[Any, Any] = {}
    waiting: TypedTable[list[Routed]] = TypedTable(raw, json_texts(Routed), "json")
    waiting["pool"] = [Routed(queue="a"), Routed(queue="b")]
    assert raw["pool"] == [Routed(queue="a").model_dump_json(), Routed(queue="b").model_dump_json()]
    assert waiting["pool"] == [Routed(queue="a"), Routed(queue="b")]
    plain: dict[Any, Any] = {}
    states: TypedTable[Routed] = TypedTable(plain, Routed, "json")
    states["q"] = Routed(queue="c")
    assert plain["q"] == {"event_type": "routed", "queue": "c"}
    assert dict(states.items())["q"] == Routed(queue="c")


def test_a_bytes_table_keys_and_values_are_bytes() -> None:
    raw: dict[Any, Any] = {}
    table: TypedTable[Routed] = TypedTable(raw, Routed, "bytes")
    table["lead"] = Routed(queue="x")
    assert raw == {b"lead": b'{"event_type":"routed","queue":"x"}'}
    assert table["lead"] == Routed(queue="x")
    del table["lead"]
    assert raw == {} and "lead" not in table
