-- Migration 003: what each campaign cost per month, loaded from
-- deploy/rules/costs.yaml when the warehouse is opened (the file is the truth:
-- the table is replaced on every load).
CREATE TABLE IF NOT EXISTS leadflow.campaign_costs
(
    channel    LowCardinality(String),
    campaign   String,
    month      Date,
    amount_eur Float64,
    loaded_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (channel, campaign, month)
;
