-- Migration 001: the raw event log. Same DDL for the embedded engine (chdb) and
-- a ClickHouse server. Statements are separated by a line holding only ";".
--
-- One row per message from every topic. Redelivered events carry the same
-- event_id; ReplacingMergeTree folds them, and queries read with FINAL, so a
-- retried insert never counts twice.
CREATE TABLE IF NOT EXISTS leadflow.lead_events
(
    event_id       UUID,
    event_type     LowCardinality(String),
    schema_version LowCardinality(String),
    lead_id        Nullable(UUID),
    trace_id       Nullable(UUID),
    occurred_at    DateTime64(3, 'UTC'),
    emitted_at     DateTime64(3, 'UTC'),
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    channel        LowCardinality(String),
    campaign       String,
    utm_source     String,
    utm_medium     String,
    utm_campaign   String,
    topic          LowCardinality(String),
    partition      UInt32,
    offset         UInt64,
    payload        String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_type, event_id)
;
