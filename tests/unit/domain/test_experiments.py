"""Experiments: who is in which variant (stable, by share, independent per experiment)
and which definitions are refused."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from random import Random
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.domain.experiments import Experiment, Experiments, bucket, merged

START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def experiment(name: str = "mql-bar", **fields: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "name": name,
            "start": START,
            "end": END,
            "variants": [
                {"name": "control", "share": 50},
                {"name": "low", "share": 50, "overrides": {"scoring": {"thresholds": {"mql": 5}}}},
            ],
        }
        | fields
    )


def lead_ids(n: int, seed: int = 7) -> list[uuid.UUID]:
    rng = Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(n)]


def test_a_leads_variant_is_the_same_on_every_call_process_and_hash_seed() -> None:
    e = experiment()
    leads = lead_ids(200)
    here = [e.variant_of(lead).name for lead in leads]
    assert here == [e.variant_of(lead).name for lead in leads]  # a redelivery: the same
    # another process with another hash seed (a restart, another worker) agrees
    script = (
        "import sys, uuid; from tests.unit.domain.test_experiments import experiment;"
        "e = experiment(); print(','.join(e.variant_of(uuid.UUID(x)).name "
        "for x in sys.stdin.read().split()))"
    )
    for seed in ("1", "2"):
        other = subprocess.run(
            [sys.executable, "-c", script],
            input=" ".join(map(str, leads)),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert other.stdout.strip().split(",") == here
    # pinned: a change of the hashing would move running experiments' leads
    lead = uuid.UUID("6f1c1f5e-3b7a-4d3e-9a55-2f0c0de1ead5")
    assert f"{bucket('mql-bar', lead):.6f}" == "0.837372"
    assert e.variant_of(lead).name == "low"  # 0.84 is past the control's 50 %


def test_shares_split_the_leads_as_declared() -> None:
    e = experiment(
        variants=[
            {"name": "a", "share": 20},
            {"name": "b", "share": 30, "overrides": {"routing": {"sla_minutes": 3}}},
            {"name": "c", "share": 50, "overrides": {"routing": {"sla_minutes": 9}}},
        ]
    )
    n = 20_000
    counts = Counter(e.variant_of(lead).name for lead in lead_ids(n))
    for name, share in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
        sd = (n * share * (1 - share)) ** 0.5
        assert abs(counts[name] - n * share) < 4 * sd, counts


def test_two_experiments_split_the_leads_independently() -> None:
    one = experiment("one")
    other = experiment(
        "other",
        variants=[
            {"name": "x", "share": 50},
            {"name": "y", "share": 50, "overrides": {"nurture": {"version": "y"}}},
        ],
    )
    pairs = Counter(
        (one.variant_of(lead).name, other.variant_of(lead).name) for lead in lead_ids(8000)
    )
    assert len(pairs) == 4 and all(
        abs(c - 2000) < 4 * (8000 * 0.25 * 0.75) ** 0.5 for c in pairs.values()
    )


def test_the_control_is_the_variant_that_changes_nothing() -> None:
    e = experiment(
        variants=[
            {"name": "new", "share": 50, "scoring": "scoring-new.yaml"},
            {"name": "old", "share": 50},
        ]
    )
    assert e.control.name == "old" and e.changes() == ("scoring",)
    assert e.variants[0].file("scoring") == "scoring-new.yaml"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"end": START}, "must come after start"),
        (
            {
                "variants": [
                    {"name": "a", "share": 50},
                    {"name": "b", "share": 40, "routing": "r.yaml"},
                ]
            },
            "add up to 90",
        ),
        (
            {
                "variants": [
                    {"name": "a", "share": 50},
                    {"name": "a", "share": 50, "routing": "r.yaml"},
                ]
            },
            "share a name",
        ),
        (
            {"variants": [{"name": "a", "share": 50}, {"name": "b", "share": 50}]},
            "no variant changes",
        ),
        ({"variants": [{"name": "a", "share": 100, "routing": "r.yaml"}]}, "at least 2"),
        ({"name": "Mql Bar"}, "should match pattern"),
        (
            {
                "variants": [
                    {"name": "a", "share": 50},
                    {"name": "b", "share": 50, "overrides": {"exclusions": {}}},
                ]
            },
            "overrides.exclusions",
        ),
    ],
)
def test_a_wrong_experiment_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        experiment(**fields)


def test_experiments_that_overlap_must_vary_different_rules() -> None:
    first = experiment("first").model_dump()
    later = experiment("later").model_dump() | {"start": datetime(2026, 12, 20, tzinfo=UTC)}
    with pytest.raises(ValidationError, match="overlap in time and both change the scoring"):
        Experiments.model_validate({"experiments": [first, later]})
    after = later | {"start": END, "end": datetime(2027, 2, 1, tzinfo=UTC)}
    both = Experiments.model_validate({"experiments": [first, after]})
    assert [e.name for e in both.running(datetime(2026, 12, 5, tzinfo=UTC))] == ["first"]
    assert [e.name for e in both.running(END)] == ["later"]  # end is exclusive
    with pytest.raises(ValidationError, match="two experiments share a name"):
        Experiments.model_validate({"experiments": [first, first]})


def test_a_date_alone_means_midnight_utc() -> None:
    e = Experiment.model_validate(
        experiment().model_dump() | {"start": "2026-12-01", "end": "2027-01-01"}
    )
    assert e.start == START and e.end == END
    with pytest.raises(ValidationError, match="time zone"):
        experiment(start="2026-12-01T00:00:00")


def test_overrides_merge_mappings_and_replace_the_rest() -> None:
    base = {
        "thresholds": {"mql": 12, "sql": 30},
        "criteria": [1, 2],
        "retire": {"max_iterations": 8},
    }
    over = {"thresholds": {"mql": 5}, "criteria": [3]}
    assert merged(base, over) == {
        "thresholds": {"mql": 5, "sql": 30},
        "criteria": [3],
        "retire": {"max_iterations": 8},
    }
    assert base["thresholds"] == {"mql": 12, "sql": 30}  # the base is left as it was
