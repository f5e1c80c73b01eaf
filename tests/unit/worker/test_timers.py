"""The due-time index: a scan reads the entries due now (and one more), each due
time fires once, and moved, fired or cleared entries leave both tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rocksdict import Options, Rdict

from pipeline.worker.timers import DueIndex, Scanner, index_key, parse_index
from schemas.lead import RequalificationDue

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ordered(index: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return sorted(index.items())


def test_a_scan_reads_only_what_is_due_and_fires_it_once() -> None:
    due: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}
    writes, scanner = DueIndex(due, index), Scanner()
    for n in range(1000):
        writes.set(f"lead-{n:04d}", T0 + timedelta(minutes=n), tag=f"step-{n}")
    first = scanner.due(ordered(index), T0 + timedelta(minutes=2, seconds=30))
    assert [(d.key, d.tag) for d in first] == [(f"lead-000{n}", f"step-{n}") for n in range(3)]
    assert scanner.reads == 4  # the three due and the first that is not
    scanner.in_flight.update(d.entry for d in first)
    again = scanner.due(ordered(index), T0 + timedelta(minutes=2, seconds=31))
    assert again == []  # fired, not yet handled: not again
    assert scanner.reads == 8


def test_fired_deletes_the_entry_and_a_later_time_stays() -> None:
    due: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}
    writes, scanner = DueIndex(due, index), Scanner()
    writes.set("ada", T0, "a")
    writes.set("ben", T0)
    writes.fired("ada", T0)
    assert b"ada" not in due and index_key(T0, "ada") not in index
    writes.set("ben", T0 + timedelta(days=3))  # the agent moved ben before the event came
    writes.fired("ben", T0)  # the old due time's event: ben's new time stays
    assert list(index) == [index_key(T0 + timedelta(days=3), "ben")]
    scanner.in_flight = {index_key(T0, "ada"), index_key(T0, "ben")}
    scanner.keep_in_flight(lambda entry: entry in index)
    assert scanner.in_flight == set()  # both handled: nothing remembered


def test_a_handled_time_set_again_to_the_same_instant_fires_again() -> None:
    """Two nurture programs' steps due at one instant: the first fires and is
    handled, the lead's next step is the second at the same time, and it fires at
    the next scan (it stayed in flight until a restart: found by the replay)."""
    due: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}
    writes, scanner = DueIndex(due, index), Scanner()
    writes.set("ada", T0, "webinar-follow-up")
    (first,) = scanner.due(ordered(index), T0)
    scanner.in_flight.add(first.entry)
    writes.fired("ada", T0)
    scanner.handled(first.entry)
    writes.set("ada", T0, "cold-leads")
    (second,) = scanner.due(ordered(index), T0 + timedelta(seconds=10))
    assert (second.key, second.when, second.tag) == ("ada", T0, "cold-leads")


def test_moving_and_clearing_leave_no_entry_behind() -> None:
    due: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}
    writes = DueIndex(due, index)
    writes.set("ada", T0)
    writes.set("ada", T0 + timedelta(hours=1), "later")
    assert list(index) == [index_key(T0 + timedelta(hours=1), "ada")]
    assert index[index_key(T0 + timedelta(hours=1), "ada")] == b"later"
    writes.set("ada", None)
    writes.set("never-set", None)
    assert due == {} and index == {}


def test_an_unchanged_due_time_writes_nothing() -> None:
    """A changelog write per message would be a Kafka message per message."""
    writes_seen: list[bytes] = []

    class Counting(dict[bytes, bytes]):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            writes_seen.append(key)
            super().__setitem__(key, value)

    writes = DueIndex(Counting(), Counting())
    writes.set("ada", T0, "s1")
    writes.set("ada", T0, "s1")
    assert len(writes_seen) == 2  # one entry, one index key


def test_times_in_other_zones_sort_as_the_instants_they_are() -> None:
    """Index keys are UTC: 10:30 in Berlin (09:30 UTC) comes before 10:00 UTC."""
    index: dict[bytes, bytes] = {}
    writes = DueIndex({}, index)
    writes.set("berlin", datetime(2026, 12, 1, 10, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    writes.set("utc", datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    keys = [parse_index(k)[1] for k in sorted(index)]
    assert keys == ["berlin", "utc"]
    found = Scanner().due(ordered(index), datetime(2026, 12, 1, 9, 45, tzinfo=UTC))
    assert [d.key for d in found] == ["berlin"]
    assert found[0].when == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_entries_of_an_older_release_fire_from_memory_until_moved() -> None:
    """Older releases kept `key → when|tag` only; they must still fire once."""
    due = {
        b"old-due": f"{T0.isoformat()}|s1".encode(),
        b"old-later": f"{(T0 + timedelta(days=9)).isoformat()}|s2".encode(),
        b"old-moved": f"{T0.isoformat()}|s3".encode(),
        b"cleared": b"",  # how older releases cleared an entry
    }
    index: dict[bytes, bytes] = {}
    scanner = Scanner()
    scanner.add_legacy(sorted(due.items()), lambda entry: entry in index)
    DueIndex(due, index).set("old-moved", T0 + timedelta(days=1), "s3")
    found = scanner.due_legacy(T0 + timedelta(minutes=1), lambda key: due.get(key.encode()))
    assert [(d.key, d.tag) for d in found] == [("old-due", "s1")]
    assert scanner.due_legacy(T0 + timedelta(minutes=2), lambda k: due.get(k.encode())) == []
    assert len(scanner.legacy) == 1  # old-later waits in memory; nothing new is added
    DueIndex(due, index).set("cleared", None)
    assert b"cleared" not in due  # an empty value of an older release goes once touched


def test_on_rocksdb_a_scan_of_fifty_thousand_held_reads_the_due_ones(tmp_path: Path) -> None:
    """The store the worker uses: RocksDB iterates keys in byte order, so the scan
    stops early (reads are counted, never timed)."""
    options = Options(raw_mode=True)
    db = Rdict(str(tmp_path / "index"), options)
    try:
        writes = DueIndex(Rdict(str(tmp_path / "due"), options), db)
        for n in range(50_000):
            writes.set(f"lead-{n}", T0 + timedelta(seconds=n * 7 % 50_000 + 60))
        scanner = Scanner()
        found = scanner.due(db.items(), T0 + timedelta(seconds=69))
        assert sorted(d.when for d in found) == [T0 + timedelta(seconds=s) for s in range(60, 70)]
        assert scanner.reads == 11
    finally:
        db.close()


def test_a_due_time_read_back_from_the_index_gives_the_same_event_id() -> None:
    """A fired entry not yet handled fires again after a restart: with the same id, so
    receivers drop the repeat (the id is derived from the key and the due time)."""
    lead = uuid.UUID("5f0c9f5e-0000-4000-8000-000000000001")
    index: dict[bytes, bytes] = {}
    for when in (T0, T0.replace(microsecond=123456), T0.astimezone(ZoneInfo("Europe/Berlin"))):
        index.clear()
        DueIndex({}, index).set(str(lead), when)
        (found,) = Scanner().due(ordered(index), when + timedelta(seconds=1))
        again = RequalificationDue.fired(lead, found.when, T0 + timedelta(days=1))
        first = RequalificationDue.fired(lead, when.astimezone(UTC), when)
        assert again is not None and first is not None and again.event_id == first.event_id
