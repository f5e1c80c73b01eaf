"""Rule versions and experiments as the worker loads them: variants resolved and
validated like the files they stand in for, each lead's rules, and a running
experiment's definition guarded against changes."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config.experiments import RECORD_FILE, check_recorded
from pipeline.config.rules import check_rules_dir, load_rules, rules_summary
from pipeline.config.settings import SHIPPED_RULES
from pipeline.errors import ConfigError
from schemas.envelope import derive_id
from schemas.lead import VariantAssigned

DURING = datetime(2026, 12, 10, tzinfo=UTC)
BEFORE = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """The shipped rules with the example experiments."""
    target = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, target)
    shutil.copy(target / "examples" / "experiments.yaml", target / "experiments.yaml")
    return target


def test_the_shipped_rules_run_no_experiment_and_name_their_versions() -> None:
    shipped = load_rules(SHIPPED_RULES)
    assert shipped.experiments.definitions.experiments == []
    lead = uuid.uuid4()
    chosen = shipped.for_lead(lead, DURING)
    assert chosen.variants == () and chosen.scoring is shipped.scoring
    assert {k: v.name for k, v in chosen.versions.items()} == {
        "scoring": "scoring.yaml",
        "nurture": "nurture.yaml",
        "routing": "routing.yaml",
    }
    assert all(len(v.hash) == 12 for v in chosen.versions.values())
    summary = dict((p.name, s) for p, s in rules_summary(SHIPPED_RULES))
    assert summary["experiments.yaml"] == "no experiments"


def test_a_comment_keeps_the_version_and_a_weight_changes_it(rules: Path) -> None:
    before = load_rules(rules).base.versions["scoring"]
    text = (rules / "scoring.yaml").read_text()
    (rules / "scoring.yaml").write_text("# reworded\n" + text.replace("\n\n", "\n"))
    assert load_rules(rules).base.versions["scoring"] == before
    (rules / "scoring.yaml").write_text(text.replace("mql: 12", "mql: 13"))
    after = load_rules(rules).base.versions["scoring"]
    assert after.hash != before.hash and after.name == "scoring.yaml"
    (rules / "scoring.yaml").write_text("version: 2026-12 bar 13\n" + text)
    assert load_rules(rules).base.versions["scoring"].name == "2026-12 bar 13"


def test_each_lead_runs_its_variants_rules_while_the_experiments_run(rules: Path) -> None:
    loaded = load_rules(rules)
    seen: dict[tuple[str, ...], int] = {}
    for n in range(400):
        lead = derive_id("lead", n)
        chosen = loaded.for_lead(lead, DURING)
        arms = {a.experiment: a.variant for a in chosen.variants}
        assert set(arms) == {"lower-mql-bar", "dach-round-robin"}
        low = arms["lower-mql-bar"] == "mql-8"
        assert chosen.scoring.thresholds.mql == (8 if low else 12)
        assert chosen.scoring.thresholds.sql == 30  # an override changes only what it says
        assert chosen.versions["scoring"].name == (
            "2026-12 MQL bar 8 (lower-mql-bar/mql-8)" if low else "scoring.yaml"
        )
        robin = arms["dach-round-robin"] == "round-robin"
        assert chosen.routing.queues["dach"].strategy == (
            "round_robin" if robin else "least_loaded"
        )
        assert chosen.nurture is loaded.nurture  # nobody varies nurture
        key = (arms["lower-mql-bar"], arms["dach-round-robin"])
        seen[key] = seen.get(key, 0) + 1
        again = loaded.for_lead(lead, DURING + timedelta(days=3))
        assert again.variants == chosen.variants  # the lead id decides, not the moment
    assert len(seen) == 4 and min(seen.values()) > 60
    # before the start and from the end on: the directory's rules, no variant
    for moment in (BEFORE, datetime(2027, 2, 1, tzinfo=UTC)):
        outside = loaded.for_lead(derive_id("lead", 1), moment)
        assert outside.variants == () and outside.versions == loaded.base.versions
    january = loaded.for_lead(derive_id("lead", 1), datetime(2027, 1, 5, tzinfo=UTC))
    assert [a.experiment for a in january.variants] == ["dach-round-robin"]


def test_stamping_records_the_rules_and_variants_on_a_decision(rules: Path) -> None:
    from pipeline.domain.distribute.routing import route_lead
    from tests.unit.domain.distribute.test_routing import ROUTING, handoff

    routed = route_lead(handoff(contact={"email": "a@firma.de"}), ROUTING)
    chosen = load_rules(rules).for_lead(routed.lead_id, DURING)
    stamped = chosen.stamp("routing", routed)
    assert stamped.rules == chosen.versions["routing"]
    assert stamped.experiments == list(chosen.variants)
    assert all(isinstance(a, VariantAssigned) for a in stamped.experiments)
    assert stamped.event_id == routed.event_id and routed.rules is None  # the same fact
    assert stamped.schema_version == "1.2"
    old = type(routed).model_validate_json(routed.model_dump_json(exclude={"rules", "experiments"}))
    assert old.rules is None and old.experiments == []  # an older event still reads


@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        (
            "thresholds: {mql: 8}",
            "thresholds: {mql: 40}",
            [
                "1 of the rule files",
                "lower-mql-bar/mql-8, overrides.scoring",
                "the sql threshold must be at least the mql threshold",
            ],
        ),
        (
            "dach: {strategy: round_robin}",
            "dach-sued: {reps: [{id: ute, name: Ute, email: ute@leadflow.example}]}",
            ["queues dach-sued are not in routing.yaml"],
        ),
        (
            "        overrides:\n          scoring:",
            "        scoring: variants/missing.yaml\n        overrides:\n          scoring:",
            ["variants/missing.yaml: cannot read the file"],
        ),
    ],
)
def test_a_variant_is_checked_like_the_file_it_stands_in_for(
    rules: Path, old: str, new: str, problems: list[str]
) -> None:
    text = (rules / "experiments.yaml").read_text()
    assert old in text
    (rules / "experiments.yaml").write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as wrong:
        check_rules_dir(rules)  # what `leadflow rules check` and the worker's start run
    assert all(problem in str(wrong.value) for problem in problems), str(wrong.value)


def test_a_variant_may_run_a_file_of_its_own(rules: Path) -> None:
    (rules / "experiments.yaml").write_text(
        """experiments:
  - name: bant
    start: 2026-12-01
    end: 2027-01-01
    variants:
      - {name: matrix, share: 70}
      - {name: bant, share: 30, scoring: examples/scoring-bant.yaml}
"""
    )
    loaded = load_rules(rules)
    arms = {loaded.for_lead(derive_id("lead", n), DURING).variants[0].variant for n in range(50)}
    assert arms == {"matrix", "bant"}
    lead = next(
        derive_id("lead", n)
        for n in range(50)
        if loaded.for_lead(derive_id("lead", n), DURING).variants[0].variant == "bant"
    )
    chosen = loaded.for_lead(lead, DURING)
    assert "bant" in chosen.scoring.presets
    assert chosen.versions["scoring"].name == "scoring.yaml (bant/bant)"


def record_of(rules: Path, state: Path, now: datetime, force: bool = False) -> list[str]:
    return check_recorded(state / RECORD_FILE, load_rules(rules).experiments, now, force)


def test_a_running_experiment_that_changed_is_refused_unless_forced(
    rules: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert record_of(rules, state, DURING) == []  # the first start records
    recorded = json.loads((state / RECORD_FILE).read_text())
    assert set(recorded) == {"lower-mql-bar", "dach-round-robin"}
    assert record_of(rules, state, DURING) == []  # the same definitions: fine

    text = (rules / "experiments.yaml").read_text()
    changed = text.replace(
        "share: 50\n      - name: mql-8\n        share: 50",
        "share: 30\n      - name: mql-8\n        share: 70",
    )
    assert changed != text
    (rules / "experiments.yaml").write_text(changed)
    with pytest.raises(ConfigError, match="lower-mql-bar changed while it runs") as refused:
        record_of(rules, state, DURING)
    assert "LEADFLOW_FORCE_EXPERIMENT_CHANGES" in str(refused.value)
    assert json.loads((state / RECORD_FILE).read_text()) == recorded  # nothing recorded
    window = "2026-12-01T00:00:00+00:00 to 2027-01-01T00:00:00+00:00"
    assert record_of(rules, state, DURING, force=True) == [
        f"lower-mql-bar changed while it runs ({window})"
    ]
    assert record_of(rules, state, DURING) == []  # the forced definition is the record now

    (rules / "experiments.yaml").write_text(text)  # removing the routing experiment ...
    only = text[: text.index("  - name: dach-round-robin")]
    (rules / "experiments.yaml").write_text(
        only.replace(
            "share: 50\n      - name: mql-8\n        share: 50",
            "share: 30\n      - name: mql-8\n        share: 70",
        )
    )
    with pytest.raises(ConfigError, match="dach-round-robin was removed while it runs"):
        record_of(rules, state, DURING)


def test_a_change_before_the_start_or_after_the_end_is_free(rules: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    record_of(rules, state, BEFORE)
    text = (rules / "experiments.yaml").read_text()
    (rules / "experiments.yaml").write_text(
        text.replace("thresholds: {mql: 8}", "thresholds: {mql: 9}")
    )
    assert record_of(rules, state, BEFORE) == []  # not running yet
    (rules / "experiments.yaml").write_text(
        text.replace("thresholds: {mql: 8}", "thresholds: {mql: 10}")
    )
    with pytest.raises(ConfigError, match="lower-mql-bar changed"):
        record_of(rules, state, DURING)  # started meanwhile: the record is the mql 9 one
    assert record_of(rules, state, datetime(2027, 3, 1, tzinfo=UTC)) == []  # both ended


def test_a_variants_file_is_part_of_the_definition(rules: Path, tmp_path: Path) -> None:
    (rules / "variants").mkdir()
    shutil.copy(rules / "routing.yaml", rules / "variants" / "routing-fast.yaml")
    (rules / "experiments.yaml").write_text(
        """experiments:
  - name: fast-sla
    start: 2026-12-01
    end: 2027-01-01
    variants:
      - {name: today, share: 50}
      - {name: fast, share: 50, routing: variants/routing-fast.yaml}
"""
    )
    state = tmp_path / "state"
    record_of(rules, state, DURING)
    fast = rules / "variants" / "routing-fast.yaml"
    fast.write_text(fast.read_text().replace("sla_minutes: 15", "sla_minutes: 10"))
    with pytest.raises(ConfigError, match="fast-sla changed while it runs"):
        record_of(rules, state, DURING)
