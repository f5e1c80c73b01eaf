from pipeline.enrichment import ReferenceData
from tests.unit.factories import enriched


def test_a_company_address_gives_the_company_domain() -> None:
    company = enriched(contact={"email": "Anna@Firma.DE", "company": "Firma GmbH"}).payload.company
    assert company is not None
    assert (company.domain, company.name, company.segment) == ("firma.de", "Firma GmbH", "b2b")
    assert not company.free_mail


def test_a_free_mail_address_is_b2c_without_a_company_domain() -> None:
    company = enriched(contact={"email": "anna.schmidt@gmail.com"}).payload.company
    assert company is not None
    assert (company.domain, company.free_mail, company.segment) == (None, True, "b2c")


def test_without_email_a_company_name_still_means_b2b() -> None:
    company = enriched(contact={"phone": "+49 30 1234567", "company": "ACME"}).payload.company
    assert company is not None and company.segment == "b2b"
    unknown = enriched(contact={"phone": "+49 30 1234567"}).payload.company
    assert unknown is not None and unknown.segment == "unknown"


def test_enrichment_keeps_the_lead_and_trace() -> None:
    lead = enriched()
    assert lead.event_type == "LeadEnriched"
    assert lead.payload.contact.first_name == "Anna"


def test_the_shipped_free_mail_list_knows_the_big_german_providers() -> None:
    shipped = ReferenceData.shipped().free_mail_domains
    assert {"gmx.de", "web.de", "t-online.de", "gmail.com"} <= shipped
    assert not any(d.startswith("#") for d in shipped)
