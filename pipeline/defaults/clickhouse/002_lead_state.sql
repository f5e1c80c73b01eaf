-- Migration 002: the current state of every lead, kept up to date by a
-- materialized view on lead_events.
--
-- Every column is an aggregate that gives the same answer when an event is
-- inserted twice (min, argMin/argMax, uniqExact of event ids), so a retried
-- insert or a redelivered event never changes a lead's state. Read it through
-- the `leads` view, which merges the partial states into one row per lead.
CREATE TABLE IF NOT EXISTS leadflow.lead_state
(
    lead_id          UUID,
    created_at       SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    inquiries        AggregateFunction(uniqExact, UUID),
    source_channel   AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    source_campaign  AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    last_channel     AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    last_campaign    AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    region           AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    product          AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    lead_class       AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    path             AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    mql_at           SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    sql_at           SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    disqualified_at  SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    routed_at        SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    contacted_at     SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    opportunity_at   SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    won_at           SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    lost_at          SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    queue            AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    owner            AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    outcome          AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    amount_eur       AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    lost_reason      AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    sla_breaches     AggregateFunction(uniqExact, UUID)
)
ENGINE = AggregatingMergeTree
ORDER BY lead_id
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_state_mv TO leadflow.lead_state AS
WITH
    event_type = 'LeadCaptured' AS is_inquiry,
    event_type = 'LeadEnriched' AS is_enriched,
    event_type = 'LeadQualified' AS is_qualified,
    event_type = 'LeadAssigned' AS is_assigned,
    event_type = 'CrmOutcomeReported' AS is_crm,
    JSONExtractString(payload, 'payload', 'status') AS status,
    JSONExtractString(payload, 'payload', 'decision') AS decision,
    JSONExtractString(payload, 'outcome') AS crm_outcome,
    is_qualified AND (status = 'sql' OR decision = 'sales') AS to_sales
SELECT
    assumeNotNull(lead_id) AS lead_id,
    minIf(toNullable(occurred_at), is_inquiry) AS created_at,
    uniqExactIfState(event_id, is_inquiry) AS inquiries,
    argMinIfState(channel, occurred_at, is_inquiry) AS source_channel,
    argMinIfState(campaign, occurred_at, is_inquiry) AS source_campaign,
    argMaxIfState(channel, occurred_at, is_inquiry) AS last_channel,
    argMaxIfState(campaign, occurred_at, is_inquiry) AS last_campaign,
    argMaxIfState(JSONExtractString(payload, 'payload', 'territory', 'region'), occurred_at,
        is_enriched) AS region,
    argMaxIfState(JSONExtractString(payload, 'payload', 'product_interest', 1), occurred_at,
        is_enriched) AS product,
    argMaxIfState(JSONExtractString(payload, 'payload', 'lead_class'), occurred_at,
        is_qualified) AS lead_class,
    argMinIfState(
        multiIf(JSONExtractString(payload, 'payload', 'fast_lane') != '', 'fast_lane',
                JSONExtractInt(payload, 'payload', 'iteration') <= 1, 'direct', 'nurtured'),
        occurred_at, to_sales) AS path,
    minIf(toNullable(occurred_at), is_qualified AND (status IN ('mql', 'sql') OR to_sales))
        AS mql_at,
    minIf(toNullable(occurred_at), to_sales) AS sql_at,
    minIf(toNullable(occurred_at), is_qualified AND status IN ('disqualified', 'retired'))
        AS disqualified_at,
    minIf(toNullable(occurred_at), is_assigned) AS routed_at,
    minIf(toNullable(occurred_at), is_crm) AS contacted_at,
    minIf(toNullable(occurred_at), is_crm AND crm_outcome = 'opportunity') AS opportunity_at,
    minIf(toNullable(occurred_at), is_crm AND crm_outcome = 'won') AS won_at,
    minIf(toNullable(occurred_at), is_crm AND crm_outcome = 'lost') AS lost_at,
    argMaxIfState(JSONExtractString(payload, 'payload', 'queue'), occurred_at, is_assigned)
        AS queue,
    argMaxIfState(JSONExtractString(payload, 'payload', 'owner', 'rep_id'), occurred_at,
        is_assigned) AS owner,
    argMaxIfState(crm_outcome, occurred_at, is_crm) AS outcome,
    argMaxIfState(JSONExtractFloat(payload, 'amount_eur'), occurred_at,
        is_crm AND crm_outcome = 'won') AS amount_eur,
    argMaxIfState(JSONExtractString(payload, 'reason'), occurred_at,
        is_crm AND crm_outcome = 'lost') AS lost_reason,
    uniqExactIfState(event_id, event_type = 'SlaBreached') AS sla_breaches
FROM leadflow.lead_events
WHERE lead_id IS NOT NULL
GROUP BY lead_id
;
-- Events stored before this migration: stored again, so the view above sees
-- them (lead_events folds the copies by event_id; lead_state does not change
-- when it sees an event twice).
INSERT INTO leadflow.lead_events SELECT * FROM leadflow.lead_events FINAL
;
-- One row per captured lead: what the reports read.
CREATE VIEW IF NOT EXISTS leadflow.leads AS
SELECT
    lead_id,
    min(created_at) AS created_at,
    uniqExactMerge(inquiries) AS inquiries,
    argMinMerge(source_channel) AS source_channel,
    argMinMerge(source_campaign) AS source_campaign,
    argMaxMerge(last_channel) AS last_channel,
    argMaxMerge(last_campaign) AS last_campaign,
    argMaxMerge(region) AS region,
    argMaxMerge(product) AS product,
    argMaxMerge(lead_class) AS lead_class,
    argMinMerge(path) AS path,
    min(mql_at) AS mql_at,
    min(sql_at) AS sql_at,
    min(disqualified_at) AS disqualified_at,
    min(routed_at) AS routed_at,
    min(contacted_at) AS contacted_at,
    min(opportunity_at) AS opportunity_at,
    min(won_at) AS won_at,
    min(lost_at) AS lost_at,
    argMaxMerge(queue) AS queue,
    argMaxMerge(owner) AS owner,
    argMaxMerge(outcome) AS outcome,
    argMaxMerge(amount_eur) AS amount_eur,
    argMaxMerge(lost_reason) AS lost_reason,
    uniqExactMerge(sla_breaches) AS sla_breaches
FROM leadflow.lead_state
GROUP BY lead_id
HAVING created_at IS NOT NULL
;
