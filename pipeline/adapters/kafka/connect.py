"""Starting an aiokafka client so that a broker that does not answer is one clear
error (`KafkaUnavailable`), and the half-started client is closed: an unclosed
one prints "Unclosed AIOKafkaProducer" warnings when the process exits."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaConnectionError

from pipeline.errors import KafkaUnavailable


async def start_client(client: Any, bootstrap: str) -> None:
    """`await client.start()`; when the broker at `bootstrap` cannot be reached, close
    the client (`stop` for consumers and producers, `close` for the admin client)
    and raise `KafkaUnavailable`."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        close = getattr(client, "stop", None) or client.close
        await close()
        raise KafkaUnavailable.at(bootstrap) from exc
