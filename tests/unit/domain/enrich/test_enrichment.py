from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline.config.reference import reference_data
from pipeline.config.rules import DEFAULT_ENRICHMENT, load_enrichment
from pipeline.config.settings import PROJECT_ROOT, SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.enrich.enrichment import (
    CompanyDirectoryProvider,
    CompanyHistory,
    CompanyRecord,
    CustomerList,
    EmailDomainProvider,
    EnrichmentChain,
    EnrichmentRules,
    Histories,
    InternalHistoryProvider,
    PostalRegionProvider,
)
from pipeline.errors import ConfigError
from schemas.lead import Enrichment, LeadProfile
from tests.support.factories import REFERENCE, captured, enriched

SHIPPED = reference_data()


def test_a_company_address_gives_the_company_domain() -> None:
    company = enriched(contact={"email": "Anna@Firma.DE", "company": "Firma GmbH"}).payload.company
    assert company is not None
    assert (company.domain, company.name, company.segment) == ("firma.de", "Firma GmbH", "b2b")
    assert not company.free_mail


def test_a_free_mail_address_is_b2c_without_a_company_domain() -> None:
    company = enriched(contact={"email": "anna.schmidt@gmail.com"}).payload.company
    assert company is not None
    assert (company.domain, company.free_mail, company.segment) == (None, True, "b2c")


def test_a_disposable_address_is_flagged() -> None:
    company = enriched(contact={"email": "x@mailinator.com"}).payload.company
    assert company is not None and company.disposable and company.domain is None


def test_without_email_a_company_name_still_means_b2b() -> None:
    company = enriched(contact={"phone": "+49 30 1234567", "company": "ACME"}).payload.company
    assert company is not None and company.segment == "b2b"
    unknown = enriched(contact={"phone": "+49 30 1234567"}).payload.company
    assert unknown is not None and unknown.segment == "unknown"


def test_enrichment_keeps_the_lead_and_trace() -> None:
    lead = enriched()
    assert lead.event_type == "LeadEnriched"
    assert lead.payload.contact.first_name == "Anna"


def test_the_directory_fills_the_company_and_says_where_it_came_from() -> None:
    profile = enriched(contact={"email": "Eva@Vertrieb.ACME-Werke.de"}).payload
    company = profile.company
    assert company is not None
    assert (company.name, company.industry, company.employees, company.size_band) == (
        "ACME Werke GmbH",
        "Manufacturing",
        420,
        "250-999",
    )
    sources = {e.field: (e.provider, e.confidence) for e in profile.enrichments}
    assert sources["company.industry"] == ("company_directory", 0.9)
    assert sources["company.domain"] == ("email_domain", 0.9)


def test_what_the_person_said_wins_over_the_directory() -> None:
    profile = enriched(
        contact={"email": "eva@acme-werke.de", "company": "ACME Werke Süd"},
        answers={"industry": "Automotive", "employees": 30},
    ).payload
    assert profile.company is not None and profile.company.name == "ACME Werke Süd"
    assert profile.answers.industry == "Automotive"  # the answer is untouched
    from pipeline.domain.enrich.profile import field_value

    assert field_value(profile, "industry") == "Automotive"
    assert field_value(profile, "employees") == 30


@pytest.mark.parametrize(
    ("code", "state", "territory"),
    [
        ("10115", "Berlin", "DE-Ost"),
        ("80331", "Bayern", "DE-Süd"),
        ("50667", "Nordrhein-Westfalen", "DE-West"),
        ("60311", "Hessen", "DE-Mitte"),
        ("27568", "Bremen", "DE-Nord"),  # Bremerhaven: three-digit row beats the zone "27"
        ("27749", "Niedersachsen", "DE-Nord"),
        ("01067", "Sachsen", "DE-Ost"),
    ],
)
def test_german_postal_codes_give_state_and_territory(
    code: str, state: str, territory: str
) -> None:
    found = PostalRegionProvider(SHIPPED).enrich(
        captured(contact={"email": "a@b.de", "postal_code": code, "country": "DE"}).payload
    )
    values = {e.field: e.value for e in found}
    assert (values["territory.state"], values["territory.territory"]) == (state, territory)


def test_foreign_or_malformed_postal_codes_give_no_territory() -> None:
    provider = PostalRegionProvider(SHIPPED)
    for contact in (
        {"email": "a@b.at", "postal_code": "1010", "country": "AT"},
        {"email": "a@b.de", "postal_code": "1011", "country": "DE"},
        {"email": "a@b.de", "postal_code": "10115", "country": "FR"},
    ):
        assert provider.enrich(captured(contact=contact).payload) == []


def test_the_company_seat_is_a_weaker_guess_for_the_territory() -> None:
    profile = enriched(contact={"email": "eva@acme-werke.de"}).payload
    assert profile.territory is not None and profile.territory.state == "Bayern"
    fact = next(e for e in profile.enrichments if e.field == "territory.state")
    assert fact.confidence == 0.6


def test_internal_history_marks_customers() -> None:
    customers = CustomerList(frozenset({"acme-werke.de"}))
    chain = EnrichmentChain.build(DEFAULT_ENRICHMENT, REFERENCE, customers)
    profile = chain.run(captured(contact={"email": "eva@acme-werke.de"}).payload)
    assert profile.company is not None and profile.company.customer
    other = chain.run(captured(contact={"email": "eva@firma.de"}).payload)
    assert other.company is not None and not other.company.customer


@dataclass(frozen=True)
class SeenBefore:
    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        return CompanyHistory(earlier_inquiries=3, customer=False)


def test_any_history_source_plugs_into_the_history_provider() -> None:
    found = InternalHistoryProvider(SeenBefore()).enrich(enriched().payload)
    assert {e.field: e.value for e in found} == {
        "company.earlier_inquiries": 3,
        "company.customer": False,
    }


def test_each_provider_is_pure_and_alone_testable() -> None:
    profile = captured(contact={"email": "eva@acme-werke.de"}).payload
    assert CompanyDirectoryProvider(REFERENCE).enrich(profile) == []  # no domain known yet
    facts = EmailDomainProvider(REFERENCE).enrich(profile)
    assert [(e.field, e.value) for e in facts] == [
        ("company.domain", "acme-werke.de"),
        ("company.segment", "b2b"),
    ]


class Clearbitish:
    """A plug-in as a user would write one: a factory with options from the YAML."""

    def __init__(self, industry: str, fail: bool = False) -> None:
        self.name = "external_api"
        self.industry, self.fail = industry, fail

    def enrich(self, profile: LeadProfile) -> list[Enrichment]:
        if self.fail:
            raise TimeoutError("the API did not answer")
        return [
            Enrichment(
                provider=self.name, field="company.industry", value=self.industry, confidence=0.95
            )
        ]


def test_a_plug_in_provider_is_named_in_the_yaml_and_outranks_by_confidence() -> None:
    rules = EnrichmentRules.model_validate(
        {
            "providers": [
                "email_domain",
                "company_directory",
                {"use": f"{__name__}:Clearbitish", "options": {"industry": "Energy"}},
            ]
        }
    )
    chain = EnrichmentChain.build(rules, REFERENCE, CustomerList())
    profile = chain.run(captured(contact={"email": "eva@acme-werke.de"}).payload)
    assert profile.company is not None and profile.company.industry == "Energy"
    assert profile.company.name == "ACME Werke GmbH"


def test_a_failing_plug_in_is_skipped_and_the_lead_goes_on() -> None:
    rules = EnrichmentRules.model_validate(
        {
            "providers": [
                "email_domain",
                {"use": f"{__name__}:Clearbitish", "options": {"industry": "X", "fail": True}},
            ]
        }
    )
    chain = EnrichmentChain.build(rules, REFERENCE, CustomerList())
    with capture_logs() as logs:
        profile = chain.run(captured().payload)
    assert [(e["event"], e["provider"]) for e in logs] == [
        ("enrich.provider_failed", "external_api")
    ]
    assert profile.company is not None and profile.company.domain == "firma.de"
    assert profile.company.industry is None


def test_an_unknown_provider_names_the_built_in_ones() -> None:
    with pytest.raises(ValueError, match="company_directory"):
        EnrichmentRules.model_validate({"providers": ["clearbit"]})
    with pytest.raises(ValueError, match="cannot import"):
        EnrichmentRules.model_validate({"providers": ["nowhere.module:Factory"]})


def test_the_profile_matrix_lists_missing_must_should_can_fields() -> None:
    rules = load_enrichment(SHIPPED_RULES)
    chain = EnrichmentChain.build(rules, REFERENCE, CustomerList())
    profile = chain.run(
        captured(
            contact={"email": "eva@acme-werke.de"},
            answers={"purchase_timeframe_months": 3},
            message=None,
        ).payload
    )
    assert profile.missing is not None
    assert profile.missing.must == []
    assert "industry" not in profile.missing.should  # the directory knew it
    assert {"decision_maker", "order_volume_eur"} <= set(profile.missing.should)
    assert "phone" in profile.missing.can
    bare = chain.run(captured(product_interest=[]).payload)
    assert bare.missing is not None
    assert bare.missing.must == ["product_interest", "purchase_timeframe_months"]


def test_a_lead_definition_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enrichment.yaml"
    path.write_text("providers: [email_domain]\nlead_definition: {must: [shoe_size]}\n")
    with pytest.raises(ConfigError, match=r"lead_definition.must.0.*unknown field 'shoe_size'"):
        load_yaml_model(path, EnrichmentRules)


def test_a_missing_directory_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "enrichment.yaml").write_text(
        "providers: [company_directory]\ncompany_directory_file: companies.csv\n"
    )
    rules = load_enrichment(tmp_path)
    with pytest.raises(ConfigError, match=r"companies\.csv"):
        reference_data(rules.company_directory_file)


def test_the_shipped_reference_data() -> None:
    assert {"gmx.de", "web.de", "t-online.de", "gmail.com"} <= SHIPPED.free_mail_domains
    assert not any(d.startswith("#") for d in SHIPPED.free_mail_domains)
    assert "mailinator.com" in SHIPPED.disposable_domains
    assert len(SHIPPED.directory) >= 2000
    assert SHIPPED.directory["nordlicht-software.de"].industry == "IT"  # a demo company
    states = {r.state for r in SHIPPED.postal_regions.values()}
    assert len(states) == 16


def test_the_pipelines_own_record_counts_earlier_inquiries_once_each() -> None:
    record = CompanyRecord().with_inquiry("i1").with_inquiry("i2").with_inquiry("i1")
    assert record.before("i3") == CompanyHistory(earlier_inquiries=2, customer=False)
    assert record.before("i2") == CompanyHistory(earlier_inquiries=1, customer=False)
    assert CompanyRecord().with_inquiry("i1").before("i1") is None  # only itself: nothing earlier
    won = CompanyRecord.merge([record, CompanyRecord(inquiries=["i2", "i9"], customer=True)])
    assert won.before("i3") == CompanyHistory(earlier_inquiries=3, customer=True)


def test_history_sources_combine() -> None:
    both = Histories([SeenBefore(), CustomerList(frozenset({"firma.de"}))])
    assert both.company("firma.de", "x") == CompanyHistory(earlier_inquiries=3, customer=True)


def test_the_shipped_directory_is_what_the_committed_script_generates() -> None:
    import csv
    import importlib.util
    import io

    path = PROJECT_ROOT / "scripts" / "generate_company_directory.py"
    spec = importlib.util.spec_from_file_location("generate_company_directory", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = (PROJECT_ROOT / "pipeline/reference/company_directory.csv").read_text()
    rows = list(csv.reader(io.StringIO(shipped)))
    assert rows[0] == script.HEADER
    assert rows[1:] == script.generate(3000, 2026)
