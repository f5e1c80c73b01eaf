"""The security settings as every Kafka client gets them (issue 18 point 3): one
`KafkaConnection` from the LEADFLOW_KAFKA_* settings, checked at start, turned
into aiokafka's keyword arguments and Faust's broker credentials in one place
(tests/e2e/test_secured_kafka.py runs them against a SASL_SSL broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol, SASLMechanism

from pipeline.adapters.kafka.security import client_options, faust_credentials
from pipeline.config.kafka import KafkaConnection
from pipeline.config.settings import load_settings
from pipeline.errors import ConfigError

SASL = {
    "kafka_bootstrap": "b1.example:9093,b2.example:9093",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
    "kafka_sasl_username": "leadflow",
    "kafka_sasl_password": "pa55-word",
}


def test_a_plain_address_is_a_plaintext_broker() -> None:
    assert client_options("127.0.0.1:9092") == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(load_settings(kafka_bootstrap="127.0.0.1:9092").kafka) is None


def test_sasl_ssl_gives_every_client_the_user_and_a_verifying_tls_context() -> None:
    conn = load_settings(**SASL).kafka
    options = client_options(conn)
    assert options["bootstrap_servers"] == "b1.example:9093,b2.example:9093"
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "leadflow",
        "pa55-word",
    )
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = faust_credentials(conn)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.mechanism == SASLMechanism.SCRAM_SHA_256
    assert credentials.ssl_context is context  # one context, made once
    assert "pa55-word" not in repr(conn) + str(conn) + repr(load_settings(**SASL))


def test_sasl_without_tls_and_tls_without_sasl() -> None:
    plain = load_settings(**{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"}).kafka
    assert "ssl_context" not in client_options(plain)
    credentials = faust_credentials(plain)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT
    tls = KafkaConnection("b1.example:9093", "SSL", ssl_check_hostname=False)
    assert "sasl_mechanism" not in client_options(tls)
    assert client_options(tls)["ssl_context"].check_hostname is False
    assert isinstance(faust_credentials(tls), SSLCredentials)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "LEADFLOW_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_username": "x", "kafka_sasl_password": "y"}, "SECURITY_PROTOCOL=SASL_SSL"),
        ({"kafka_ssl_ca_file": "/etc/ca.pem"}, "LEADFLOW_KAFKA_SECURITY_PROTOCOL=SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/client.pem"},
            "LEADFLOW_KAFKA_SSL_KEY_FILE",
        ),
        ({"kafka_security_protocol": "SASL_SSL2"}, "LEADFLOW_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "LEADFLOW_KAFKA_SASL_MECHANISM"),
    ],
)
def test_settings_that_do_not_fit_stop_the_start_naming_what_to_set(
    given: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(**given)


def test_an_unreadable_ca_or_client_key_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    conn = load_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=missing).kafka
    with pytest.raises(ConfigError, match=f"LEADFLOW_KAFKA_SSL_CA_FILE={missing}"):
        client_options(conn)
    junk = tmp_path / "client.pem"
    junk.write_text("not a certificate")
    conn = load_settings(
        kafka_security_protocol="SSL", kafka_ssl_cert_file=junk, kafka_ssl_key_file=junk
    ).kafka
    with pytest.raises(ConfigError, match="LEADFLOW_KAFKA_SSL_CERT_FILE"):
        client_options(conn)
