-- Migration 005: what the slow reports read, kept up to date by materialized
-- views on lead_events, so no report reads the raw log with FINAL.
--
-- Each table holds one small fact per event, keyed for the question it answers
-- (by lead for attribution, by kind and reason for the reasons, by channel for
-- the pipeline table). A redelivered event repeats its fact with the same key:
-- the reports count distinct ids (or take minimums), so a repeat never counts
-- twice, before or after the background merges fold it.
--
-- The views read `report_feed`, a Null table (it stores nothing) that every
-- insert into lead_events is passed on to: so the INSERT … SELECT at the end
-- fills the tables from the events stored before this migration without storing
-- those events again (and without the lead state seeing them again).
--
-- Tables with a `lead_id` and text (lead_touches' campaign, lead_reasons' reason)
-- are plain MergeTree tables: the erasure (pipeline/adapters/warehouse/erasure.py)
-- finds and strips them like lead_events.
--
CREATE TABLE IF NOT EXISTS leadflow.report_feed
(
    event_id    UUID,
    event_type  LowCardinality(String),
    lead_id     Nullable(UUID),
    trace_id    Nullable(UUID),
    occurred_at DateTime64(3, 'UTC'),
    channel     LowCardinality(String),
    campaign    String,
    topic       LowCardinality(String),
    payload     String
)
ENGINE = Null
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.report_feed_mv TO leadflow.report_feed AS
SELECT event_id, event_type, lead_id, trace_id, occurred_at, channel, campaign, topic, payload
FROM leadflow.lead_events
WHERE event_type IN ('InquiryReceived', 'Unreadable', 'Oversized', 'MessageRejected',
                     'LeadCaptured', 'LeadQualified', 'LeadNurtured', 'LeadAssigned',
                     'TouchScheduled', 'ActivityRecorded', 'OutcomeRecorded')
;
-- The touches of a lead, oldest first: every inquiry attached to it (its
-- channel and campaign; `creates_lead` for the one that created the lead) and
-- every tracked activity that names a campaign (channel: the activity's, else
-- its type). What the attribution models credit, and a lead's touch path.
CREATE TABLE IF NOT EXISTS leadflow.lead_touches
(
    lead_id      UUID,
    at           DateTime64(3, 'UTC'),
    event_id     UUID,
    channel      LowCardinality(String),
    campaign     String,
    creates_lead UInt8
)
ENGINE = ReplacingMergeTree
ORDER BY (lead_id, at, event_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_touches_mv TO leadflow.lead_touches AS
WITH
    event_type = 'LeadCaptured' AS is_capture,
    JSONExtractString(payload, 'payload', 'details', 'channel') AS activity_channel
SELECT
    assumeNotNull(lead_id) AS lead_id,
    occurred_at AS at,
    event_id,
    if(is_capture, channel,
       if(activity_channel = '', JSONExtractString(payload, 'payload', 'activity_type'),
          activity_channel)) AS channel,
    if(is_capture, campaign, JSONExtractString(payload, 'payload', 'details', 'campaign'))
        AS campaign,
    toUInt8(is_capture AND NOT JSONExtractBool(payload, 'merged')) AS creates_lead
FROM leadflow.report_feed
WHERE lead_id IS NOT NULL
  AND (event_type = 'LeadCaptured'
       OR (event_type = 'ActivityRecorded'
           AND JSONExtractString(payload, 'payload', 'details', 'campaign') != ''))
;
-- Each sales cycle of a lead that reached an opportunity or a win: when it was
-- first won, the latest won amount, when it first became an opportunity.
CREATE TABLE IF NOT EXISTS leadflow.lead_deals
(
    lead_id        UUID,
    cycle          UInt64,
    won_at         SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    amount_eur     AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    opportunity_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC')))
)
ENGINE = AggregatingMergeTree
ORDER BY (lead_id, cycle)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_deals_mv TO leadflow.lead_deals AS
WITH JSONExtractString(payload, 'payload', 'outcome', 'outcome') AS outcome
SELECT
    assumeNotNull(lead_id) AS lead_id,
    JSONExtractUInt(payload, 'payload', 'cycle') AS cycle,
    minIf(toNullable(occurred_at), outcome = 'won') AS won_at,
    argMaxIfState(JSONExtractFloat(payload, 'payload', 'outcome', 'amount_eur'), occurred_at,
                  outcome = 'won') AS amount_eur,
    minIf(toNullable(occurred_at), outcome = 'opportunity') AS opportunity_at
FROM leadflow.report_feed
WHERE event_type = 'OutcomeRecorded' AND lead_id IS NOT NULL
  AND outcome IN ('won', 'opportunity')
GROUP BY lead_id, cycle
;
-- Why leads were lost or returned (CRM outcomes), disqualified or retired
-- (qualification), and why messages were rejected (one row per reason code of
-- the rejection, `n` its position).
CREATE TABLE IF NOT EXISTS leadflow.lead_reasons
(
    kind        LowCardinality(String),
    reason      String,
    occurred_at DateTime64(3, 'UTC'),
    event_id    UUID,
    n           UInt32,
    lead_id     Nullable(UUID)
)
ENGINE = ReplacingMergeTree
ORDER BY (kind, reason, event_id, n)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_reasons_mv TO leadflow.lead_reasons AS
WITH
    JSONExtractString(payload, 'payload', 'outcome', 'outcome') AS outcome,
    JSONExtractString(payload, 'payload', 'status') AS status,
    multiIf(
        event_type = 'MessageRejected',
            arrayMap(r -> ('rejected', JSONExtractString(r, 'code')),
                     JSONExtractArrayRaw(payload, 'payload', 'reasons')),
        event_type = 'OutcomeRecorded' AND outcome IN ('lost', 'returned'),
            [(outcome, JSONExtractString(payload, 'payload', 'outcome', 'reason'))],
        event_type = 'LeadQualified' AND status IN ('disqualified', 'retired'),
            [(status, JSONExtractString(payload, 'payload', 'reason'))],
        []) AS found
SELECT found_reason.1 AS kind, found_reason.2 AS reason, occurred_at, event_id, n, lead_id
FROM leadflow.report_feed
ARRAY JOIN found AS found_reason, arrayEnumerate(found) AS n
WHERE event_type = 'MessageRejected' OR event_type = 'OutcomeRecorded'
   -- most qualifications are neither: skip their JSON before parsing it
   OR (event_type = 'LeadQualified'
       AND (position(payload, 'disqualified') > 0 OR position(payload, 'retired') > 0))
;
-- What the pipeline did per channel (the `pipeline` report): one row per fact and
-- the id it counts – `message` (a row of an inquiry topic: received, unreadable or
-- oversized; by event id and topic), `rejected` (event id), `captured`,
-- `qualified`, `mql_or_sql`, `nurtured`, `sales_ready` (lead id) and `answered`
-- (a fulfillment touch, by trace id, with its quickest response in seconds).
CREATE TABLE IF NOT EXISTS leadflow.channel_facts
(
    channel LowCardinality(String),
    fact    LowCardinality(String),
    topic   LowCardinality(String),
    id      UUID,
    seconds SimpleAggregateFunction(min, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (channel, fact, topic, id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.channel_facts_mv TO leadflow.channel_facts AS
WITH
    JSONExtractString(payload, 'payload', 'status') AS status,
    multiIf(
        event_type IN ('InquiryReceived', 'Unreadable', 'Oversized'), [('message', event_id)],
        event_type = 'MessageRejected', [('rejected', event_id)],
        event_type = 'LeadCaptured', [('captured', assumeNotNull(lead_id))],
        event_type = 'LeadQualified' AND status IN ('mql', 'sql'),
            [('qualified', assumeNotNull(lead_id)), ('mql_or_sql', assumeNotNull(lead_id))],
        event_type = 'LeadQualified', [('qualified', assumeNotNull(lead_id))],
        event_type = 'LeadNurtured', [('nurtured', assumeNotNull(lead_id))],
        event_type = 'LeadAssigned', [('sales_ready', assumeNotNull(lead_id))],
        [('answered', assumeNotNull(trace_id))]) AS facts
SELECT
    channel,
    fact_id.1 AS fact,
    if(fact = 'message', topic, '') AS topic,
    fact_id.2 AS id,
    if(fact = 'answered', JSONExtractFloat(payload, 'payload', 'response_seconds'), 0)
        AS seconds
FROM leadflow.report_feed
ARRAY JOIN facts AS fact_id
WHERE event_type IN ('InquiryReceived', 'Unreadable', 'Oversized', 'MessageRejected')
   OR (event_type IN ('LeadCaptured', 'LeadQualified', 'LeadNurtured', 'LeadAssigned')
       AND lead_id IS NOT NULL)
   OR (event_type = 'TouchScheduled' AND trace_id IS NOT NULL
       AND JSONExtractString(payload, 'payload', 'purpose') = 'fulfillment')
;
-- Events stored before this migration: passed to the feed once (an event
-- stored while this runs may reach the tables twice: the same fact, counted once).
INSERT INTO leadflow.report_feed
SELECT event_id, event_type, lead_id, trace_id, occurred_at, channel, campaign, topic, payload
FROM leadflow.lead_events
WHERE event_type IN ('InquiryReceived', 'Unreadable', 'Oversized', 'MessageRejected',
                     'LeadCaptured', 'LeadQualified', 'LeadNurtured', 'LeadAssigned',
                     'TouchScheduled', 'ActivityRecorded', 'OutcomeRecorded')
