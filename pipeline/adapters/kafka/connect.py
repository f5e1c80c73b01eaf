"""Starting an aiokafka client so that a broker that cannot be reached, or that
refuses the credentials, is one clear error (`KafkaUnavailable`, saying why:
`security.connect_error`), and the half-started client is closed: an unclosed
one prints "Unclosed AIOKafkaProducer" warnings when the process exits."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaConnectionError

from pipeline.adapters.kafka.security import Broker, connect_error, starting_quietly


async def start_client(client: Any, broker: Broker) -> None:
    """`await client.start()`; when the broker cannot be reached, close the client
    (`stop` for consumers and producers, `close` for the admin client) and raise
    the one line that says why."""
    try:
        with starting_quietly():
            await client.start()
    except KafkaConnectionError:
        close = getattr(client, "stop", None) or client.close
        await close()
        raise await connect_error(broker) from None
