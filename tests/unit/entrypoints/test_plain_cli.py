"""The CLI speaks plainly (issue 19, point 3): one line saying what is down and
how to start it, exit 1, never a traceback; `--version` and `-h`; tables in full
outside a terminal, rates as percentages; every rule file checked at once."""

from __future__ import annotations

import io
from importlib.metadata import version
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipeline.config.settings import SHIPPED_RULES, load_settings
from pipeline.entrypoints.cli import app, common
from pipeline.entrypoints.demo import funnel_table
from pipeline.reporting.events import FUNNEL_COLUMNS
from tests.support.processes import leadflow
from tests.support.settings import free_port
from tests.unit.entrypoints.test_cli import logging_restored

runner = CliRunner()
LEAD = "7b0c1d5e-1111-4222-8333-944455556666"


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    with logging_restored():
        yield


def test_version_and_short_help_on_the_root_and_on_a_sub_command() -> None:
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.output.strip() == f"leadflow {version('leadflow')}"
    root = runner.invoke(app, ["-h"])
    assert root.exit_code == 0 and "Commands" in root.output and "--version" in root.output
    sub = runner.invoke(app, ["privacy", "export", "-h"])
    assert sub.exit_code == 0 and "--out" in sub.output


@pytest.mark.parametrize(
    ("args", "down"),
    [
        (["import", "{csv}"], "no Kafka broker answers at"),
        (["routing", "explain", LEAD], "no Kafka broker answers at"),
        (["rules", "explain", LEAD], "no Kafka broker answers at"),
        (["topics", "apply"], "no Kafka broker answers at"),
        (["privacy", "erase", "ada@example.com"], "no worker answers at"),
        (["privacy", "export", "ada@example.com"], "no worker answers at"),
        (["report", "sink"], "no worker answers at"),
    ],
)
def test_with_nothing_listening_a_command_says_in_one_line_what_is_down(
    tmp_path: Path, args: list[str], down: str
) -> None:
    """Ports nothing listens on, for the broker and the worker. `privacy export` used
    to wait two minutes for the warehouse before it said so: the subprocess timeout
    (30 s) would fail the test."""
    fair = tmp_path / "fair.csv"
    fair.write_text("email,company\nada@example.com,Ada GmbH\n")
    settings = load_settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", web_port=free_port(), state_dir=tmp_path
    )
    done = leadflow(settings, *(a.format(csv=fair) for a in args), timeout=30)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "Traceback" not in said and "Unclosed" not in said and "KafkaConnectionError" not in said
    [line] = [line for line in said.splitlines() if line.startswith("error:")]
    assert down in line
    start = "`leadflow kafka up`" if "Kafka" in down else "`leadflow worker`"
    assert start in line
    assert said.count("\n") <= 2  # the error line (and import's progress line), nothing else


def test_an_unexpected_error_is_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(common, "cli_settings", broken)
    command = common.friendly(lambda: common.cli_settings())
    failed = runner.invoke(_single(command), [])
    assert failed.exit_code == 1
    assert "unexpected KeyError" in failed.output and "--debug" in failed.output
    assert "Traceback" not in failed.output


def _single(fn):  # type: ignore[no-untyped-def]
    import typer

    one = typer.Typer()
    one.command()(fn)
    return one


def _captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(common.sys, "stdout", out)
    monkeypatch.setattr(common, "TERMINAL", False)
    monkeypatch.setattr(common, "console", Console(file=out, width=120))
    return out


def test_outside_a_terminal_a_wide_table_is_printed_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _captured(monkeypatch)
    row = {c: 1234567 for c in FUNNEL_COLUMNS} | {"channel": "trade_fair_hannover_messe_2026"}
    common.print_table(funnel_table([row, row | {"channel": "web_form"}]))
    text = out.getvalue()
    assert "…" not in text
    for column in FUNNEL_COLUMNS:
        assert column.replace("_", "-") in text  # sales-ready, answered-in-target in full
    assert "trade_fair_hannover_messe_2026" in text
    assert max(len(line) for line in text.splitlines()) > 120  # wider than the old cut


def test_rates_are_percentages_in_a_table_and_fractions_in_csv_and_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [{"channel": "web_form", "lead": 23, "lead_to_mql": 0.9565, "roi": None}]
    out = _captured(monkeypatch)
    common.print_rows(rows, "table", "Funnel", rates=("lead_to_mql", "roi"))
    assert "95.7%" in out.getvalue() and "0.9565" not in out.getvalue()
    assert "23" in out.getvalue() and "–" in out.getvalue()
    out = _captured(monkeypatch)
    common.print_rows(rows, "csv", "Funnel", rates=("lead_to_mql",))
    assert "0.9565" in out.getvalue()
    out = _captured(monkeypatch)
    common.print_rows(rows, "json", "Funnel", rates=("lead_to_mql",))
    assert "0.9565" in out.getvalue()


def test_every_report_rate_column_is_one_the_report_returns() -> None:
    from pipeline.reporting.reports import FUNNEL_RATES, REPORTS

    assert REPORTS["funnel"].rates == FUNNEL_RATES and "lead_to_mql" in FUNNEL_RATES
    assert REPORTS["speed"].rates == ("contacted_within_5_min",)


RULE_FILES = (
    "scoring",
    "nurture",
    "routing",
    "exclusions",
    "enrichment",
    "costs",
    "targets",
)


def _rules_copy(target: Path) -> Path:
    for kind in RULE_FILES:
        source = SHIPPED_RULES / f"{kind}.yaml"
        (target / f"{kind}.yaml").write_text(source.read_text())
    return target


def test_rules_check_validates_all_seven_rule_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_RULES_DIR", str(_rules_copy(tmp_path)))
    checked = runner.invoke(app, ["rules", "check"])
    assert checked.exit_code == 0, checked.output
    for kind in RULE_FILES:
        assert f"{kind}.yaml" in checked.output
    for kind in ("exclusions", "costs", "targets"):  # refused before
        one = runner.invoke(app, ["rules", "check", str(tmp_path / f"{kind}.yaml")])
        assert one.exit_code == 0 and "ok" in one.output, one.output


def _break_three(rules: Path) -> None:
    routing = (rules / "routing.yaml").read_text().replace("queue: dach", "queue: dahc")
    (rules / "routing.yaml").write_text(routing)
    costs = (rules / "costs.yaml").read_text().replace("month: 2026-", "month: 26-", 1)
    (rules / "costs.yaml").write_text(costs)
    (rules / "targets.yaml").write_text("targets:\n  - month: 2026-11\n    leads: -5\n")


def test_a_worker_on_a_broken_rules_directory_names_every_broken_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_three(_rules_copy(tmp_path))
    monkeypatch.setenv("LEADFLOW_RULES_DIR", str(tmp_path))
    for args in (["worker"], ["rules", "check"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "3 of the rule files" in result.output
        assert "routing.yaml" in result.output and "unknown queue(s) dahc" in result.output
        assert "costs.yaml" in result.output and "costs.0.month" in result.output
        assert "targets.yaml" in result.output and "targets.0.leads" in result.output
        assert "scoring.yaml" not in result.output  # only the broken ones
        assert "Traceback" not in result.output
