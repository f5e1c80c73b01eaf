"""Where an installed Leadflow finds its files (issue 18 point 1): the shipped
defaults inside the package, the operator's own by setting, the state in the
working directory unless set (tests/e2e/test_installed_wheel.py runs the same
from a wheel)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pipeline
from pipeline.config.rules import RULE_FILES, check_rules_dir, rules_summary
from pipeline.config.settings import SHIPPED_RULES, SHIPPED_TOPICS, load_settings
from pipeline.errors import ConfigError

PACKAGE = Path(pipeline.__file__).parent


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no settings in the environment."""
    for name in ("LEADFLOW_STATE_DIR", "LEADFLOW_RULES_DIR", "LEADFLOW_TOPICS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_defaults_are_the_packages_own_files_and_state_in_the_working_directory(
    elsewhere: Path,
) -> None:
    settings = load_settings()
    assert settings.topics_file == SHIPPED_TOPICS and SHIPPED_TOPICS.is_relative_to(PACKAGE)
    assert settings.rules_dir == SHIPPED_RULES and (SHIPPED_RULES / "scoring.yaml").is_file()
    assert settings.state_dir == elsewhere / ".leadflow"
    assert settings.embedded_warehouse_dir == elsewhere / ".leadflow" / "warehouse"


def test_relative_paths_are_taken_from_the_working_directory_at_start(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_STATE_DIR", "state")
    monkeypatch.setenv("LEADFLOW_RULES_DIR", "rules")
    settings = load_settings()
    monkeypatch.chdir(elsewhere.parent)  # a child process may start elsewhere
    assert settings.state_dir == elsewhere / "state"
    assert settings.rules_dir == elsewhere / "rules"


def test_checking_a_rules_directory_summarises_each_file_and_names_a_missing_one(
    tmp_path: Path,
) -> None:
    checked = rules_summary(SHIPPED_RULES)
    assert [path.name for path, _ in checked] == [f"{kind}.yaml" for kind in RULE_FILES]
    assert all(summary != "left out" for _, summary in checked)  # all seven shipped
    mine = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, mine)
    (mine / "enrichment.yaml").unlink()  # optional: the built-in providers
    assert dict((p.name, s) for p, s in rules_summary(mine))["enrichment.yaml"] == "left out"
    (mine / "exclusions.yaml").unlink()  # not optional: the worker would not start
    with pytest.raises(ConfigError, match=r"exclusions\.yaml: cannot read the file"):
        check_rules_dir(mine)
