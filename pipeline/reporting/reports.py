"""The closed-loop reports (DOMAIN.md §Report): each is SQL over the warehouse
(the `leads` view, `lead_events`, `campaign_costs`); where SQL is the wrong
tool (attribution models, Gini, volume bands) a pure function finishes the job.

Every report takes the same parameters, from the CLI or from HTTP: `by` (one of
the report's dimensions), `since` (a date), `grain` (day / week / month) and
`half_life_days` (time-decay attribution). Parameters are validated before
they reach SQL; nothing a caller types is pasted into a query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, get_args

from pipeline.adapters.warehouse.clickhouse import COSTS_TABLE, EVENTS_TABLE, Warehouse
from pipeline.config.report_rules import TARGET_METRICS, Targets, load_targets, month_start
from pipeline.config.rules import Rules
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.distribute.sla import CONTACT
from pipeline.domain.experiments import Experiments
from pipeline.domain.report.attribution import DEFAULT_HALF_LIFE_DAYS, MODELS, Journey, TouchPoint
from pipeline.domain.report.data_driven import Credit, attribute_data_driven
from pipeline.errors import BadRequest
from pipeline.reporting.analytics import Handed, fairness_rows, volume_anomalies
from pipeline.reporting.events import funnel_by_channel
from pipeline.reporting.rule_versions import decisions_by_rules

LEADS = "leadflow.leads"
Grain = Literal["day", "week", "month"]
PERIOD = {"day": "toDate({t})", "week": "toMonday({t})", "month": "toStartOfMonth({t})"}

REACHED = {
    "lead": "created_at",
    "mql": "coalesce(mql_at, sql_at, routed_at, contacted_at, opportunity_at, won_at, lost_at)",
    "sql": "coalesce(sql_at, routed_at, contacted_at, opportunity_at, won_at, lost_at)",
    "routed": "coalesce(routed_at, contacted_at, opportunity_at, won_at, lost_at)",
    "contacted": "contacted_at",
    "opportunity": "coalesce(opportunity_at, won_at)",
    "won": "won_at",
}
"""When a lead reached each stage: a later stage implies the earlier ones (a CRM
that reports `won` without `opportunity` still had an opportunity)."""
STAGES = tuple(REACHED)
CLOSED_AT = "coalesce(won_at, lost_at, disqualified_at)"

DIMENSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "all": (("total", "'all'"),),
    "channel": (("channel", "source_channel"),),
    "campaign": (("channel", "source_channel"), ("campaign", "source_campaign")),
    "region": (("region", "region"),),
    "product": (("product", "product"),),
    "path": (("path", "path"),),
    "queue": (("queue", "queue"),),
    "rep": (("queue", "queue"), ("rep", "owner")),
    "rep_region": (("region", "region"), ("rep", "owner")),
}
"""--by NAME → the columns it groups by (alias, expression over `leads`)."""

SPEED_BUCKETS = (
    ("< 5 min", 5),
    ("5-30 min", 30),
    ("30-60 min", 60),
    ("1-4 h", 240),
    ("4-24 h", 1440),
    ("> 24 h", None),
)


@dataclass(frozen=True)
class ReportParams:
    by: str | None = None
    since: date | None = None
    grain: Grain = "day"
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS

    def after(self, column: str) -> str:
        """SQL condition: `column` on or after --since (always true without it)."""
        if self.since is None:
            return "1"
        return f"{column} >= toDateTime64('{self.since.isoformat()} 00:00:00', 3, 'UTC')"


@dataclass(frozen=True)
class ReportInputs:
    """What the reports need besides the warehouse: rules and targets."""

    routing: RoutingRules | None = None
    targets: Targets = field(default_factory=Targets)
    inquiries_topic: str = "leads.inquiries"
    answer_target_s: float = 300.0
    """How soon an inquiry should have its answer (nurture.yaml `send_within_minutes`)."""
    experiments: Experiments = field(default_factory=Experiments)
    """experiments.yaml: the dashboard's experiments panel compares their variants."""


def report_inputs(rules: Rules, rules_dir: Path, inquiries_topic: str) -> ReportInputs:
    """The report inputs from the rule files: routing, targets, the answer target."""
    return ReportInputs(
        routing=rules.routing,
        targets=load_targets(rules_dir),
        inquiries_topic=inquiries_topic,
        experiments=rules.experiments.definitions,
        answer_target_s=rules.nurture.fulfillment.send_within_minutes * 60,
    )


Rows = list[dict[str, Any]]
Runner = Callable[[Warehouse, ReportParams, ReportInputs], Rows]


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    by: tuple[str, ...]
    """Dimensions it can be grouped by; the first is the default."""
    run: Runner
    rates: tuple[str, ...] = ()
    """Columns that are fractions (0.9565): a table shows them as percentages (95.7 %);
    CSV and JSON keep the fraction."""


def _dims(by: str | None) -> tuple[str, str]:
    """SELECT list and GROUP BY list of a dimension ('' shown as '(none)')."""
    columns = DIMENSIONS[by or "all"]
    select = ", ".join(f"if({expr} = '', '(none)', {expr}) AS {alias}" for alias, expr in columns)
    return select, ", ".join(alias for alias, _ in columns)


def sources(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Lead source statistics: leads, MQLs and wins per period and dimension."""
    select, groups = _dims(p.by)
    period = PERIOD[p.grain].format(t="created_at")
    return w.query(f"""
        SELECT toString({period}) AS period, {select},
               count() AS leads,
               countIf({REACHED["mql"]} IS NOT NULL) AS mql,
               sum(wins) AS won
        FROM {LEADS} WHERE {p.after("created_at")}
        GROUP BY period, {groups}
        ORDER BY period, leads DESC, {groups}
    """)


FUNNEL_STEPS = tuple(zip(("lead", *STAGES[1:-1]), STAGES[1:], strict=True))
"""Each stage and the next: the funnel's conversion rates."""
FUNNEL_RATES = (*(f"{earlier}_to_{later}" for earlier, later in FUNNEL_STEPS), "lead_to_won")


def funnel(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Lead → MQL → SQL → routed → contacted → opportunity → won, with conversion rates."""
    select, groups = _dims(p.by)
    counts = ",\n".join(f"countIf({REACHED[stage]} IS NOT NULL) AS {stage}" for stage in STAGES[1:])
    rates = ",\n".join(
        f"round({later} / {earlier}, 4) AS {earlier}_to_{later}" for earlier, later in FUNNEL_STEPS
    )
    return w.query(f"""
        SELECT {select}, count() AS lead, {counts},
               countIf(lost_at IS NOT NULL) AS lost,
               {rates}, round(won / lead, 4) AS lead_to_won
        FROM {LEADS} WHERE {p.after("created_at")}
        GROUP BY {groups} ORDER BY lead DESC, {groups}
    """)


def velocity(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Hours spent in each stage (median, p90) and how many leads wait in it now."""
    select, groups = _dims(p.by)
    steps = ", ".join(
        f"tuple('{stage}', {REACHED[stage]}, {REACHED[following]})"
        for stage, following in pairwise(STAGES)
    )
    order = "[" + ", ".join(f"'{s}'" for s in STAGES) + "]"
    return w.query(f"""
        SELECT {groups}, stage,
               countIf(entered IS NOT NULL) AS reached,
               countIf(left IS NOT NULL) AS moved_on,
               countIf(waiting) AS waiting_now,
               round(quantileExactInclusiveIf(0.5)(hours, left IS NOT NULL), 2) AS median_hours,
               round(quantileExactInclusiveIf(0.9)(hours, left IS NOT NULL), 2) AS p90_hours,
               round(quantileExactInclusiveIf(0.5)(waited, waiting), 2) AS median_waiting_hours
        FROM (
            SELECT {select}, arrayJoin([{steps}]) AS step,
                   step.1 AS stage, step.2 AS entered, step.3 AS left,
                   dateDiff('second', entered, left) / 3600 AS hours,
                   toUInt8(entered IS NOT NULL AND left IS NULL AND {CLOSED_AT} IS NULL) AS waiting,
                   dateDiff('second', entered, now64(3)) / 3600 AS waited
            FROM {LEADS} WHERE {p.after("created_at")}
        )
        GROUP BY {groups}, stage
        ORDER BY {groups}, indexOf({order}, stage)
    """)


def speed(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Inquiry → owner and → first contact; share contacted within 5 minutes (seed 001)."""
    select, groups = _dims(p.by)
    to_contact = "dateDiff('second', created_at, contacted_at) / 60"
    to_route = "dateDiff('millisecond', created_at, routed_at) / 1000"
    return w.query(f"""
        SELECT {select}, count() AS routed,
               round(quantileExactInclusive(0.5)({to_route}), 1) AS median_seconds_to_route,
               round(quantileExactInclusive(0.9)({to_route}), 1) AS p90_seconds_to_route,
               countIf(contacted_at IS NOT NULL) AS contacted,
               round(quantileExactInclusiveIf(0.5)({to_contact}, contacted_at IS NOT NULL), 1)
                   AS median_minutes_to_contact,
               round(quantileExactInclusiveIf(0.9)({to_contact}, contacted_at IS NOT NULL), 1)
                   AS p90_minutes_to_contact,
               round(countIf(contacted_at IS NOT NULL
                             AND contacted_at <= created_at + INTERVAL 5 MINUTE) / routed, 4)
                   AS contacted_within_5_min,
               sum(sla_breaches) AS sla_breaches
        FROM {LEADS} WHERE routed_at IS NOT NULL AND {p.after("created_at")}
        GROUP BY {groups} ORDER BY routed DESC, {groups}
    """)


def speed_histogram(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Routed leads by minutes from inquiry to first contact (the dashboard's distribution)."""
    labels = [label for label, _ in SPEED_BUCKETS]
    conditions = ", ".join(
        f"minutes < {limit}, '{label}'" for label, limit in SPEED_BUCKETS if limit is not None
    )
    rows = w.query(f"""
        SELECT multiIf(contacted_at IS NULL, 'not contacted', {conditions}, '{labels[-1]}')
                   AS bucket, count() AS leads
        FROM (SELECT contacted_at, dateDiff('second', created_at, contacted_at) / 60 AS minutes
              FROM {LEADS} WHERE routed_at IS NOT NULL AND {p.after("created_at")})
        GROUP BY bucket
    """)
    found = {row["bucket"]: int(row["leads"]) for row in rows}
    return [{"bucket": b, "leads": found.get(b, 0)} for b in [*labels, "not contacted"]]


SLA_DIMENSIONS = {"queue": ("queue",), "rep": ("queue", "rep")}


def sla(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """SLA breaches (escalations to the manager, reassignments) by queue or by rep."""
    groups = ", ".join(SLA_DIMENSIONS[p.by or "queue"])
    return w.query(f"""
        SELECT {groups}, count() AS breaches, countIf(breach = 1) AS escalated,
               countIf(breach >= 2) AS reassigned, uniqExact(lead_id) AS leads
        FROM (
            SELECT JSONExtractString(payload, 'payload', 'queue') AS queue,
                   JSONExtractString(payload, 'payload', 'owner', 'rep_id') AS rep,
                   greatest(JSONExtractInt(payload, 'payload', 'breach'), 1) AS breach,
                   lead_id
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'SlaBreached' AND {p.after("occurred_at")}
        )
        GROUP BY {groups} ORDER BY breaches DESC, {groups}
    """)


def money(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Cost per lead / MQL / SQL / won deal; revenue and ROI, by campaign or channel.

    Leads, their deals and revenue are credited to the campaign that created the
    lead (lead creation, the attribution report's `lead_creation` model) – not
    to the first touch, which may be an earlier tracked activity. Every won
    sales cycle of a lead is a deal.
    """
    columns = DIMENSIONS[p.by or "campaign"]
    groups = ", ".join(alias for alias, _ in columns)
    select = ", ".join(f"if({alias} = '', '(none)', {alias}) AS {alias}" for alias, _ in columns)
    costs_since = (
        "1" if p.since is None else f"month >= toStartOfMonth(toDate('{p.since.isoformat()}'))"
    )
    per = ",\n".join(
        f"if({n} > 0, round(cost_eur / {n}, 2), NULL) AS cost_per_{n}"
        for n in ("lead", "mql", "sql", "won")
    )
    return w.query(f"""
        SELECT {select}, sum(leads) AS lead, sum(mqls) AS mql, sum(sqls) AS sql,
               sum(wins) AS won, round(sum(revenue), 2) AS revenue_eur,
               round(sum(cost), 2) AS cost_eur, {per},
               if(cost_eur > 0, round((revenue_eur - cost_eur) / cost_eur, 4), NULL) AS roi
        FROM (
            SELECT source_channel AS channel, source_campaign AS campaign, 'all' AS total,
                   toUInt64(1) AS leads,
                   toUInt64({REACHED["mql"]} IS NOT NULL) AS mqls,
                   toUInt64({REACHED["sql"]} IS NOT NULL) AS sqls,
                   wins, toFloat64(revenue_eur) AS revenue, toFloat64(0) AS cost
            FROM {LEADS} WHERE {p.after("created_at")}
            UNION ALL
            SELECT channel, campaign, 'all', toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
                   toFloat64(0), amount_eur
            FROM {COSTS_TABLE} WHERE {costs_since}
        )
        GROUP BY {groups} ORDER BY revenue_eur DESC, cost_eur DESC, {groups}
    """)


TOUCHES = "leadflow.lead_touches"
EVENT_KEYS = "leadflow.lead_event_keys"
NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
DEALS = "leadflow.lead_deals"
REASONS = "leadflow.lead_reasons"


def won_deals(p: ReportParams) -> str:
    """SQL: every won sales cycle of a lead (`lead_deals`, migration 005) won on or after
    --since – lead_id, won, revenue, opportunity (NULL without one) and previous_win (the
    lead's win before it, 1970 for the first) – each a deal of the attribution report."""
    return f"""
        SELECT * FROM (
            SELECT lead_id, won, revenue, opportunity,
                   lagInFrame(won, 1, toDateTime64(0, 3, 'UTC')) OVER (
                       PARTITION BY lead_id ORDER BY won
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS previous_win
            FROM (
                SELECT lead_id, cycle, assumeNotNull(min(won_at)) AS won,
                       argMaxMerge(amount_eur) AS revenue, min(opportunity_at) AS opportunity
                FROM {DEALS} GROUP BY lead_id, cycle HAVING min(won_at) IS NOT NULL
            )
        ) WHERE {p.after("won")}
    """


def lead_touch_paths(leads: str) -> str:
    """SQL: each lead of the subquery `leads` with its touches (`lead_touches`, migration
    005), oldest first: `touches` is an array of (at, event_id, channel, campaign,
    creates_lead), '' shown as '(none)'; a touch stored twice is one touch."""
    return f"""
        SELECT lead_id,
               arraySort(groupUniqArray((at, event_id, if(channel = '', '(none)', channel),
                                         if(campaign = '', '(none)', campaign),
                                         creates_lead))) AS touches
        FROM {TOUCHES} WHERE lead_id IN ({leads})
        GROUP BY lead_id
    """


RULE_BASED_SHARES = {
    "first_touch": "(i = 1)",
    "lead_creation": "(i = created)",
    "last_touch": "(i = n)",
    "linear": "(1 / n)",
    "u_shaped": "u_shaped_share",
    "w_shaped": "w_shaped_share",
    "time_decay": "(decay / decay_sum)",
}
"""Each rule-based model's share of a deal for the counted touch `i` of `n` (the
columns of `rule_based_credit`'s inner query)."""


def rule_based_credit(p: ReportParams, names: list[str]) -> str:
    """SQL: won revenue (`<model>`) and won deals (`<model>_conversions`) credited to
    each key (`names`: channel, or channel and campaign) under the seven models of
    `pipeline.domain.report.attribution` (its docstring says what each credits),
    over the compact touch table: one row per counted touch of a deal with its share
    under each model. The same figures as `attribute()` over the same journeys
    (tests/integration/test_report_facts.py compares them), without a Python loop
    per won deal."""
    keys = ", ".join(f"touch.{n} AS {name}" for n, name in enumerate(names, start=3))
    credits = ", ".join(
        f"sum(revenue * {share}) AS {m}, sum({share}) AS {m}_conversions"
        for m, share in ((m, RULE_BASED_SHARES[m]) for m in MODELS)
    )
    return f"""
        WITH deals AS ({won_deals(p)})
        SELECT {", ".join(names)}, {credits}
        FROM (
            SELECT {keys}, revenue, i, n, created, decay, decay_sum,
                   -- position models: key weights (adding up where keys fall on one
                   -- touch), the rest shared by the touches in between; without
                   -- such touches the key weights scaled to 100 %
                   0.4 * (i = 1) + 0.4 * (i = created) AS u_key,
                   if(u_rest > 0, u_key + if(i IN (1, created), 0, 0.2 / u_rest), u_key / 0.8)
                       AS u_shaped_share,
                   0.3 * (i = 1) + 0.3 * (i = created) + 0.3 * (i = converted) AS w_key,
                   if(w_rest > 0, w_key + if(i IN (1, created, converted), 0, 0.1 / w_rest),
                      w_key / 0.9) AS w_shaped_share
            FROM (
                SELECT d.revenue AS revenue,
                       arrayFilter(t -> t.1 > d.previous_win, paths.touches) AS since_previous,
                       arrayFilter(t -> t.1 <= d.won, since_previous) AS before_win,
                       if(empty(before_win), since_previous, before_win) AS counted,
                       length(counted) AS n,
                       greatest(arrayFirstIndex(t -> t.5 = 1, counted), 1) AS created,
                       arrayLastIndex(t -> t.1 <= coalesce(d.opportunity, d.won), counted)
                           AS last_before_conversion,
                       if(last_before_conversion = 0, n, last_before_conversion) AS converted,
                       arrayMap(t -> pow(0.5, greatest(toUnixTimestamp64Milli(d.won)
                                                       - toUnixTimestamp64Milli(t.1), 0)
                                              / 86400000 / {float(p.half_life_days)!r}),
                                counted) AS decays,
                       arraySum(decays) AS decay_sum,
                       n - length(arrayDistinct([1, created])) AS u_rest,
                       n - length(arrayDistinct([1, created, converted])) AS w_rest
                FROM deals AS d
                INNER JOIN ({lead_touch_paths("SELECT lead_id FROM deals")}) AS paths
                    ON paths.lead_id = d.lead_id
            )
            ARRAY JOIN counted AS touch, arrayEnumerate(counted) AS i, decays AS decay
        )
        GROUP BY {", ".join(names)}
    """


def attribution(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Won revenue and won deals (`<model>_conversions`) credited to channels /
    campaigns under the seven rule-based models (in SQL: `rule_based_credit`) and the
    two data-driven ones (markov, shapley), side by side.

    Each won sales cycle of a lead is a deal (a customer's upsell is a second
    one); a later deal counts the touches since the lead's previous one. Deals and
    touches come from the compact tables `lead_deals` and `lead_touches`.
    """
    names = [alias for alias, _ in DIMENSIONS[p.by or "channel"]]
    credited = {tuple(r.pop(n) for n in names): r for r in w.query(rule_based_credit(p, names))}
    all_deals = w.query(f"""
        SELECT toString(lead_id) AS lead_id, toString(won) AS won_at,
               ifNull(toString(opportunity), '') AS opportunity_at, revenue AS amount_eur,
               toString(previous_win) AS previous_win
        FROM ({won_deals(replace(p, since=None))})
        ORDER BY lead_id, won
    """)
    deals = [d for d in all_deals if p.since is None or _time(d["won_at"]).date() >= p.since]
    by_lead = _touches(w, f"SELECT lead_id FROM ({won_deals(p)})")
    journeys = [
        Journey(
            touches=tuple(
                t for t in by_lead.get(d["lead_id"], ()) if t.at > _time(d["previous_win"])
            ),
            won_at=_time(d["won_at"]),
            revenue=float(d["amount_eur"]),
            opportunity_at=_time(d["opportunity_at"]) if d["opportunity_at"] else None,
        )
        for d in deals
    ]

    def key(touch: TouchPoint) -> tuple[str, ...]:
        return (touch.channel,) if names == ["channel"] else (touch.channel, touch.campaign)

    # issue 20 point 4: the data-driven models also learn from the journeys that did
    # not convert
    learnt = attribute_data_driven(journeys, _open_journeys(w, p), key)
    rows = [
        {**dict(zip(names, k, strict=True)), **_credit_columns(k, credited, learnt)}
        for k in {*credited, *learnt}
    ]
    return sorted(rows, key=lambda r: (-r["linear"], *(r[n] for n in names)))


def _credit_columns(
    key: tuple[str, ...],
    rule_based: dict[tuple[str, ...], dict[str, float]],
    learnt: dict[tuple[str, ...], dict[str, Credit]],
) -> dict[str, float]:
    """One key's attribution columns: revenue per model, then won deals per model
    (+ 0.0: no -0.0 from a float sum)."""
    credit = rule_based.get(key, {})
    data_driven = learnt.get(key, {})
    return {
        **{m: round(credit.get(m, 0.0) + 0.0, 2) for m in MODELS},
        **{m: round(c.revenue, 2) for m, c in data_driven.items()},
        **{f"{m}_conversions": round(credit.get(f"{m}_conversions", 0.0) + 0.0, 4) for m in MODELS},
        **{f"{m}_conversions": round(c.conversions, 4) for m, c in data_driven.items()},
    }


def _open_journeys(w: Warehouse, p: ReportParams) -> list[tuple[TouchPoint, ...]]:
    """The journeys that have not converted (yet), for the data-driven models: each
    captured lead's touches after its last won deal (all of them if it never won),
    oldest first – those whose last touch is on or after --since. Counted in SQL as
    paths of (channel, campaign), each path once with its number of journeys: the
    models read only the keys of these touches, not their times (`NO_TIME`)."""
    captured = f"SELECT lead_id FROM {EVENT_KEYS} WHERE event_type = 'LeadCaptured'"
    rows = w.query(f"""
        SELECT path, count() AS journeys
        FROM (
            SELECT arrayFilter(t -> t.1 > last.last_win, paths.touches) AS open,
                   arrayMap(t -> (t.3, t.4), open) AS path
            FROM ({lead_touch_paths(captured)}) AS paths
            LEFT JOIN (SELECT lead_id, max(won) AS last_win
                       FROM ({won_deals(replace(p, since=None))}) GROUP BY lead_id) AS last
                ON last.lead_id = paths.lead_id
            WHERE notEmpty(open) AND {p.after("open[length(open)].1")}
        )
        GROUP BY path
        SETTINGS join_use_nulls = 0
    """)
    journeys: list[tuple[TouchPoint, ...]] = []
    for row in rows:
        touches = tuple(TouchPoint(NO_TIME, channel, campaign) for channel, campaign in row["path"])
        journeys += [touches] * int(row["journeys"])
    return journeys


def _touches(w: Warehouse, leads: str) -> dict[str, list[TouchPoint]]:
    """The touches of the leads `leads` (a subquery of lead ids) selects, by lead,
    oldest first: `lead_touches` (a touch stored twice is one touch)."""
    touches = w.query(f"""
        SELECT DISTINCT toString(lead_id) AS lead_id, toString(at) AS at, event_id, channel,
               campaign, creates_lead
        FROM {TOUCHES} WHERE lead_id IN ({leads})
        ORDER BY lead_id, at, event_id
    """)
    return touch_points(touches)


def touch_points(touches: Rows) -> dict[str, list[TouchPoint]]:
    """Rows of touches (lead_id, at, channel, campaign, creates_lead) as the touch
    points of each lead, in the rows' order ('' shown as '(none)')."""
    by_lead: dict[str, list[TouchPoint]] = {}
    for t in touches:
        by_lead.setdefault(t["lead_id"], []).append(
            TouchPoint(
                _time(t["at"]),
                t["channel"] or "(none)",
                t["campaign"] or "(none)",
                bool(t["creates_lead"]),
            )
        )
    return by_lead


def performance(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Rep and territory performance over the leads they were given."""
    select, groups = _dims(p.by)
    return w.query(f"""
        SELECT {select}, count() AS leads, countIf(contacted_at IS NOT NULL) AS contacted,
               sum(wins) AS won, countIf(lost_at IS NOT NULL) AS lost,
               round(sum(revenue_eur), 2) AS revenue_eur,
               if(won + lost > 0, round(won / (won + lost), 4), NULL) AS win_rate,
               round(quantileExactInclusiveIf(0.5)(dateDiff('second', routed_at, contacted_at) / 60,
                                          contacted_at IS NOT NULL), 1)
                   AS median_minutes_routed_to_contact,
               sum(sla_breaches) AS sla_breaches
        FROM {LEADS} WHERE routed_at IS NOT NULL AND {p.after("created_at")}
        GROUP BY {groups} ORDER BY revenue_eur DESC, leads DESC, {groups}
    """)


def fairness(w: Warehouse, p: ReportParams, inputs: ReportInputs) -> Rows:
    """Each rep's leads against the leads the routing rules entitled them to (weight,
    availability when each lead came, caps: `analytics.expected_leads`), and each
    queue's Gini over those ratios. Leads before --since count for the caps only."""
    closing = ", ".join(f"'{o}'" for o in sorted(CONTACT))
    rows = w.query(f"""
        SELECT l.queue AS queue, l.owner AS owner, toString(l.routed_at) AS routed_at,
               toString(e.closed_at) AS closed_at, e.assigned_by AS assigned_by
        FROM {LEADS} AS l
        LEFT JOIN (
            SELECT lead_id,
                   argMinIf(JSONExtractString(payload, 'payload', 'assigned_by'), occurred_at,
                            event_type = 'LeadAssigned') AS assigned_by,
                   minIf(toNullable(occurred_at), event_type = 'OutcomeRecorded'
                         AND JSONExtractString(payload, 'payload', 'outcome', 'outcome')
                             NOT IN ({closing}))
                       AS closed_at
            FROM {EVENTS_TABLE}  -- no FINAL: a repeat changes no minimum
            WHERE event_type IN ('LeadAssigned', 'OutcomeRecorded')
            GROUP BY lead_id
        ) AS e ON e.lead_id = l.lead_id
        WHERE l.routed_at IS NOT NULL
    """)
    handed: dict[str, list[Handed]] = {}
    for r in rows:
        handed.setdefault(r["queue"], []).append(
            Handed(
                at=_time(r["routed_at"]),
                owner=r["owner"],
                closed_at=_time(r["closed_at"]) if r["closed_at"] else None,
                account_owner=r["assigned_by"] == "account_owner",
            )
        )
    since = datetime.combine(p.since, time(), UTC) if p.since is not None else None
    return fairness_rows(inputs.routing, handed, since)


def reasons(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Why leads were lost, returned, disqualified or retired, and why input was rejected.

    Leads count once per kind and reason; a rejected message once per reason code
    it carries (`lead_reasons`, migration 005)."""
    return w.query(f"""
        SELECT kind, if(reason = '', '(no reason given)', reason) AS reason, sum(n) AS count
        FROM (
            SELECT kind, reason,
                   if(kind = 'rejected', uniqExact(event_id, n), uniqExact(lead_id)) AS n
            FROM {REASONS} WHERE {p.after("occurred_at")}
            GROUP BY kind, reason
        )
        GROUP BY kind, reason ORDER BY kind, count DESC, reason
    """)


def targets(w: Warehouse, p: ReportParams, inputs: ReportInputs) -> Rows:
    """Targets from targets.yaml against the month's actuals (leads created, MQLs and
    SQLs reached, deals won and their revenue in that month)."""
    facts = [
        ("leads", "created_at", "1"),
        ("mql", REACHED["mql"], "1"),
        ("sql", REACHED["sql"], "1"),
        ("won", "won_at", "wins"),
        ("revenue_eur", "won_at", "revenue_eur"),
    ]
    per_lead = ", ".join(f"('{metric}', {at}, toFloat64({value}))" for metric, at, value in facts)
    actual: dict[tuple[str, str, str], float] = {}
    for row in w.query(f"""
        SELECT fact.1 AS metric, toString(toStartOfMonth(fact.2)) AS month, channel,
               sum(fact.3) AS value
        FROM (SELECT source_channel AS channel, arrayJoin([{per_lead}]) AS fact FROM {LEADS})
        WHERE fact.2 IS NOT NULL
        GROUP BY metric, month, channel
    """):
        actual[(row["metric"], row["month"][:7], row["channel"])] = float(row["value"])
    rows: Rows = []
    for target in inputs.targets.targets:
        if p.since is not None and month_start(target.month) < p.since.replace(day=1):
            continue
        for metric in TARGET_METRICS:
            goal = getattr(target, metric)
            if goal is None:
                continue
            done = sum(
                v
                for (m, month, channel), v in actual.items()
                if m == metric
                and month == target.month
                and (target.channel is None or channel == target.channel)
            )
            rows.append(
                {
                    "month": target.month,
                    "channel": target.channel or "all",
                    "metric": metric,
                    "target": goal,
                    "actual": round(done, 2),
                    "attainment": round(done / goal, 4) if goal else None,
                }
            )
    return rows


def anomalies(w: Warehouse, p: ReportParams, _: ReportInputs) -> Rows:
    """Days on which a channel's lead volume left its usual band (trailing 28 days)."""
    daily: dict[str, dict[date, int]] = {}
    for row in w.query(f"""
        SELECT toString(toDate(created_at)) AS day, source_channel AS channel, count() AS leads
        FROM {LEADS} GROUP BY day, channel
    """):
        daily.setdefault(row["channel"], {})[date.fromisoformat(row["day"])] = int(row["leads"])
    return [
        {
            "day": a.day.isoformat(),
            "channel": a.channel,
            "leads": a.leads,
            "expected": round(a.expected, 2),
            "low": round(a.low, 2),
            "high": round(a.high, 2),
            "direction": a.direction,
        }
        for a in volume_anomalies(daily)
        if p.since is None or a.day >= p.since
    ]


def pipeline_funnel(w: Warehouse, p: ReportParams, inputs: ReportInputs) -> Rows:
    """What the pipeline did with the inquiries, per channel (the demo's table)."""
    return funnel_by_channel(w, inputs.inquiries_topic, inputs.answer_target_s)


def any_dimension(default: str) -> tuple[str, ...]:
    """Every dimension of the `leads` view, `default` first."""
    return (default, *(d for d in DIMENSIONS if d != default))


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report("sources", "Lead sources over time", any_dimension("channel"), sources),
        Report("funnel", "Funnel and conversion", any_dimension("all"), funnel, FUNNEL_RATES),
        Report("velocity", "Time in stage and where leads wait", any_dimension("all"), velocity),
        Report("speed", "Speed to lead", any_dimension("all"), speed, ("contacted_within_5_min",)),
        Report("speed-histogram", "Inquiry to first contact", ("all",), speed_histogram),
        Report("sla", "SLA breaches", tuple(SLA_DIMENSIONS), sla),
        Report("money", "Cost per lead and ROI", ("campaign", "channel", "all"), money, ("roi",)),
        Report(
            "attribution",
            "Won revenue and deals by attribution model",
            ("channel", "campaign"),
            attribution,
        ),
        Report(
            "performance",
            "Rep and territory performance",
            ("rep", "queue", "region", "channel"),
            performance,
            ("win_rate",),
        ),
        Report(
            "fairness",
            "Distribution fairness",
            ("queue",),
            fairness,
            ("share_of_leads", "share_of_capacity"),
        ),
        Report("reasons", "Lost, returned, disqualified and rejected", ("all",), reasons),
        Report("targets", "Target against actual", ("all",), targets, ("attainment",)),
        Report("anomalies", "Unusual daily volume per channel", ("channel",), anomalies),
        Report("pipeline", "Inquiries through the pipeline", ("channel",), pipeline_funnel),
        Report("rules", "Decisions by the rule set that made them", ("all",), decisions_by_rules),
    )
}


def run_report(warehouse: Warehouse, name: str, params: ReportParams, inputs: ReportInputs) -> Rows:
    report = REPORTS.get(name)
    if report is None:
        raise BadRequest(f"no report {name!r}; reports: {', '.join(REPORTS)}")
    by = params.by or report.by[0]
    if by not in report.by:
        raise BadRequest(f"report {name} can be grouped --by {', '.join(report.by)}; not {by!r}")
    return report.run(warehouse, replace(params, by=by), inputs)


def parse_params(query: Mapping[str, str]) -> ReportParams:
    """Report parameters from strings (HTTP query or CLI), or a clear error."""
    unknown = set(query) - {"by", "since", "grain", "half_life_days"}
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    grain = query.get("grain", "day")
    if grain not in get_args(Grain):
        raise BadRequest(f"grain is day, week or month; not {grain!r}")
    since = None
    if query.get("since"):
        try:
            since = date.fromisoformat(query["since"])
        except ValueError:
            raise BadRequest(f"since is a date like 2026-11-01; not {query['since']!r}") from None
    try:
        half_life = float(query.get("half_life_days", DEFAULT_HALF_LIFE_DAYS))
    except ValueError:
        half_life = 0.0
    if not 0 < half_life <= 3650:
        raise BadRequest("half_life_days is a number of days above 0, e.g. 7")
    by = query.get("by") or None
    return ReportParams(by=by, since=since, grain=grain, half_life_days=half_life)  # type: ignore[arg-type]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
