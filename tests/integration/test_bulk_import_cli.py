"""`leadflow import` against the real broker: every row published, a summary,
and the per-row error file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.config.settings import PROJECT_ROOT
from pipeline.config.topics import load_topics
from pipeline.dev.harness import settings_env
from schemas.inquiry import Inquiry
from tests.support.broker import read_topic
from tests.support.settings import isolated_settings

LIST = (
    "First Name,Last Name,Email,Company,Zip,City,Country\n"
    "Nora,Lind,nora@lind-gmbh.de,Lind GmbH,80331,München,DE\n"
    "Otto,Falk,otto-at-falk.de,,,,\n"
    "Nora,Lind,Nora@Lind-GmbH.de,Lind GmbH,,,\n"
)


def test_import_publishes_every_row_and_writes_the_error_file(kafka: str, tmp_path: Path) -> None:
    settings = isolated_settings(kafka, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    asyncio.run(apply_topics(kafka, [topics.inquiries]))
    source = tmp_path / "fair.csv"
    source.write_text(LIST, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.entrypoints.cli",
            "import",
            str(source),
            "--campaign",
            "dmexco",
        ],
        cwd=PROJECT_ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rows: 1 accepted, 1 rejected" in done.stdout
    assert "1 duplicates of an earlier row" in done.stdout
    errors = (tmp_path / "fair.csv.errors.csv").read_text().splitlines()
    assert errors[0] == "row,code,field,message"
    assert errors[1].startswith("3,email_invalid,contact.email,")
    published = asyncio.run(read_topic(kafka, topics.inquiries))
    inquiries = [Inquiry.model_validate_json(raw or b"") for _, raw in published]
    assert len(inquiries) == 3  # bad rows too: capture rejects them into leads.rejected
    assert {i.source.channel for i in inquiries} == {"trade_fair"}
    assert {i.source.campaign for i in inquiries} == {"dmexco"}
