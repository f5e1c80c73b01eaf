-- Migration 006: where each lead's and each trace's events are, so a lead's
-- timeline reads its events by key instead of scanning lead_events (ordered by
-- event type and id, which fits the reports, not one lead).
--
-- Two narrow tables of keys, kept by materialized views: by lead and by trace
-- (an inquiry merged into a lead tells its story through its trace). The
-- timeline looks up (event_type, event_id) here and reads those rows of
-- lead_events by its primary key. A repeated event repeats its key; the
-- timeline reads distinct keys.
CREATE TABLE IF NOT EXISTS leadflow.lead_event_keys
(
    lead_id    UUID,
    event_type LowCardinality(String),
    event_id   UUID,
    trace_id   Nullable(UUID)
)
ENGINE = ReplacingMergeTree
ORDER BY (lead_id, event_type, event_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_event_keys_mv TO leadflow.lead_event_keys AS
SELECT assumeNotNull(lead_id) AS lead_id, event_type, event_id, trace_id
FROM leadflow.lead_events
WHERE lead_id IS NOT NULL
;
CREATE TABLE IF NOT EXISTS leadflow.trace_event_keys
(
    trace_id   UUID,
    event_type LowCardinality(String),
    event_id   UUID,
    lead_id    Nullable(UUID)
)
ENGINE = ReplacingMergeTree
ORDER BY (trace_id, event_type, event_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.trace_event_keys_mv TO leadflow.trace_event_keys AS
SELECT assumeNotNull(trace_id) AS trace_id, event_type, event_id, lead_id
FROM leadflow.lead_events
WHERE trace_id IS NOT NULL
;
-- The keys of the events stored before this migration (an event stored while
-- this runs may be keyed twice: the same key, folded).
INSERT INTO leadflow.lead_event_keys
SELECT assumeNotNull(lead_id), event_type, event_id, trace_id
FROM leadflow.lead_events
WHERE lead_id IS NOT NULL
;
INSERT INTO leadflow.trace_event_keys
SELECT assumeNotNull(trace_id), event_type, event_id, lead_id
FROM leadflow.lead_events
WHERE trace_id IS NOT NULL
