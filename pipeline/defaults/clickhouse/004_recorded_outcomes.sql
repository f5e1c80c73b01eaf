-- Migration 004: outcomes as the pipeline applied them, and every sales cycle counted.
--
-- The lead state reads CRM outcomes from `OutcomeRecorded` (leads.outcomes): the
-- outcomes the worker applied to the lead's assignment. A message on crm.feedback
-- the worker rejected (unknown lead, unreadable) is stored as sent
-- (`CrmOutcomeReported`) but never changes a lead's state, so the warehouse and
-- the worker agree on every lead's outcome.
--
-- A lead that comes back after a won or lost outcome starts its next sales
-- cycle (`payload.cycle`): opportunities and wins are counted per cycle, and the
-- revenue is the latest won amount of each cycle, so a customer's second deal is
-- not hidden by the first.
DROP VIEW IF EXISTS leadflow.lead_state_mv
;
ALTER TABLE leadflow.lead_state
    ADD COLUMN IF NOT EXISTS opportunities AggregateFunction(uniqExact, UInt32),
    ADD COLUMN IF NOT EXISTS won_deals
        AggregateFunction(groupUniqArray, Tuple(UInt32, DateTime64(3, 'UTC'), Float64))
;
CREATE MATERIALIZED VIEW IF NOT EXISTS leadflow.lead_state_mv TO leadflow.lead_state AS
WITH
    event_type = 'LeadCaptured' AS is_inquiry,
    event_type = 'LeadEnriched' AS is_enriched,
    event_type = 'LeadQualified' AS is_qualified,
    event_type = 'LeadAssigned' AS is_assigned,
    event_type = 'OutcomeRecorded' AS is_crm,
    JSONExtractString(payload, 'payload', 'status') AS status,
    JSONExtractString(payload, 'payload', 'decision') AS decision,
    JSONExtractString(payload, 'payload', 'outcome', 'outcome') AS crm_outcome,
    toUInt32(greatest(JSONExtractUInt(payload, 'payload', 'cycle'), 1)) AS cycle,
    JSONExtractFloat(payload, 'payload', 'outcome', 'amount_eur') AS won_amount,
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
    argMaxIfState(won_amount, occurred_at, is_crm AND crm_outcome = 'won') AS amount_eur,
    argMaxIfState(JSONExtractString(payload, 'payload', 'outcome', 'reason'), occurred_at,
        is_crm AND crm_outcome = 'lost') AS lost_reason,
    uniqExactIfState(event_id, event_type = 'SlaBreached') AS sla_breaches,
    uniqExactIfState(cycle, is_crm AND crm_outcome IN ('opportunity', 'won')) AS opportunities,
    groupUniqArrayIfState(tuple(cycle, occurred_at, won_amount), is_crm AND crm_outcome = 'won')
        AS won_deals
FROM leadflow.lead_events
WHERE lead_id IS NOT NULL
GROUP BY lead_id
;
-- One row per captured lead. `wins` and `revenue_eur` count every sales cycle
-- (leads won before this migration count once, with their latest amount).
CREATE OR REPLACE VIEW leadflow.leads AS
SELECT * EXCEPT (deals, cycle_opportunities),
       toUInt64(greatest(cycle_opportunities,
                         coalesce(opportunity_at, won_at) IS NOT NULL)) AS opportunities,
       toUInt64(greatest(length(arrayDistinct(arrayMap(d -> d.1, deals))), won_at IS NOT NULL))
           AS wins,
       if(empty(deals), amount_eur,
          arraySum(arrayMap(c -> arrayFirst(d -> d.1 = c, arrayReverseSort(d -> d.2, deals)).3,
                            arrayDistinct(arrayMap(d -> d.1, deals))))) AS revenue_eur
FROM (
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
        uniqExactMerge(sla_breaches) AS sla_breaches,
        uniqExactMerge(opportunities) AS cycle_opportunities,
        groupUniqArrayMerge(won_deals) AS deals
    FROM leadflow.lead_state
    GROUP BY lead_id
    HAVING created_at IS NOT NULL
)
