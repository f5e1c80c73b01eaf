"""Kafka with TLS and SASL (issue 18 point 3): a broker of its own with a SASL_SSL
listener, as a managed cluster has one, and the worker, the CLI and the test's
own clients reaching it only there.

The broker is the local one (`LocalKafka.private`) with a second listener: its
certificate is signed at test time by a CA made with openssl, and its SCRAM-SHA-512
user is written into the cluster's metadata by the broker's own storage tool. The
worker gets the SASL_SSL port alone, so every client it makes (topic admin,
Faust's consumers and producers, the warehouse sink, the table mirrors) must use
the security settings to do anything at all. A wrong password or an untrusted CA
stops the start with one line naming the settings to check.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.adapters.worker_api import get_json, wait_until_stored
from pipeline.config.settings import Settings
from pipeline.config.topics import load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.dev.local_kafka import LocalKafka, SaslSslListener, _free_port
from pipeline.dev.traffic import demo_inquiries
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

USER, PASSWORD = "leadflow-worker", "a-long-scram-password"
TIMEOUT_S = 180.0


@dataclass(frozen=True)
class SecuredBroker:
    bootstrap: str  # the SASL_SSL listener
    ca_file: Path


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A CA, and the broker's key and certificate for 127.0.0.1 signed by it (PEM):
    (the CA file clients trust, the broker's keystore)."""
    directory.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Leadflow test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
            "-out", "broker.csr", "-subj", "/CN=localhost")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "broker.pem")  # fmt: skip
    keystore = directory / "keystore.pem"
    keystore.write_text(
        (directory / "broker.key").read_text() + (directory / "broker.pem").read_text()
    )
    return directory / "ca.pem", keystore


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    root = tmp_path_factory.mktemp("secured")
    ca_file, keystore = make_certificates(root / "tls")
    port = _free_port()
    broker = LocalKafka.private(root / "broker", SaslSslListener(port, keystore, {USER: PASSWORD}))
    broker.up(log=print)
    try:
        yield SecuredBroker(f"127.0.0.1:{port}", ca_file)
    finally:
        broker.down()


def secured_settings(broker: SecuredBroker, state: Path, password: str = PASSWORD) -> Settings:
    return isolated_settings(broker.bootstrap, state).model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": USER,
            "kafka_sasl_password": SecretStr(password),
            "kafka_ssl_ca_file": broker.ca_file,
        }
    )


@pytest.mark.timeout(600)
def test_inquiries_run_end_to_end_through_a_sasl_ssl_listener(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    settings = secured_settings(secured, tmp_path)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    messages = demo_inquiries(60, seed=18, run=f"{uuid.uuid4().hex[:6]}-", duplicate_share=0.0)
    values = [m.value for m in messages]

    async def scenario() -> list[str]:
        await apply_topics(settings.kafka, topics.all())
        watcher = OutcomeWatcher(settings.kafka, topics)
        await watcher.start()
        try:
            positions = await publish(settings.kafka, topics.inquiries.name, values)
            return await watcher.unaccounted(list(zip(values, positions, strict=True)), TIMEOUT_S)
        finally:
            await watcher.stop()

    with WorkerProcess(settings, tmp_path / "worker.log"):
        missing = asyncio.run(scenario())
        asyncio.run(wait_until_stored(settings))
        stored = get_json(settings, "/v1/warehouse/events")
    assert missing == [], f"{len(missing)} inquiries not accounted for"
    distinct = sum(m.kind != "duplicate" for m in messages)
    assert stored["InquiryReceived"] + stored.get("Unreadable", 0) == distinct


def test_a_wrong_password_stops_the_worker_with_one_line(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    settings = secured_settings(secured, tmp_path, password="not-the-password")
    result = leadflow(settings, "worker", timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    said = " ".join(output.split())  # the console wraps long lines
    assert output.count("error:") == 1 and said.startswith("error: "), output
    assert said == (
        f"error: Kafka at {secured.bootstrap} refused user '{USER}' with SCRAM-SHA-512 "
        "(Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512): check LEADFLOW_KAFKA_SASL_USERNAME, "
        "LEADFLOW_KAFKA_SASL_PASSWORD and LEADFLOW_KAFKA_SASL_MECHANISM."
    ), output
    assert "Traceback" not in output and "not-the-password" not in output


def test_a_broker_certificate_from_an_unknown_ca_stops_the_start_with_one_line(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    stranger, _ = make_certificates(tmp_path / "other-ca")
    settings = secured_settings(secured, tmp_path).model_copy(
        update={"kafka_ssl_ca_file": stranger}
    )
    result = leadflow(settings, "topics", "apply")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"error: TLS with Kafka at {secured.bootstrap} failed" in output
    assert "CERTIFICATE_VERIFY_FAILED" in output and "LEADFLOW_KAFKA_SSL_CA_FILE" in output
    assert "Traceback" not in output
