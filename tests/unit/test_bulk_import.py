"""Bulk import: German and English headers, per-row problems, in-file duplicates."""

from __future__ import annotations

import orjson
import pytest

from pipeline.bulk_import import detect_mapping, read_rows, summarise
from schemas.inquiry import Inquiry
from tests.unit.factories import POLICY

GERMAN = (
    b"Vorname;Nachname;E-Mail-Adresse;Telefon;Firma;PLZ;Ort;Bemerkung\n"
    b"Anna;Schmidt;anna@firma.de;030 1234567;Firma GmbH;10115;Berlin;Angebot bitte\n"
    b"Ben;Kurz;ben(at)firma.de;;;;;\n"
    b";;;;;;;\n"
    b"Anna;Schmidt;ANNA@firma.de;;;;;\n"
)


def test_headers_are_detected_in_german_and_english() -> None:
    assert detect_mapping(["Vorname", "E-Mail", "PLZ", "Ort", "Sonstiges"], {}) == {
        0: "first_name",
        1: "email",
        2: "postal_code",
        3: "city",
    }
    assert detect_mapping(["First Name", "Email Address", "Zip Code"], {}) == {
        0: "first_name",
        1: "email",
        2: "postal_code",
    }


def test_an_override_wins_and_bad_overrides_are_errors() -> None:
    assert detect_mapping(["Kontakt", "Mail"], {"email": "Kontakt"}) == {0: "email"}
    with pytest.raises(ValueError, match="no column"):
        detect_mapping(["Mail"], {"email": "Fehlt"})
    with pytest.raises(ValueError, match="unknown field"):
        detect_mapping(["Mail"], {"shoe": "Mail"})


def test_rows_become_inquiries_with_problems_and_duplicates_counted() -> None:
    rows = list(read_rows(GERMAN, "trade_fair", "it-sa-2026", {}, POLICY))
    assert [r.number for r in rows] == [2, 3, 5]  # the empty row is skipped
    first = Inquiry.model_validate_json(rows[0].value)
    assert first.source.channel == "trade_fair" and first.source.campaign == "it-sa-2026"
    assert (first.contact.city, first.message) == ("Berlin", "Angebot bitte")
    summary = summarise(rows)
    assert (summary.accepted, summary.rejected, summary.duplicates) == (1, 1, 1)
    assert summary.errors[0][0] == 3 and summary.errors[0][1][0].code == "email_invalid"


def test_the_same_file_gives_the_same_inquiry_ids() -> None:
    once = [orjson.loads(r.value)["inquiry_id"] for r in read_rows(GERMAN, "x", None, {}, POLICY)]
    again = [orjson.loads(r.value)["inquiry_id"] for r in read_rows(GERMAN, "x", None, {}, POLICY)]
    assert once == again and len(set(once)) == len(once)
