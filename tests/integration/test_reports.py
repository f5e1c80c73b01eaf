"""Every report against figures worked out by hand on the fixed scenario
(tests/support/scenario.py), on the real embedded ClickHouse engine and, where
LEADFLOW_TEST_CLICKHOUSE_URL names a throwaway ClickHouse server (its database
`leadflow` is dropped), on that server through clickhouse-connect."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    COSTS_TABLE,
    EVENTS_TABLE,
    EmbeddedWarehouse,
    ServerWarehouse,
    Warehouse,
    analyst_query,
    load_migrations,
    migrate,
)
from pipeline.config.settings import PROJECT_ROOT
from pipeline.domain.report.attribution import MODELS
from pipeline.errors import BadRequest
from pipeline.reporting.reports import ReportParams, parse_params, run_report
from tests.support.scenario import COSTS, INPUTS, lead_id, scenario

SERVER_URL = os.environ.get("LEADFLOW_TEST_CLICKHOUSE_URL")


@pytest.fixture(scope="module", params=["embedded", "server"])
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    w: Warehouse
    if request.param == "server":
        if not SERVER_URL:
            pytest.skip(
                "LEADFLOW_TEST_CLICKHOUSE_URL is not set: no ClickHouse server here, "
                "the same reports ran on the embedded engine"
            )
        w = ServerWarehouse(SERVER_URL)
        w.execute("DROP DATABASE IF EXISTS leadflow SYNC")
    else:
        w = EmbeddedWarehouse(tmp_path_factory.mktemp("warehouse"))
    migrate(w, load_migrations())
    w.insert(COSTS_TABLE, COSTS.rows())
    rows = scenario().rows()
    w.insert(EVENTS_TABLE, rows[: len(rows) // 2])
    w.insert(EVENTS_TABLE, rows[len(rows) // 2 :])
    w.insert(EVENTS_TABLE, rows[::3])  # a sink retry after an unknown outcome: repeats
    yield w
    w.close()


def report(w: Warehouse, name: str, **params: str) -> list[dict]:  # type: ignore[type-arg]
    return run_report(w, name, parse_params(params), INPUTS)


def keyed(rows: list[dict], *keys: str) -> dict:  # type: ignore[type-arg]
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def test_repeated_events_count_once(warehouse: Warehouse) -> None:
    leads = warehouse.query("SELECT count() AS n, sum(inquiries) AS i FROM leadflow.leads")
    assert leads == [{"n": 6, "i": 9}]  # A has 3 inquiries, B 2


def test_lead_state_holds_source_stages_owner_and_outcome(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "SELECT toString(lead_id) AS lead_id, source_channel, last_channel, region, product, "
        "path, owner, queue, outcome, amount_eur, toString(won_at) AS won_at, sla_breaches "
        "FROM leadflow.leads"
    )
    lead = {r["lead_id"]: r for r in rows}
    a, b, c, f = (lead[str(lead_id(name))] for name in "ABCF")
    assert (a["source_channel"], a["last_channel"], a["path"]) == (
        "web_form",
        "paid_ads",
        "nurtured",
    )
    assert (a["region"], a["product"], a["owner"], a["queue"]) == (
        "Nord",
        "crm-suite",
        "lena.fischer",
        "dach",
    )
    assert (a["outcome"], a["amount_eur"], a["won_at"]) == ("won", 1000, "2026-11-16 09:00:00.000")
    assert (b["path"], b["product"]) == ("fast_lane", "analytics")
    assert (c["outcome"], c["amount_eur"], c["path"]) == ("lost", 0, "direct")
    assert (f["owner"], f["sla_breaches"]) == ("paul.becker", 2)  # reassigned after 2 breaches


def test_sources_per_day_and_channel(warehouse: Warehouse) -> None:
    rows = report(warehouse, "sources", by="channel", grain="day")
    assert [(r["period"], r["channel"], r["leads"], r["mql"], r["won"]) for r in rows] == [
        ("2026-11-02", "web_form", 1, 1, 1),
        ("2026-11-03", "trade_fair", 1, 1, 0),
        ("2026-11-03", "web_form", 1, 1, 1),
        ("2026-11-04", "email", 1, 0, 0),
        ("2026-11-04", "trade_fair", 1, 1, 1),
        ("2026-11-04", "web_form", 1, 0, 0),
    ]
    weekly = report(warehouse, "sources", by="all", grain="week")
    assert [(r["period"], r["leads"]) for r in weekly] == [("2026-11-02", 6)]


def test_leads_per_rep_per_region(warehouse: Warehouse) -> None:
    rows = report(warehouse, "sources", by="rep_region", grain="month")
    got = {(r["region"], r["rep"]): r["leads"] for r in rows}
    assert got == {
        ("Nord", "lena.fischer"): 1,
        ("Nord", "anna.schmidt"): 1,
        ("Süd", "paul.becker"): 1,
        ("(none)", "paul.becker"): 1,  # F was never enriched
        ("(none)", "(none)"): 2,  # D and E never reached sales
    }


def test_funnel_overall_and_by_channel(warehouse: Warehouse) -> None:
    [total] = report(warehouse, "funnel")
    stages = ("lead", "mql", "sql", "routed", "contacted", "opportunity", "won", "lost")
    assert [total[s] for s in stages] == [6, 4, 4, 4, 4, 3, 3, 1]
    assert total["lead_to_mql"] == 0.6667
    assert total["contacted_to_opportunity"] == 0.75
    assert total["lead_to_won"] == 0.5
    by_channel = keyed(report(warehouse, "funnel", by="channel"), "channel")
    assert [by_channel["web_form"][s] for s in stages] == [3, 2, 2, 2, 2, 2, 2, 0]
    assert [by_channel["trade_fair"][s] for s in stages] == [2, 2, 2, 2, 2, 1, 1, 1]
    assert [by_channel["email"][s] for s in stages] == [1, 0, 0, 0, 0, 0, 0, 0]
    by_path = keyed(report(warehouse, "funnel", by="path"), "path")
    assert {p: r["won"] for p, r in by_path.items()} == {
        "direct": 1,
        "fast_lane": 1,
        "nurtured": 1,
        "(none)": 0,
    }


def test_velocity_medians_and_where_leads_wait(warehouse: Warehouse) -> None:
    rows = keyed(report(warehouse, "velocity"), "stage")
    lead = rows["lead"]
    # lead → MQL: A 1 h, B 0 h (fast lane), C 1 h, F 1 h; E waits; D is closed.
    assert (lead["reached"], lead["moved_on"], lead["waiting_now"]) == (6, 4, 1)
    assert lead["median_hours"] == 1.0
    # MQL → SQL: A 168 h, B, C, F 0 h → median 0, p90 = 0 + 0.7 × 168
    assert (rows["mql"]["median_hours"], rows["mql"]["p90_hours"]) == (0.0, 117.6)
    # contacted → opportunity: A 70.925 h… ; C lost (closed), B won (opportunity implied)
    assert (rows["contacted"]["reached"], rows["contacted"]["moved_on"]) == (4, 3)
    assert rows["opportunity"]["waiting_now"] == 0


def test_speed_to_lead(warehouse: Warehouse) -> None:
    [total] = report(warehouse, "speed")
    # inquiry → owner: B 10 s, F 3,620 s, C 3,630 s, A 608,430 s
    assert total["routed"] == 4
    assert total["median_seconds_to_route"] == 3625.0
    assert total["p90_seconds_to_route"] == 3630 + 0.7 * (608430 - 3630)
    # inquiry → first contact: B 3 min, F 90, C 180, A 10,144.5
    assert total["median_minutes_to_contact"] == 135.0
    assert total["contacted_within_5_min"] == 0.25
    assert total["sla_breaches"] == 2
    by_rep = keyed(report(warehouse, "speed", by="rep"), "rep")
    assert {r: v["routed"] for r, v in by_rep.items()} == {
        "lena.fischer": 1,
        "anna.schmidt": 1,
        "paul.becker": 2,
    }
    histogram = {r["bucket"]: r["leads"] for r in report(warehouse, "speed-histogram")}
    assert histogram == {
        "< 5 min": 1,
        "5-30 min": 0,
        "30-60 min": 0,
        "1-4 h": 2,
        "4-24 h": 0,
        "> 24 h": 1,
        "not contacted": 0,
    }


def test_sla_breaches_by_rep(warehouse: Warehouse) -> None:
    assert report(warehouse, "sla", by="rep") == [
        {
            "queue": "dach",
            "rep": "lena.fischer",
            "breaches": 2,
            "escalated": 1,
            "reassigned": 1,
            "leads": 1,
        }
    ]


def test_money_cost_per_stage_and_roi(warehouse: Warehouse) -> None:
    rows = report(warehouse, "money", by="channel")
    assert [r["channel"] for r in rows] == [
        "trade_fair",
        "web_form",
        "paid_ads",
        "webinar",
        "email",
    ]
    by = keyed(rows, "channel")
    web = by["web_form"]
    assert (web["lead"], web["mql"], web["sql"], web["won"]) == (3, 2, 2, 2)
    assert (web["revenue_eur"], web["cost_eur"]) == (1500, 300)
    assert (web["cost_per_lead"], web["cost_per_mql"], web["cost_per_won"]) == (100, 150, 150)
    assert web["roi"] == 4.0
    fair = by["trade_fair"]
    assert (fair["cost_per_lead"], fair["cost_per_won"], fair["roi"]) == (500, 1000, 1.0)
    assert (by["paid_ads"]["cost_per_lead"], by["paid_ads"]["roi"]) == (None, -1.0)
    assert (by["email"]["cost_per_lead"], by["email"]["roi"]) == (0, None)
    by_campaign = keyed(report(warehouse, "money"), "channel", "campaign")
    assert by_campaign[("web_form", "pricing")]["revenue_eur"] == 500
    assert by_campaign[("web_form", "spring")]["revenue_eur"] == 1000


def test_attribution_models_side_by_side(warehouse: Warehouse) -> None:
    rows = keyed(report(warehouse, "attribution", by="channel"), "channel")
    # B's touches, 2.5, 2 and 1 days before its win, under a 7-day half-life:
    w1, w2, w3 = 0.5 ** (2.5 / 7), 0.5 ** (2 / 7), 0.5 ** (1 / 7)
    b_decay = [500 * w / (w1 + w2 + w3) for w in (w1, w2, w3)]
    expected = {
        # channel: first, lead creation, last, linear, U, W, time-decay
        "web_form": (1000, 1500, 0, 500, 800 + 200, 600 + 500 / 3, 1000 / 7 + b_decay[1]),
        "webinar": (0, 0, 500, 500, 100 + 100, 300 + 500 / 3, 2000 / 7 + b_decay[2]),
        "paid_ads": (500, 0, 1000, 500, 100 + 200, 100 + 500 / 3, 4000 / 7 + b_decay[0]),
        "trade_fair": (2000, 2000, 2000, 2000, 2000, 2000, 2000),
    }
    models = MODELS
    for channel, values in expected.items():
        assert [rows[channel][m] for m in models] == [round(v, 2) for v in values], channel
    for model in models:
        assert sum(r[model] for r in rows.values()) == pytest.approx(3500, abs=0.02)


def test_money_credits_lead_creation_which_attribution_names_beside_first_touch(
    warehouse: Warehouse,
) -> None:
    """Issue 15 point 6: B's first touch is a LinkedIn ad (a tracked activity), its lead
    was created by the pricing form. The money report credits the creating campaign;
    the attribution report shows that same figure as `lead_creation` and the ad as
    `first_touch` – two views, two names, never one name for both."""
    money = keyed(report(warehouse, "money"), "channel", "campaign")
    credit = keyed(report(warehouse, "attribution", by="campaign"), "channel", "campaign")
    assert money[("web_form", "pricing")]["revenue_eur"] == 500
    assert credit[("web_form", "pricing")]["lead_creation"] == 500
    assert credit[("web_form", "pricing")]["first_touch"] == 0
    assert credit[("paid_ads", "linkedin")]["first_touch"] == 500
    assert ("paid_ads", "linkedin") not in money or not money[("paid_ads", "linkedin")]["won"]
    for key, row in credit.items():  # every campaign: money's revenue is lead creation's
        revenue = money[key]["revenue_eur"] if key in money else 0
        assert row["lead_creation"] == revenue, key


def test_time_decay_half_life_is_a_parameter(warehouse: Warehouse) -> None:
    rows = keyed(report(warehouse, "attribution", half_life_days="1"), "channel")
    w1, w2, w3 = 0.5**2.5, 0.5**2, 0.5**1
    a = [1000 * w / (2**-14 + 2**-7 + 1) for w in (2**-14, 2**-7, 1)]
    assert rows["paid_ads"]["time_decay"] == round(a[2] + 500 * w1 / (w1 + w2 + w3), 2)


def test_data_driven_models_beside_the_rule_based(warehouse: Warehouse) -> None:
    """Issue 20 point 4 on the scenario's journeys by channel: A web_form > webinar >
    paid_ads won 1,000; B paid_ads > web_form > webinar won 500; F trade_fair won
    2,000; C trade_fair, D web_form, E email not converted. Markov: start → web_form
    ⅓, paid_ads ⅙, trade_fair ⅓, email ⅙; P(conversion) ½; removal effects
    trade_fair ⅓, web_form ½, webinar ½, paid_ads 4/9 (sum 16/9). In value (a deal
    worth what deals ending at its last touch are): 4/7, 2/7, 2/7, 1/3 (sum 31/21).
    Shapley: A's and B's key set is the same; its only observed subset, {web_form}
    (D), converts 0 % – the three share A's and B's deals equally."""
    rows = keyed(report(warehouse, "attribution", by="channel"), "channel")
    markov = {"trade_fair": (9 / 16, 12), "web_form": (27 / 32, 6), "webinar": (27 / 32, 6)}
    markov |= {"paid_ads": (3 / 4, 7), "email": (0, 0)}
    shapley = {"trade_fair": (1, 2000), "email": (0, 0)}
    shapley |= {c: (2 / 3, 500) for c in ("web_form", "webinar", "paid_ads")}
    for channel, (deals, of_31) in markov.items():
        assert rows[channel]["markov_conversions"] == pytest.approx(deals, abs=1e-4), channel
        assert rows[channel]["markov"] == pytest.approx(3500 * of_31 / 31, abs=0.01), channel
    for channel, (deals, revenue) in shapley.items():
        assert rows[channel]["shapley_conversions"] == pytest.approx(deals, abs=1e-4), channel
        assert rows[channel]["shapley"] == pytest.approx(revenue, abs=0.01), channel
    assert rows["email"]["linear"] == 0  # never converted: only the data-driven models see it
    web = rows["web_form"]  # deals besides revenue: A's first touch, a third of A and of B
    assert (web["first_touch_conversions"], web["linear_conversions"]) == (1, 0.6667)
    for model in (*MODELS, "markov", "shapley"):  # every model hands out the won total
        assert sum(r[model] for r in rows.values()) == pytest.approx(3500, abs=0.05), model
        assert sum(r[f"{model}_conversions"] for r in rows.values()) == pytest.approx(3, abs=1e-3)
    by_campaign = report(warehouse, "attribution", by="campaign")
    for model in ("markov", "shapley"):
        assert sum(r[model] for r in by_campaign) == pytest.approx(3500, abs=0.05), model
        assert sum(r[f"{model}_conversions"] for r in by_campaign) == pytest.approx(3, abs=1e-3)
    assert report(warehouse, "attribution", by="campaign") == by_campaign  # a second run


def test_rep_performance_and_fairness(warehouse: Warehouse) -> None:
    reps = keyed(report(warehouse, "performance", by="rep"), "rep")
    paul = reps["paul.becker"]
    assert (paul["leads"], paul["won"], paul["lost"], paul["revenue_eur"], paul["win_rate"]) == (
        2,
        1,
        1,
        2000,
        0.5,
    )
    assert reps["anna.schmidt"]["median_minutes_routed_to_contact"] == round(170 / 60, 1)
    fair = keyed(report(warehouse, "fairness"), "queue", "rep")
    lena, paul_f = fair[("dach", "lena.fischer")], fair[("dach", "paul.becker")]
    assert (lena["share_of_leads"], lena["share_of_capacity"]) == (0.3333, 0.5)
    assert paul_f["load_vs_capacity"] == 1.3333
    assert lena["queue_gini"] == round(2 / 12, 4)  # loads 1 and 2
    # dach-north: anna (weight 1) got 1, jonas (weight 2) none: loads 1 and 0
    assert fair[("dach-north", "jonas.weber")]["queue_gini"] == 0.5
    assert fair[("enterprise", "max.hoffmann")]["leads"] == 0


def test_reasons_for_lost_disqualified_and_rejected(warehouse: Warehouse) -> None:
    rows = report(warehouse, "reasons")
    assert [(r["kind"], r["reason"], r["count"]) for r in rows] == [
        ("disqualified", "competitor", 1),
        ("lost", "budget", 1),
        ("rejected", "email_invalid", 1),
        ("rejected", "not_json", 1),
        ("rejected", "phone_invalid", 1),
    ]


def test_targets_against_actuals(warehouse: Warehouse) -> None:
    rows = report(warehouse, "targets", since="2026-11-01")
    assert [
        (r["channel"], r["metric"], r["target"], r["actual"], r["attainment"]) for r in rows
    ] == [
        ("all", "leads", 10, 6, 0.6),
        ("all", "won", 2, 3, 1.5),
        ("all", "revenue_eur", 4000, 3500, 0.875),
        ("web_form", "leads", 2, 3, 1.5),
    ]


def test_since_limits_every_report_to_later_leads(warehouse: Warehouse) -> None:
    [total] = report(warehouse, "funnel", since="2026-11-04")
    assert (total["lead"], total["won"]) == (3, 1)  # D, E, F


def test_bad_parameters_are_refused_with_a_clear_message() -> None:
    with pytest.raises(BadRequest, match="grain is day, week or month"):
        parse_params({"grain": "hour"})
    with pytest.raises(BadRequest, match="since is a date"):
        parse_params({"since": "yesterday; DROP TABLE x"})
    with pytest.raises(BadRequest, match="can be grouped --by"):
        run_report(None, "money", ReportParams(by="rep"), INPUTS)  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="no report 'nope'"):
        run_report(None, "nope", ReportParams(), INPUTS)  # type: ignore[arg-type]


def test_the_example_queries_of_the_analyst_guide_run(warehouse: Warehouse) -> None:
    guide = (PROJECT_ROOT / "docs" / "warehouse.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", guide, re.S)
    statements = [s.strip() for b in blocks for s in b.split(";") if s.strip()]
    assert len(statements) >= 6
    for sql in statements:
        sql = sql.replace("toUUID('…')", f"toUUID('{lead_id('A')}')")
        analyst_query(warehouse, sql)  # raises on any error
    with pytest.raises(BadRequest, match=r"readonly|READONLY"):
        analyst_query(warehouse, "CREATE TABLE leadflow.x (a Int8) ENGINE = Memory")
