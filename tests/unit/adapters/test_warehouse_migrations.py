"""The warehouse's migration files: numbered, unique, applied in order (no I/O
beyond reading them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import load_migrations
from pipeline.errors import ConfigError


def test_migrations_are_numbered_files_applied_in_order(tmp_path: Path) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[:3] == [1, 2, 3]
    (tmp_path / "001_a.sql").write_text("SELECT 1\n;\n-- a comment\nSELECT 2\n;\n")
    [only] = load_migrations(tmp_path)
    assert only.statements() == ["SELECT 1", "SELECT 2"]
    (tmp_path / "001_b.sql").write_text("SELECT 3")
    with pytest.raises(ConfigError, match="exists twice"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "latest.sql").write_text("SELECT 3")
    with pytest.raises(ConfigError, match=r"NNN_what_it_does\.sql"):
        load_migrations(tmp_path)
