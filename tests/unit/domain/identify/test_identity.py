"""Identity resolution: one person, one lead, whichever channel and key they come by."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.domain.identify.identity import (
    MAX_KEYS_OF_A_KIND,
    MAX_WAITING_ACTIVITIES,
    IdentityBook,
    KnownPerson,
    claimed,
    company_key,
    correct_identity,
    fold,
    identity_key,
    identity_keys,
    pseudonym,
    route_activity,
    split_lead_id,
)
from pipeline.reporting.timeline import summarise
from schemas.envelope import EventBase
from schemas.inputs import Activity
from schemas.inquiry import Contact
from schemas.lead import (
    ActivityRecorded,
    ActivityUnattached,
    CorrectIdentity,
    IdentityClaimed,
    IdentityCorrected,
    LeadCaptured,
)
from schemas.rejected import MessageRejected
from tests.support.factories import AT, NOW, accepted, captured, identify, new_book

ANNA = {"first_name": "Anna", "last_name": "Schmidt", "company": "Firma GmbH"}


def lead_of(events: list[EventBase]) -> LeadCaptured:
    [lead] = [e for e in events if isinstance(e, LeadCaptured)]
    return lead


def test_the_identity_is_the_normalised_email_else_the_phone() -> None:
    assert accepted(contact={"email": "Anna@FIRMA.de"}).identity == "email:anna@firma.de"
    assert accepted(contact={"phone": "030 1234567"}).identity == "phone:+49301234567"
    assert identity_key(Contact()) is None


def test_an_inquiry_walks_email_then_phone_then_company() -> None:
    first = accepted(contact={**ANNA, "email": "anna@firma.de", "phone": "030 1234567"})
    assert first.identity == "email:anna@firma.de"
    assert first.pending == ["phone:+49301234567", "company:firma"]


def test_the_company_key_needs_a_person_and_drops_the_legal_form() -> None:
    assert company_key(Contact(company="Müller & Söhne GmbH & Co. KG", last_name="X")) == (
        "company:mueller soehne"
    )
    assert company_key(Contact(company="Firma GmbH")) is None
    assert company_key(Contact(last_name="Schmidt")) is None


def test_the_same_person_by_another_channel_and_spelling_is_one_lead() -> None:
    book = new_book()
    form = lead_of(identify(book, accepted(contact={"email": "anna.schmidt@firma.de"})))
    fair = accepted(
        inquiry_id="fair-7",
        source={"channel": "trade_fair"},
        contact={"email": " Anna.Schmidt@Firma.DE "},
    )
    second = lead_of(identify(book, fair))
    assert second.lead_id == form.lead_id and second.merged and second.matched_on == "email"
    assert second.payload.inquiry_id == "fair-7" and second.source.channel == "trade_fair"
    assert second.trace_id == fair.trace_id != form.trace_id


def test_a_new_person_keeps_the_lead_of_the_inquiry_and_a_redelivery_repeats_itself() -> None:
    book = new_book()
    first = accepted(contact={**ANNA, "email": "anna@firma.de", "phone": "030 1234567"})
    claims: list[IdentityClaimed] = []
    events = identify(book, first, claims=claims)
    lead = lead_of(events)
    assert (lead.lead_id, lead.merged, lead.matched_on) == (first.lead_id, False, None)
    assert claims == []  # claimed on the way; no activities waited: nothing to confirm
    assert identify(book, first) == events  # every step again: the same events
    keys = {"email:anna@firma.de", "phone:+49301234567", "company:firma"}
    assert set(book.leads) == {pseudonym(k) for k in keys}  # no address in a table key
    assert book.stored("email:anna@firma.de") == {
        "lead": str(lead.lead_id),
        "key": "email:anna@firma.de",
    }
    assert book.stored("company:firma") == [
        {
            "name": "anna schmidt",
            "lead": str(lead.lead_id),
            "person": "email:anna@firma.de",
            "keys": ["email:anna@firma.de", "phone:+49301234567"],
        }
    ]


def test_a_known_phone_finds_the_lead_and_the_new_address_joins_it() -> None:
    book = new_book()
    form = lead_of(
        identify(book, accepted(contact={"email": "anna@firma.de", "phone": "0301234567"}))
    )
    call = accepted(
        inquiry_id="call-1", contact={"email": "a.schmidt@gmail.com", "phone": "+49 30 1234567"}
    )
    by_phone = lead_of(identify(book, call))
    assert (by_phone.lead_id, by_phone.matched_on) == (form.lead_id, "phone")
    # the e-mail the walk claimed for its own lead now points at the person's lead
    assert book.stored("email:a.schmidt@gmail.com") == {
        "lead": str(form.lead_id),
        "key": "email:a.schmidt@gmail.com",
    }
    later = lead_of(
        identify(book, accepted(inquiry_id="mail-2", contact={"email": "a.schmidt@gmail.com"}))
    )
    assert (later.lead_id, later.matched_on) == (form.lead_id, "email")


def test_a_misspelt_last_name_matches_only_where_the_operator_allows_it() -> None:
    typo = {"first_name": "anna", "last_name": "Schmitt", "company": "FIRMA", "phone": "0301234"}
    strict = new_book()  # the default: the same full name
    lead_of(identify(strict, accepted(contact={**ANNA, "email": "anna@firma.de"})))
    assert not lead_of(identify(strict, accepted(inquiry_id="fair-1", contact=typo))).merged

    lenient = IdentityBook(leads={}, waiting={}, name_match=80)
    form = lead_of(identify(lenient, accepted(contact={**ANNA, "email": "anna@firma.de"})))
    same = lead_of(identify(lenient, accepted(inquiry_id="fair-1", contact=typo)))
    assert (same.lead_id, same.matched_on, same.match_score) == (form.lead_id, "company", 85.7)
    colleague = accepted(
        inquiry_id="fair-2",
        contact={
            "first_name": "Peter",
            "last_name": "Schmidt",
            "company": "Firma",
            "phone": "0301235",
        },
    )
    assert not lead_of(identify(lenient, colleague)).merged  # another first name
    elsewhere = accepted(
        inquiry_id="fair-3", contact={**ANNA, "company": "Andere AG", "phone": "030 999"}
    )
    assert not lead_of(identify(lenient, elsewhere)).merged


def test_a_key_stays_with_its_first_lead_unless_the_walk_gives_it_back() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    def claim(key: str, lead: uuid.UUID, replaces: uuid.UUID | None = None) -> IdentityClaimed:
        return IdentityClaimed(
            event_id=uuid.uuid4(),
            identity=key,
            lead_id=lead,
            replaces=replaces,
            name="anna schmidt",
            person="email:a@b.de",
            occurred_at=NOW,
            emitted_at=NOW,
        )

    mine = {"lead": str(first), "key": "email:a@b.de"}
    assert claimed(None, claim("email:a@b.de", first)) == mine
    assert claimed(mine, claim("email:a@b.de", second)) is None
    assert claimed(mine, claim("email:a@b.de", second, replaces=first)) == {
        "lead": str(second),
        "key": "email:a@b.de",
    }
    people = claimed(None, claim("company:firma", first))
    anna = {"name": "anna schmidt", "person": "email:a@b.de", "keys": ["email:a@b.de"]}
    assert people == [{**anna, "lead": str(first)}]
    assert claimed(people, claim("company:firma", first)) is None
    assert claimed(people, claim("company:firma", second, replaces=first)) == [
        {**anna, "lead": str(second)}
    ]


def activity(activity_id: str = "pv-1", **fields: object) -> Activity:
    return Activity.model_validate(
        {"activity_id": activity_id, "occurred_at": NOW, "activity_type": "page_view", **fields}
    )


def test_an_activity_goes_to_its_lead_or_its_person_or_is_rejected() -> None:
    lead = uuid.uuid4()
    direct = route_activity(activity(lead_id=lead), b"{}", AT, "DE", NOW)
    assert isinstance(direct, ActivityRecorded) and direct.lead_id == lead
    by_mail = route_activity(activity(email=" Anna@Firma.DE"), b"{}", AT, "DE", NOW)
    assert isinstance(by_mail, ActivityUnattached) and by_mail.identity == "email:anna@firma.de"
    by_phone = route_activity(activity(phone="030 1234567"), b"{}", AT, "DE", NOW)
    assert isinstance(by_phone, ActivityUnattached) and by_phone.identity == "phone:+49301234567"
    nobody = route_activity(activity(phone="12"), b'{"raw": 1}', AT, "DE", NOW)
    assert isinstance(nobody, MessageRejected)
    assert nobody.payload.reasons[0].code == "activity_without_person"


def test_an_anonymous_visitor_gets_their_history_when_they_fill_a_form() -> None:
    book = new_book()
    views = [
        route_activity(activity(f"pv-{i}", email="anna@firma.de"), b"{}", AT, "DE", NOW)
        for i in range(3)
    ]
    assert identify(book, *views, views[0]) == []  # kept, the redelivered one once
    claims: list[IdentityClaimed] = []
    form = accepted(contact={"email": "Anna@firma.de", "phone": "030 1234567"})
    events = identify(book, form, claims=claims)
    lead = lead_of(events)
    history = [e for e in events if isinstance(e, ActivityRecorded)]
    assert [a.payload.activity_id for a in history] == ["pv-0", "pv-1", "pv-2"]
    assert {a.lead_id for a in history} == {lead.lead_id}
    # confirmed where the views waited, not at the phone or the company
    assert [c.identity for c in claims] == ["email:anna@firma.de"]
    assert not book.waiting
    later = route_activity(activity("pv-9", phone="+49301234567"), b"{}", AT, "DE", NOW)
    [known] = identify(book, later)
    assert isinstance(known, ActivityRecorded) and known.lead_id == lead.lead_id


def test_activities_waiting_for_a_key_claimed_later_in_a_walk_follow_the_person() -> None:
    book = new_book()
    form = lead_of(
        identify(book, accepted(contact={"email": "anna@firma.de", "phone": "030 1234567"}))
    )
    wait = route_activity(activity("wa-1", email="anna.private@web.de"), b"{}", AT, "DE", NOW)
    assert identify(book, wait) == []
    call = accepted(
        inquiry_id="c", contact={"email": "anna.private@web.de", "phone": "030 1234567"}
    )
    events = identify(book, call)
    [recorded] = [e for e in events if isinstance(e, ActivityRecorded)]
    assert recorded.lead_id == form.lead_id == lead_of(events).lead_id


def test_an_unknown_person_may_keep_only_so_many_activities() -> None:
    book = new_book()
    for i in range(MAX_WAITING_ACTIVITIES):
        identify(book, route_activity(activity(f"a{i}", email="bot@x.de"), b"{}", AT, "DE", NOW))
    one_more = route_activity(
        activity("last", email="bot@x.de"), b"{}", AT, "DE", NOW + timedelta(1)
    )
    [rejected] = identify(book, one_more)
    assert isinstance(rejected, MessageRejected)
    assert rejected.payload.reasons[0].code == "too_many_unattached_activities"
    assert b"last" in base64.b64decode(rejected.payload.original_b64)


@given(st.emails())
def test_identity_keys_ignore_case(address: str) -> None:
    upper = identity_key(Contact(email=address.upper()))
    assert upper == identity_key(Contact(email=address.lower()))
    assert upper is not None and upper == upper.casefold()


@given(st.text(max_size=40))
def test_folding_is_stable_and_ignores_case_and_spacing(text: str) -> None:
    folded = fold(text)
    assert fold(folded) == folded
    assert fold(text.upper()) == fold(text.lower()) or "ß" in text.casefold() or "ı" in text
    assert fold(f"  {text}  ") == folded
    assert set(folded) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")


@given(st.lists(st.sampled_from(["email:a@b.de", "phone:+4930123", "company:firma"]), unique=True))
def test_every_key_of_a_contact_is_one_of_its_fields(kinds: list[str]) -> None:
    contact = Contact(
        email="a@b.de" if "email:a@b.de" in kinds else None,
        phone="+4930123" if "phone:+4930123" in kinds else None,
        company="Firma" if "company:firma" in kinds else None,
        last_name="Schmidt" if "company:firma" in kinds else None,
    )
    assert sorted(identity_keys(contact)) == sorted(kinds)


NAMESAKES = [  # one letter apart, each pair at one company, each their own address and phone
    (("Max", "Hoffmann"), ("Mia", "Hoffmann")),
    (("Lea", "Koch"), ("Lena", "Koch")),
    (("Hannah", "Schäfer"), ("Anna", "Schäfer")),
]


def test_namesakes_at_one_company_with_their_own_address_and_phone_are_two_leads() -> None:
    book = new_book()
    for n, pair in enumerate(NAMESAKES):
        one, two = (
            lead_of(
                identify(
                    book,
                    accepted(
                        inquiry_id=f"{first}-{n}",
                        contact={
                            "first_name": first,
                            "last_name": last,
                            "email": f"{first}.{n}@hk.de",
                            "phone": f"030 1234{n}{i}",
                            "company": f"Hoffmann Koch {n} GmbH",
                        },
                    ),
                )
            )
            for i, (first, last) in enumerate(pair)
        )
        assert not two.merged and two.lead_id != one.lead_id, pair


def test_the_same_name_with_another_address_is_another_person() -> None:
    book = new_book()
    first = lead_of(identify(book, accepted(contact={**ANNA, "email": "anna@firma.de"})))
    other = accepted(inquiry_id="f", contact={**ANNA, "email": "anna.schmidt@web.de"})
    namesake = lead_of(identify(book, other))
    assert not namesake.merged and namesake.lead_id != first.lead_id
    by_phone = accepted(inquiry_id="g", contact={**ANNA, "phone": "030 1234567"})
    # two Anna Schmidts are known at Firma now: her name alone cannot tell which one called
    assert not lead_of(identify(book, by_phone)).merged


def test_one_record_with_only_the_address_another_with_only_the_phone_are_one_person() -> None:
    book = new_book()
    jonas = {"first_name": "Jonas", "last_name": "Weber", "company": "Weber & Söhne GmbH"}
    first = lead_of(identify(book, accepted(contact={**jonas, "email": "jonas@weber.de"})))
    spelt = {"first_name": "JONAS", "last_name": "weber", "company": "Weber und Söhne GmbH"}
    fair = accepted(inquiry_id="fair-1", contact={**spelt, "phone": "0171 2345678"})
    same = lead_of(identify(book, fair))
    assert (same.lead_id, same.merged, same.matched_on) == (first.lead_id, True, "company")
    assert same.match_score == 100
    # the phone is his now: another Jonas Weber there with another phone is someone else
    other = accepted(
        inquiry_id="fair-2",
        contact={**fair.payload.contact.model_dump(), "phone": "0171 9999999"},
    )
    assert not lead_of(identify(book, other)).merged


def test_company_names_are_one_key_across_and_und_and_legal_forms() -> None:
    spellings = ["Weber & Söhne GmbH", "Weber und Söhne GmbH", "WEBER AND SOEHNE", "Weber+Söhne"]
    keys = {company_key(Contact(company=name, last_name="X")) for name in spellings}
    assert keys == {"company:weber soehne"}


def correction(
    action: str, lead: uuid.UUID, captures: list[LeadCaptured], **more: object
) -> CorrectIdentity:
    return CorrectIdentity.model_validate(
        {
            "event_id": uuid.uuid4(),
            "occurred_at": NOW,
            "emitted_at": NOW,
            "action": action,
            "lead": lead,
            "captures": captures,
            **more,
        }
    )


def test_an_operator_splits_a_wrongly_merged_namesake_off_into_a_lead_of_his_own() -> None:
    book = new_book()
    father = {"first_name": "Max", "last_name": "Hoffmann", "company": "Hoffmann GmbH"}
    first = lead_of(identify(book, accepted(contact={**father, "email": "max@hoffmann.de"})))
    son = accepted(inquiry_id="fair-9", contact={**father, "phone": "0171 2345678"})
    merged = lead_of(identify(book, son))
    assert merged.merged and merged.lead_id == first.lead_id  # no evidence against it

    events = identify(book, *correct_identity(correction("split", first.lead_id, [merged]), NOW))
    again = lead_of(events)
    assert again.lead_id == split_lead_id(son.trace_id, first.lead_id) != first.lead_id
    assert (again.trace_id, again.merged, again.payload) == (son.trace_id, False, son.payload)
    facts = {e.lead_id: e.payload for e in events if isinstance(e, IdentityCorrected)}
    assert facts[first.lead_id].action == "split_off" and facts[again.lead_id].keys == 2
    # his phone finds his own lead now; the father keeps his address and his entry
    call = lead_of(identify(book, accepted(inquiry_id="c", contact={"phone": "+49171 2345678"})))
    assert (call.lead_id, call.matched_on) == (again.lead_id, "phone")
    mail = lead_of(identify(book, accepted(inquiry_id="m", contact={"email": "max@hoffmann.de"})))
    assert mail.lead_id == first.lead_id
    people = cast(list[dict[str, object]], book.stored("company:hoffmann"))
    assert [(p["lead"], p["keys"]) for p in people] == [
        (str(first.lead_id), ["email:max@hoffmann.de"]),
        (str(again.lead_id), ["phone:+491712345678"]),
    ]
    # two Max Hoffmanns are known there now: a third record by name alone is nobody's
    third = accepted(inquiry_id="t", contact={**father, "phone": "0171 9999999"})
    assert not lead_of(identify(book, third)).merged


def test_an_operator_merges_two_leads_of_one_person() -> None:
    book = new_book()
    work = lead_of(identify(book, accepted(contact={**ANNA, "email": "anna@firma.de"})))
    private = lead_of(
        identify(book, accepted(inquiry_id="p", contact={**ANNA, "email": "anna@web.de"}))
    )
    assert not private.merged  # another address: another person, as far as anyone knew
    command = correction("merge", work.lead_id, [private], other_lead=private.lead_id)
    events = identify(book, *correct_identity(command, NOW))
    facts = {e.lead_id: e.payload.action for e in events if isinstance(e, IdentityCorrected)}
    assert facts == {work.lead_id: "merged_in", private.lead_id: "merged_into"}
    assert not [e for e in events if isinstance(e, LeadCaptured)]
    later = lead_of(identify(book, accepted(inquiry_id="l", contact={"email": "anna@web.de"})))
    assert (later.lead_id, later.matched_on) == (work.lead_id, "email")
    people = cast(list[dict[str, object]], book.stored("company:firma"))
    assert [(p["lead"], p["name"]) for p in people] == [(str(work.lead_id), "anna schmidt")]
    assert people[0]["keys"] == ["email:anna@firma.de", "email:anna@web.de"]


def test_a_correction_names_consistent_leads() -> None:
    lead = captured()
    with pytest.raises(ValidationError, match="merged into"):
        correction("split", lead.lead_id, [lead])  # it started the lead
    with pytest.raises(ValidationError, match="another lead"):
        correction("merge", lead.lead_id, [lead], other_lead=lead.lead_id)
    with pytest.raises(ValidationError, match="captures of"):
        correction("merge", uuid.uuid4(), [lead], other_lead=uuid.uuid4())


def test_the_timeline_says_why_an_inquiry_was_merged_and_what_an_operator_corrected() -> None:
    merge = {"merged": True, "matched_on": "company", "match_score": 100.0}
    assert summarise("LeadCaptured", {**merge, "payload": {"inquiry_id": "fair-9"}}) == (
        "inquiry fair-9 merged into this lead (matched on company, name score 100)"
    )
    split = {"action": "split_off", "other_lead": "L2", "inquiry_id": "fair-9", "keys": 2}
    assert summarise("IdentityCorrected", {"payload": split}) == (
        "inquiry fair-9 split off into lead L2 by an operator"
    )


def test_a_person_at_a_company_keeps_a_bounded_number_of_keys_of_each_kind() -> None:
    people: list[KnownPerson] | None = None
    for n in range(MAX_KEYS_OF_A_KIND + 3):
        claim = IdentityClaimed(
            event_id=uuid.uuid4(),
            identity="company:firma",
            lead_id=uuid.UUID(int=1),
            name="anna schmidt",
            keys=[f"email:a{n}@firma.de"] + (["phone:+4930123"] if n == 7 else []),
            occurred_at=NOW,
            emitted_at=NOW,
        )
        people = cast(list[KnownPerson], claimed(people, claim) or people)
    [anna] = cast(list[KnownPerson], people)
    keys = anna.get("keys", [])
    assert len([k for k in keys if k.startswith("email:")]) == MAX_KEYS_OF_A_KIND
    assert "phone:+4930123" in keys  # her phone is kept however many addresses she used
