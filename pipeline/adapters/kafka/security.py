"""The one way every Kafka client of the project connects: `client_options` for
aiokafka's producers, consumers and admin clients, `faust_credentials` for the
worker's Faust app, both from one `KafkaConnection` (LEADFLOW_KAFKA_* settings).

A bad CA, certificate or key file stops the start with a `ConfigError` that
names the setting; a broker that refuses the user or password is
`connect_error`'s one clear line, not a traceback from deep in the client.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from pipeline.config.kafka import KafkaConnection
from pipeline.errors import ConfigError, KafkaUnavailable

Broker = KafkaConnection | str
"""What a Kafka adapter is given: a `KafkaConnection` (settings.kafka), or a bare
address, which is a PLAINTEXT broker there (the local one of tests and tools)."""


def connection(broker: Broker) -> KafkaConnection:
    return broker if isinstance(broker, KafkaConnection) else KafkaConnection(bootstrap=broker)


def client_options(broker: Broker) -> dict[str, Any]:
    """aiokafka keyword arguments: the bootstrap servers, the security protocol and,
    as the protocol needs them, the TLS context and the SASL user."""
    conn = connection(broker)
    options: dict[str, Any] = {
        "bootstrap_servers": conn.bootstrap,
        "security_protocol": conn.security_protocol,
    }
    if conn.uses_tls:
        options["ssl_context"] = tls_context(conn)
    if conn.uses_sasl:
        assert conn.sasl_password is not None  # Settings checked it (KafkaConnection.problems)
        options |= {
            "sasl_mechanism": conn.sasl_mechanism,
            "sasl_plain_username": conn.sasl_username,
            "sasl_plain_password": conn.sasl_password.get_secret_value(),
        }
    return options


@contextmanager
def starting_quietly() -> Iterator[None]:
    """Start a client where a failure becomes `connect_error`'s one line: aiokafka
    would log each failed bootstrap attempt as an error first, saying the same."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def faust_credentials(conn: KafkaConnection) -> CredentialsT | None:
    """Faust's `broker_credentials` for the same connection (None: PLAINTEXT)."""
    if conn.uses_sasl:
        assert conn.sasl_password is not None
        return SASLCredentials(
            username=conn.sasl_username,
            password=conn.sasl_password.get_secret_value(),
            ssl_context=tls_context(conn) if conn.uses_tls else None,
            mechanism=conn.sasl_mechanism,
        )
    if conn.uses_tls:
        return SSLCredentials(tls_context(conn))
    return None


@lru_cache(maxsize=8)
def tls_context(conn: KafkaConnection) -> ssl.SSLContext:
    """The TLS context of a connection, made once: the CA file (else the system's
    trusted CAs), the client certificate if any, hostname checks as set."""
    try:
        context = ssl.create_default_context(cafile=conn.ssl_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"LEADFLOW_KAFKA_SSL_CA_FILE={conn.ssl_ca_file}: not a readable PEM file of "
            f"CA certificates ({exc})."
        ) from exc
    context.check_hostname = conn.ssl_check_hostname
    if conn.ssl_cert_file is not None:
        password = conn.ssl_key_password.get_secret_value() if conn.ssl_key_password else None
        try:
            context.load_cert_chain(conn.ssl_cert_file, conn.ssl_key_file, password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"LEADFLOW_KAFKA_SSL_CERT_FILE={conn.ssl_cert_file} with "
                f"LEADFLOW_KAFKA_SSL_KEY_FILE={conn.ssl_key_file}: cannot load the client "
                f"certificate ({exc}); is LEADFLOW_KAFKA_SSL_KEY_PASSWORD right?"
            ) from exc
    return context


async def connect_error(broker: Broker) -> KafkaUnavailable:
    """Why a client could not start, as one line an operator acts on. aiokafka says
    only "Unable to bootstrap", so this asks the first bootstrap server itself."""
    conn = connection(broker)
    host, _, port = conn.bootstrap.split(",")[0].strip().rpartition(":")
    options = client_options(conn)
    del options["bootstrap_servers"]
    try:
        probe = await create_conn(host.strip("[]"), int(port), request_timeout_ms=10000, **options)
    except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
        said = exc.args[0] if exc.args else exc.description  # the broker's own words
        return KafkaUnavailable(
            f"Kafka at {conn} refused user {conn.sasl_username!r} with {conn.sasl_mechanism} "
            f"({said}): check LEADFLOW_KAFKA_SASL_USERNAME, "
            "LEADFLOW_KAFKA_SASL_PASSWORD and LEADFLOW_KAFKA_SASL_MECHANISM."
        )
    except ssl.SSLError as exc:
        return KafkaUnavailable(
            f"TLS with Kafka at {conn} failed ({exc.reason or exc}): check "
            "LEADFLOW_KAFKA_SSL_CA_FILE and LEADFLOW_KAFKA_SECURITY_PROTOCOL."
        )
    except (OSError, KafkaError, TimeoutError) as exc:
        reason = f" ({exc})" if str(exc) else ""
        return KafkaUnavailable.at(f"{conn}{reason}")  # the line every command prints
    probe.close()
    return KafkaUnavailable(
        f"Kafka at {conn} answers but a client could not start on it "
        f"({conn.security_protocol}); see the log above."
    )
