"""Bulk import: German and English headers, per-row problems, in-file duplicates."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from pipeline.adapters.bulk_import import (
    csv_table,
    detect_mapping,
    file_id,
    placed,
    placement_line,
    read_rows,
    rows_from_file,
    summarise,
)
from pipeline.domain.spreadsheet import spreadsheet_safe
from schemas.inquiry import Inquiry
from schemas.lead import LeadCaptured
from tests.support.factories import POLICY
from tests.support.factories import captured as captured_lead


def captured(trace_id: uuid.UUID) -> LeadCaptured:
    return captured_lead().model_copy(update={"trace_id": trace_id})


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
    rows = list(
        read_rows(csv_table(GERMAN), file_id(GERMAN), "trade_fair", "it-sa-2026", {}, POLICY)
    )
    assert [r.number for r in rows] == [2, 3, 5]  # the empty row is skipped
    first = Inquiry.model_validate_json(rows[0].value)
    assert first.source.channel == "trade_fair" and first.source.campaign == "it-sa-2026"
    assert (first.contact.city, first.message) == ("Berlin", "Angebot bitte")
    summary = summarise(rows)
    assert (summary.accepted, summary.rejected, summary.duplicates) == (1, 1, 1)
    assert summary.errors[0][0] == 3 and summary.errors[0][1][0].code == "email_invalid"


def test_the_same_file_gives_the_same_inquiry_ids() -> None:
    once = [
        orjson.loads(r.value)["inquiry_id"]
        for r in read_rows(csv_table(GERMAN), file_id(GERMAN), "x", None, {}, POLICY)
    ]
    again = [
        orjson.loads(r.value)["inquiry_id"]
        for r in read_rows(csv_table(GERMAN), file_id(GERMAN), "x", None, {}, POLICY)
    ]
    assert once == again and len(set(once)) == len(once)


def test_an_xlsx_sheet_is_read_like_a_csv(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Vorname", "E-Mail", "PLZ", "Ort"])
    sheet.append(["Anna", "anna@firma.de", 10115, "Berlin"])  # a number typed as such
    path = tmp_path / "fair.xlsx"
    book.save(path)
    (row,) = rows_from_file(path, "trade_fair", None, {}, POLICY)
    inquiry = Inquiry.model_validate_json(row.value)
    assert (inquiry.contact.postal_code, inquiry.contact.first_name) == ("10115", "Anna")
    assert not row.problems


MAIL = b"""From: Jana Roth <jana.roth@firma.de>
To: info@leadflow.example
Subject: Angebot CRM
Message-ID: <abc-1@firma.de>
Content-Type: text/plain; charset=utf-8

Bitte schicken Sie mir ein Angebot.
"""


def test_an_eml_becomes_an_email_inquiry(tmp_path: Path) -> None:
    path = tmp_path / "anfrage.eml"
    path.write_bytes(MAIL)
    (row,) = rows_from_file(path, "ignored", None, {}, POLICY)
    inquiry = Inquiry.model_validate_json(row.value)
    assert inquiry.source.channel == "email" and inquiry.inquiry_id == "mail-abc-1@firma.de"
    assert (inquiry.contact.first_name, inquiry.contact.last_name) == ("Jana", "Roth")
    assert inquiry.contact.email == "jana.roth@firma.de"
    assert inquiry.message == "Angebot CRM\n\nBitte schicken Sie mir ein Angebot."
    assert row.identity == "email:jana.roth@firma.de"


def test_an_mbox_gives_one_inquiry_per_mail(tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    other = MAIL.replace(b"abc-1", b"abc-2").replace(b"jana.roth", b"no-address")
    other = other.replace(b"<no-address@firma.de>", b"<>")
    path.write_bytes(
        b"From x Mon Nov 23 00:00:00 2026\n" + MAIL + b"\nFrom y Mon Nov 23 00:00:00 2026\n" + other
    )
    rows = list(rows_from_file(path, "ignored", None, {}, POLICY))
    assert [r.number for r in rows] == [1, 2]
    assert not rows[0].problems
    assert [p.code for p in rows[1].problems] == ["no_contact_channel"]


@given(st.text())
def test_an_error_file_cell_never_starts_a_formula(value: str) -> None:
    cell = spreadsheet_safe(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell.endswith(value)


def test_formula_injection_is_shown_as_text() -> None:
    assert (
        spreadsheet_safe('=HYPERLINK("http://evil.example")')
        == '\'=HYPERLINK("http://evil.example")'
    )
    assert spreadsheet_safe("Müller GmbH") == "Müller GmbH"


def test_the_import_counts_new_leads_and_rows_merged_into_existing_ones() -> None:
    rows = list(read_rows(csv_table(GERMAN), file_id(GERMAN), "trade_fair", None, {}, POLICY))
    anna, bad, again = rows
    assert bad.problems and anna.trace and again.trace and anna.trace != again.trace
    first = captured(trace_id=uuid.UUID(anna.trace))
    repeat = first.model_copy(
        update={"trace_id": uuid.UUID(again.trace), "merged": True, "matched_on": "email"}
    )
    placement = placed(rows, {anna.trace: first, again.trace: repeat})
    assert (placement.new_leads, dict(placement.merged), placement.merged_into_this_file) == (
        1,
        {"email": 1},
        1,
    )
    assert placement_line(placement) == (
        "1 new leads, 1 merged into existing leads (1 on email; 1 into a lead of an earlier "
        "row), 0 excluded (answered, no lead)"
    )
    returning = first.model_copy(update={"lead_id": uuid.uuid4(), "merged": True})
    waiting = placed(rows, {anna.trace: returning.model_copy(update={"matched_on": "company"})})
    assert (dict(waiting.merged), waiting.merged_into_this_file, waiting.pending) == (
        {"company": 1},
        0,
        1,
    )
    assert placed(rows, {anna.trace: None}).excluded == 1
