"""Durable timers whose cost is the work that is due, not the number of keys held.

An agent sets (or clears) a key's due time while it handles a message, so the
due time is in a table's changelog and survives restarts and rebalances. Two
tables hold it, both partitioned like the key's messages:

- `<name>` maps key → `when|tag` (the key's one due time, to find and move it);
- `<name>-index` maps `when|key` → tag. Its keys sort by time (UTC, fixed
  width), and RocksDB keeps keys in order, so a scan reads each partition from
  its first key and stops at the first one not yet due: it touches the keys due
  now and one more, however many are held.

The timer only reads (Faust timers must not write tables). It emits the event
`fire` makes for each due entry once per process and remembers it as in flight
until the entry is gone; the agent that receives the event calls `fired`, which
deletes the entry (and may `set` the next one). After a restart an entry that
was fired but not yet acknowledged fires again with the same event id (the ids
are derived from key and due time), so receivers stay idempotent. Cleared and
fired entries are deleted, never kept as empty values.

Entries written before the index existed (`<name>` only, by older releases) are
read once per partition when the timer first sees it, and kept in memory in
time order until an agent moves or fires them; nothing new is ever added there.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import TopicPartition
from faust.web import Request, Response, View

from pipeline.worker import metrics
from pipeline.worker.stage import Stage
from pipeline.worker.tables import local_db, local_items
from schemas.envelope import EventBase, utcnow

Fire = Callable[[str, datetime, str, datetime], EventBase | None]
"""(key, due time, tag, now) → the event that says the key is due, None if not yet."""

log = structlog.get_logger("leadflow.timers")
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Fixed width, UTC: byte order is time order."""


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(STAMP)


def index_key(when: datetime, key: str) -> bytes:
    return f"{stamp(when)}|{key}".encode()


def parse(value: bytes | None) -> tuple[datetime | None, str]:
    """A stored `when|tag`; entries of older releases hold only the time, or nothing."""
    if not value:
        return None, ""
    when, _, tag = value.decode().partition("|")
    return datetime.fromisoformat(when), tag


def parse_index(raw: bytes) -> tuple[datetime, str]:
    """An index key's due time and key."""
    when, _, key = raw.decode().partition("|")
    return datetime.strptime(when, STAMP).replace(tzinfo=UTC), key


@dataclass(frozen=True)
class Due:
    """One entry a scan found due."""

    key: str
    when: datetime
    tag: str
    entry: bytes  # its index key, what `fired` deletes


class DueIndex:
    """The writes: a key's due time in `due` and `index`, moved or removed together.
    Both mappings are tables written inside an agent (or dicts in unit tests)."""

    def __init__(self, due: MutableMapping[Any, Any], index: MutableMapping[Any, Any]) -> None:
        self.due, self.index = due, index

    def set(self, key: str, when: datetime | None, tag: str = "") -> None:
        """Due at `when` (None: not due); `tag` goes back to `fire`. No write when unchanged."""
        raw = key.encode()
        old = self.due.get(raw)
        new = None if when is None else f"{when.astimezone(UTC).isoformat()}|{tag}".encode()
        if old == new or (old is None and new is None):
            return  # (an empty value of an older release is deleted now)
        self._drop_entry(key, old)
        if when is None:
            if raw in self.due:
                del self.due[raw]
            return
        self.due[raw] = new
        self.index[index_key(when, key)] = tag.encode()

    def fired(self, key: str, when: datetime) -> None:
        """The due time `when` of `key` was handled: its entry goes (a later one stays)."""
        raw = key.encode()
        at, _ = parse(self.due.get(raw))
        entry = index_key(when, key)
        if entry in self.index:
            del self.index[entry]
        if at is not None and stamp(at) == stamp(when):
            del self.due[raw]

    def _drop_entry(self, key: str, old: bytes | None) -> None:
        at, _ = parse(old)
        if at is not None:
            entry = index_key(at, key)
            if entry in self.index:
                del self.index[entry]


@dataclass
class Scanner:
    """The reads: due entries in time order, each once per process while in flight."""

    in_flight: set[bytes] = field(default_factory=set)
    reads: int = 0  # index entries read, all scans: what the tests count
    legacy: list[tuple[str, str, str]] = field(default_factory=list)  # (stamp, key, tag) heap

    def due(self, ordered: Iterable[tuple[bytes, bytes]], now: datetime) -> list[Due]:
        """The not yet fired entries of one partition's index (read in key order) due at `now`."""
        limit = stamp(now).encode()
        found: list[Due] = []
        for entry, tag in ordered:
            self.reads += 1
            if entry[: len(limit)] > limit:
                break
            if entry in self.in_flight:
                continue
            when, key = parse_index(entry)
            found.append(Due(key, when, tag.decode(), entry))
        return found

    def handled(self, entry: bytes) -> None:
        """The fired entry was acknowledged: set again to the same time (a second
        nurture program's step due at the same instant), it fires again."""
        self.in_flight.discard(entry)

    def keep_in_flight(self, held: Callable[[bytes], bool]) -> None:
        """Forget fired entries that are gone (acknowledged): the set stays as small as
        the entries fired and not yet handled."""
        self.in_flight = {entry for entry in self.in_flight if held(entry)}

    def add_legacy(
        self, entries: Iterable[tuple[bytes, bytes]], indexed: Callable[[bytes], bool]
    ) -> None:
        """Entries of an older release (key → `when|tag`, no index entry), once per partition."""
        for raw, value in entries:
            try:
                when, tag = parse(value)
            except ValueError:  # not a due time: nothing to fire, nothing to stop for
                log.warning("timers.unreadable_entry", table_key=raw[:60])
                continue
            key = raw.decode()
            if when is not None and not indexed(index_key(when, key)):
                heapq.heappush(self.legacy, (stamp(when), key, tag))

    def due_legacy(self, now: datetime, current: Callable[[str], bytes | None]) -> list[Due]:
        """Legacy entries due now that still hold (an agent may have moved them since)."""
        limit, found = stamp(now), []
        while self.legacy and self.legacy[0][0] <= limit:
            at, key, tag = heapq.heappop(self.legacy)
            when, _ = parse(current(key))
            if when is not None and stamp(when) == at:
                found.append(Due(key, when, tag, index_key(when, key)))
        return found


class DueTimers:
    """A stage's durable timer: `set` and `fired` inside its agents, the scan on a Faust timer."""

    def __init__(
        self, stage: Stage, name: str, partitions: int, interval: float, fire: Fire
    ) -> None:
        self.table = stage.faust_table(name, partitions, "bytes")
        self.index_table = stage.faust_table(f"{name}-index", partitions, "bytes")
        self.writes = DueIndex(self.table, self.index_table)
        self.scanner = Scanner()
        self.app, self.partitions, self.name = stage.app, partitions, name
        self._read_legacy: set[int] = set()
        self.last_scan: dict[str, int] = {}

        async def scan() -> None:
            now = utcnow()
            for item in self.due_now(now):
                event = fire(item.key, item.when, item.tag, now)
                self.scanner.in_flight.add(item.entry)
                if event is not None:
                    await stage.emit(event)

        scan.__name__ = scan.__qualname__ = f"{name}-scan"
        stage.app.timer(interval=interval, name=f"{name}-scan")(scan)
        if not stage.timer_reports:  # one page for every timer of the stage
            _timer_page(stage)
        stage.timer_reports[name] = self.report

    def set(self, key: str, when: datetime | None, tag: str = "") -> None:
        """Due at `when` (None: not due); `tag` goes back to `fire`. Inside an agent only."""
        self.writes.set(key, when, tag)

    def fired(self, key: str, when: datetime) -> None:
        """The agent that received the fired event has handled it. Inside an agent only."""
        self.writes.fired(key, when)
        self.scanner.handled(index_key(when, key))

    def due_now(self, now: datetime) -> list[Due]:
        """Every active partition's due entries not yet fired by this process."""
        found: list[Due] = []
        reads = self.scanner.reads
        partitions = self._active_partitions()
        unread = [p for p in partitions if p not in self._read_legacy]
        for part, entries in _in_order(self.table, unread):
            self._read_legacy.update(unread if part == -1 else [part])  # -1: all of them
            self.scanner.add_legacy(entries, lambda e: self.index_table.get(e) is not None)
        for _, entries in _in_order(self.index_table, partitions):
            found.extend(self.scanner.due(entries, now))
        found.extend(self.scanner.due_legacy(now, lambda key: self.table.get(key.encode())))
        self.scanner.keep_in_flight(lambda entry: self.index_table.get(entry) is not None)
        self.last_scan = {"partitions": len(partitions), "read": self.scanner.reads - reads}
        self.last_scan["fired"] = len(found)
        metrics.timers(self.name, held=self.held_estimate(), due=len(found))
        return found

    def report(self) -> dict[str, Any]:
        """The last scan's reads and fires, what is in flight, and how many entries this
        worker holds (RocksDB's estimate: counting them would be the scan we avoid)."""
        return {
            "last_scan": self.last_scan,
            "in_flight": len(self.scanner.in_flight),
            "legacy": len(self.scanner.legacy),
            "held_estimate": self.held_estimate(),
        }

    def held_estimate(self) -> int:
        """RocksDB's estimate of the index entries this worker holds (no scan)."""
        held = 0
        for partition in range(self.partitions):
            db = local_db(self.index_table, partition)
            if db is not None:
                held += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        return held

    def _active_partitions(self) -> list[int]:
        topic = self.index_table.changelog_topic.get_topic_name()
        actives = self.app.assignor.assigned_actives()
        return [p for p in range(self.partitions) if TopicPartition(topic, p) in actives]


def _timer_page(stage: Stage) -> None:
    reports = stage.timer_reports

    @stage.page("/v1/timers/{name}")
    class Timer(View):
        """What a timer's last scan read (operators, and the test that counts reads)."""

        async def get(self, request: Request, name: str) -> Response:
            if name not in reports:
                return self.json(
                    {"error": f"no timer {name!r}", "timers": sorted(reports)}, status=404
                )
            return self.json(reports[name]())


def _in_order(table: Any, partitions: list[int]) -> list[tuple[int, Iterator[tuple[bytes, bytes]]]]:
    """The active partitions of a table, each in key order, straight from its store
    (read lazily: a scan that stops early reads no further). RocksDB keeps one
    ordered database per partition; the memory store (tests, `memory://`) keeps
    one dict for all, sorted here as one part (-1)."""
    if getattr(table.data, "_dbs", None) is None:
        return [(-1, iter(sorted(table.data.data.items())))] if partitions else []
    return [(p, local_items(table, p)) for p in partitions if local_db(table, p) is not None]
