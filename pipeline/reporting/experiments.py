"""The experiments' report: each variant against the control on the seeds' measures.

A lead is in the variant its decision events recorded (`experiments` on every
qualification, nurture and routing decision, as the warehouse stores them), so
the report counts what the pipeline did, not what the hash would say now. The
measures, per lead: its first answer within the target (nurture.yaml
`send_within_minutes`), MQL → SQL → opportunity → won (the funnel's
definitions, `pipeline.reporting.reports.REACHED`), minutes from the inquiry to
the first contact, and revenue. The statistics are pure
(`pipeline.domain.report.experiment_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse
from pipeline.domain.experiments import Experiment, Experiments
from pipeline.domain.report.experiment_stats import (
    Sample,
    Verdict,
    compare_means,
    compare_proportions,
    mean_interval,
    wilson,
)
from pipeline.errors import BadRequest
from pipeline.reporting.reports import LEADS, REACHED
from pipeline.reporting.rule_versions import DECISION_TYPES

PROPORTIONS = (
    ("answered_in_target", "answered in target", "answered_in_target", "answered"),
    ("lead_to_mql", "lead → MQL", "mql", "leads"),
    ("mql_to_sql", "MQL → SQL", "sql", "mql"),
    ("sql_to_opportunity", "SQL → opportunity", "opportunity", "sql"),
    ("opportunity_to_won", "opportunity → won", "won", "opportunity"),
    ("lead_to_won", "lead → won", "won", "leads"),
)
"""Measure, label, the count of successes and the count it is a share of."""
MEANS = (
    ("minutes_to_contact", "minutes to first contact", "contact", "min"),
    ("revenue_per_lead", "revenue per lead (EUR)", "revenue", "EUR"),
)
"""Measure, label, the column prefix of its count / sum / sum of squares, unit."""
Rows = list[dict[str, Any]]


def experiment_list(experiments: Experiments, now: datetime) -> Rows:
    """Every experiment of experiments.yaml, with its status at `now`."""
    return [
        {
            "experiment": e.name,
            "status": "running" if e.running(now) else "ended" if e.end <= now else "planned",
            "start": e.start.isoformat(),
            "end": e.end.isoformat(),
            "varies": ", ".join(e.changes()),
            "variants": ", ".join(f"{v.name} {v.share:g} %" for v in e.variants),
            "control": e.control.name,
            "description": e.description or "",
        }
        for e in experiments.experiments
    ]


def find(experiments: Experiments, name: str) -> Experiment:
    found = experiments.named(name)
    if found is None:
        known = ", ".join(e.name for e in experiments.experiments) or "none"
        raise BadRequest(f"no experiment {name!r} in experiments.yaml; experiments: {known}")
    return found


def variant_counts(w: Warehouse, experiment: Experiment, answer_target_s: float) -> Rows:
    """Per variant the counts, sums and sums of squares the statistics need."""
    name = experiment.name  # a validated name (NAME_PATTERN): letters, digits, - and _
    contact = (
        "if(contacted_at IS NULL, NULL, dateDiff('millisecond', created_at, contacted_at) / 60000)"
    )
    return w.query(f"""
        WITH
        arms AS (
            SELECT assumeNotNull(lead_id) AS lead_id, argMin(variant, occurred_at) AS variant
            FROM (
                SELECT lead_id, occurred_at,
                       arrayJoin(JSONExtractArrayRaw(payload, 'experiments')) AS arm,
                       JSONExtractString(arm, 'variant') AS variant
                FROM {EVENTS_TABLE} FINAL
                WHERE event_type IN ({DECISION_TYPES}) AND lead_id IS NOT NULL
            )
            WHERE JSONExtractString(arm, 'experiment') = '{name}'
            GROUP BY lead_id
        ),
        outcomes AS (
            SELECT lead_id,
                   toUInt64({REACHED["mql"]} IS NOT NULL) AS mql,
                   toUInt64({REACHED["sql"]} IS NOT NULL) AS sql,
                   toUInt64({REACHED["opportunity"]} IS NOT NULL) AS opportunity,
                   toUInt64({REACHED["won"]} IS NOT NULL) AS won,
                   toFloat64(revenue_eur) AS revenue,
                   {contact} AS contact_minutes
            FROM {LEADS} WHERE lead_id IN (SELECT lead_id FROM arms)
        ),
        answers AS (
            SELECT assumeNotNull(lead_id) AS lead_id, toUInt64(1) AS answered,
                   toUInt64(argMin(JSONExtractFloat(payload, 'payload', 'response_seconds'),
                                   occurred_at) <= {float(answer_target_s)}) AS in_target
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'TouchScheduled'
              AND JSONExtractString(payload, 'payload', 'purpose') = 'fulfillment'
              AND lead_id IN (SELECT lead_id FROM arms)
            GROUP BY lead_id
        )
        SELECT arms.variant AS variant, count() AS leads,
               sum(answers.answered) AS answered, sum(answers.in_target) AS answered_in_target,
               sum(o.mql) AS mql, sum(o.sql) AS sql, sum(o.opportunity) AS opportunity,
               sum(o.won) AS won,
               count() AS revenue_n, sum(o.revenue) AS revenue_sum,
               sum(o.revenue * o.revenue) AS revenue_squares,
               countIf(o.contact_minutes IS NOT NULL) AS contact_n,
               sumIf(o.contact_minutes, o.contact_minutes IS NOT NULL) AS contact_sum,
               sumIf(o.contact_minutes * o.contact_minutes, o.contact_minutes IS NOT NULL)
                   AS contact_squares
        FROM arms
        LEFT JOIN outcomes AS o ON o.lead_id = arms.lead_id
        LEFT JOIN answers ON answers.lead_id = arms.lead_id
        GROUP BY variant
    """)


@dataclass(frozen=True)
class Arm:
    """One variant's counts (a row of `variant_counts`, zeros for a variant without leads)."""

    name: str
    counts: dict[str, float]

    def count(self, column: str) -> int:
        return int(self.counts.get(column, 0) or 0)

    def sample(self, prefix: str) -> Sample:
        n = self.count(f"{prefix}_n")
        total = float(self.counts.get(f"{prefix}_sum", 0) or 0)
        squares = float(self.counts.get(f"{prefix}_squares", 0) or 0)
        mean = total / n if n else 0.0
        variance = max((squares - n * mean * mean) / (n - 1), 0.0) if n > 1 else 0.0
        return Sample(n, mean, variance)


def experiment_report(w: Warehouse, experiment: Experiment, answer_target_s: float) -> Rows:
    """One row per measure and variant: its value with a 95 % interval and, for the
    variants, the difference from the control and the plain statement."""
    found = {row["variant"]: row for row in variant_counts(w, experiment, answer_target_s)}
    arms = [Arm(v.name, found.get(v.name, {})) for v in experiment.variants]
    control = next(a for a in arms if a.name == experiment.control.name)
    rows: Rows = []
    for measure, label, hits, of in PROPORTIONS:
        for arm in arms:
            x, n = arm.count(hits), arm.count(of)
            ci = wilson(x, n)
            row = _row(measure, label, arm, n, x / n if n else None, ci.low, ci.high)
            if arm is not control:
                leads = (control.count("leads"), arm.count("leads"))
                verdict = compare_proportions(
                    (control.count(hits), control.count(of)), (x, n), leads
                )
                row |= _verdict(verdict)
            rows.append(row)
    for measure, label, prefix, unit in MEANS:
        for arm in arms:
            sample = arm.sample(prefix)
            interval = mean_interval(sample)
            row = _row(
                measure,
                label,
                arm,
                sample.n,
                sample.mean if sample.n else None,
                interval.low if interval else None,
                interval.high if interval else None,
            )
            if arm is not control:
                leads = (control.count("leads"), arm.count("leads"))
                row |= _verdict(compare_means(control.sample(prefix), sample, leads, unit))
            rows.append(row)
    return rows


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _row(
    measure: str,
    label: str,
    arm: Arm,
    n: int,
    value: float | None,
    low: float | None,
    high: float | None,
) -> dict[str, Any]:
    return {
        "measure": measure,
        "label": label,
        "variant": arm.name,
        "leads": arm.count("leads"),
        "n": n,
        "value": _rounded(value),
        "ci_low": _rounded(low),
        "ci_high": _rounded(high),
        "difference": None,
        "difference_low": None,
        "difference_high": None,
        "significant": None,
        "more_leads_needed": None,
        "statement": "control",
    }


def _verdict(v: Verdict) -> dict[str, Any]:
    return {
        "difference": _rounded(v.difference),
        "difference_low": _rounded(v.interval.low if v.interval else None),
        "difference_high": _rounded(v.interval.high if v.interval else None),
        "significant": v.significant,
        "more_leads_needed": v.more_leads,
        "statement": v.statement,
    }
