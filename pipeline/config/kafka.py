"""How to reach the Kafka cluster: its bootstrap servers and its security (TLS,
SASL), from the LEADFLOW_KAFKA_* settings.

A plain value, read once at start; `pipeline.adapters.kafka.security` turns it
into the keyword arguments of every aiokafka client and into Faust's broker
credentials, so a worker, the CLI, the CRM bridge and the benchmarks reach a
secured cluster (Confluent Cloud, MSK, Aiven, Strimzi with TLS) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how a client proves who it is to them. `str()`
    is the bootstrap servers, for messages (never a secret)."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def problems(self) -> list[str]:
        """What does not fit together, each naming the settings to change (empty: fine)."""
        found = []
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            found.append(
                f"{self.security_protocol} needs LEADFLOW_KAFKA_SASL_USERNAME and "
                "LEADFLOW_KAFKA_SASL_PASSWORD"
            )
        if not self.uses_sasl and (self.sasl_username or self.sasl_password):
            found.append(
                "LEADFLOW_KAFKA_SASL_USERNAME/PASSWORD are set but "
                f"LEADFLOW_KAFKA_SECURITY_PROTOCOL is {self.security_protocol}; "
                "e.g. LEADFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        tls_files = (self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
        if not self.uses_tls and any(tls_files):
            found.append(
                "LEADFLOW_KAFKA_SSL_* files are set but LEADFLOW_KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}; e.g. LEADFLOW_KAFKA_SECURITY_PROTOCOL=SSL"
            )
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            found.append(
                "a client certificate needs both LEADFLOW_KAFKA_SSL_CERT_FILE and "
                "LEADFLOW_KAFKA_SSL_KEY_FILE"
            )
        return found

    def __str__(self) -> str:
        return self.bootstrap
