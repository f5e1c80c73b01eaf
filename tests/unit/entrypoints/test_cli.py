"""Configuration mistakes stop a command with a message a RevOps person reads."""

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from pipeline.config.settings import PROJECT_ROOT, SHIPPED_RULES
from pipeline.entrypoints.cli import app

runner = CliRunner()


@contextmanager
def logging_restored() -> Iterator[None]:
    """Run CLI commands in this process without leaving their logging set up: a
    command configures structlog to write to the runner's stderr, which is closed
    once the command returns, so any later log line in the test process would fail
    (whichever test happened to run next)."""
    record_factory = logging.getLogRecordFactory()
    kafka_level = logging.getLogger("aiokafka").level  # a command quiets the Kafka client
    try:
        yield
    finally:
        structlog.reset_defaults()
        logging.setLogRecordFactory(record_factory)
        logging.getLogger("aiokafka").setLevel(kafka_level)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with logging_restored():
        yield


def test_the_process_logs_again_after_a_command_ran_in_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with logging_restored():
        assert runner.invoke(app, ["topics", "list"]).exit_code == 0
    structlog.get_logger().info("after the command")  # not onto the runner's closed stderr
    assert "after the command" in capsys.readouterr().out


def test_the_cli_starts_without_the_worker_runtime_kafka_or_the_warehouse() -> None:
    """`leadflow --help` stays fast: each command imports what it runs."""
    probe = (
        "import sys\n"
        "from pipeline.entrypoints.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'faust', 'mode', 'aiokafka', 'aiohttp', 'chdb', 'clickhouse_connect'}\n"
        "print('loaded:', sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    started = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert "Commands" in started.stdout and "loaded: []" in started.stdout


def test_a_bad_rule_file_stops_the_worker_with_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("scoring.yaml", "nurture.yaml", "routing.yaml"):
        (tmp_path / name).write_text((SHIPPED_RULES / name).read_text())
    routing = (tmp_path / "routing.yaml").read_text().replace("queue: dach", "queue: dahc")
    (tmp_path / "routing.yaml").write_text(routing)
    monkeypatch.setenv("LEADFLOW_RULES_DIR", str(tmp_path))
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 1
    assert "routing.yaml" in result.output
    assert "unknown queue(s) dahc" in result.output
    assert "Traceback" not in result.output


def test_a_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_WEB_PORT", "not-a-port")
    result = runner.invoke(app, ["topics", "list"])
    assert result.exit_code == 1
    assert "LEADFLOW_WEB_PORT" in result.output


def test_topics_list_shows_the_registry() -> None:
    result = runner.invoke(app, ["topics", "list"])
    assert result.exit_code == 0
    assert "leads.sales-ready" in result.output
    assert "schemas.lead:LeadAssigned" in result.output


def test_rules_check_summarises_a_good_file_and_names_the_key_of_a_bad_one(
    tmp_path: Path,
) -> None:
    good = runner.invoke(app, ["rules", "check", str(SHIPPED_RULES / "scoring.yaml")])
    assert good.exit_code == 0
    assert "5 criteria" in good.output and "SQL from 30" in good.output
    bad = tmp_path / "mine.yaml"
    bad.write_text((SHIPPED_RULES / "scoring.yaml").read_text().replace("weight: 4", "weight: 7"))
    result = runner.invoke(app, ["rules", "check", str(bad), "--kind", "scoring"])
    assert result.exit_code == 1
    assert "criteria.0.weight" in result.output and "Traceback" not in result.output
    unnamed = runner.invoke(app, ["rules", "check", str(bad)])
    assert unnamed.exit_code == 1 and "--kind" in unnamed.output


def test_the_crm_bridge_refuses_an_address_that_is_no_web_address() -> None:
    result = runner.invoke(app, ["crm-bridge", "--url", "crm.example/hook"])
    assert result.exit_code == 1
    assert "--url must be an http(s) address" in result.output


def test_purging_the_broker_also_drops_the_workers_table_state(tmp_path: Path) -> None:
    """Table state mirrors changelog offsets; after a purge Faust would refuse to start on it."""
    from pipeline.config.settings import load_settings
    from pipeline.dev.local_kafka import LocalKafka

    settings = load_settings(state_dir=tmp_path, kafka_bootstrap="127.0.0.1:1")
    (tmp_path / "worker" / "tables").mkdir(parents=True)
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "jars").mkdir(parents=True)
    LocalKafka(settings).down(purge=True)
    assert not (tmp_path / "worker").exists() and not (tmp_path / "kafka" / "data").exists()
    assert (tmp_path / "kafka" / "jars").exists()  # the downloaded jars stay
