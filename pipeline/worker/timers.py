"""Durable timers: a small table of due times a Faust timer scans.

An agent sets (or clears) a key's due time while it handles a message, so the
due time is in the table's changelog and survives restarts. The timer only
reads the table (Faust timers must not write tables) and emits the event
`fire` makes for every key that fell due, at every scan, until an agent moves
or clears the due time. The receiving agent therefore sees repeats, with the
same event id, and must be idempotent. Used by qualify (re-qualification
intervals) and nurture (program steps).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pipeline.worker.stage import Stage
from schemas.envelope import EventBase, utcnow

Fire = Callable[[str, datetime, str, datetime], EventBase | None]
"""(key, due time, tag, now) → the event that says the key is due, None if not yet."""


class DueTimers:
    def __init__(
        self, stage: Stage, name: str, partitions: int, interval: float, fire: Fire
    ) -> None:
        self.table = stage.app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)

        async def scan() -> None:
            now = utcnow()
            for key, value in list(self.table.items()):
                when, tag = parse(value)
                fired = fire(key.decode(), when, tag, now) if when is not None else None
                if fired is not None:
                    await stage.emit(fired)

        scan.__name__ = scan.__qualname__ = f"{name}-scan"
        stage.app.timer(interval=interval, name=f"{name}-scan")(scan)

    def set(self, key: str, when: datetime | None, tag: str = "") -> None:
        """Due at `when` (None: not due); `tag` goes back to `fire`. Inside an agent only."""
        raw = key.encode()
        if when is None:
            if self.table.get(raw):
                self.table[raw] = b""
            return
        self.table[raw] = f"{when.isoformat()}|{tag}".encode()


def parse(value: bytes | None) -> tuple[datetime | None, str]:
    """A stored due time and tag; qualify's older entries hold only the time."""
    if not value:
        return None, ""
    when, _, tag = value.decode().partition("|")
    return datetime.fromisoformat(when), tag
