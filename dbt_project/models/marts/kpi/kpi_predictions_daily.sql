{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('day') }}",
    )
}}

-- How the models do, per day x region x carrier/mode: mean gap between predicted and actual
-- delivery days over delivered orders that were scored, and the share of high-risk open orders.
-- Empty until a model has scored an order.
-- Incremental: a build recomputes only the days of the orders changed since the last complete
-- build (macros/incremental.sql).
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
    {{ changed_periods_filter('order_date', 'day') }}
),

scored as (
    select * from deliveries
    where predicted_delivery_days is not null or late_risk is not null
),

aggregated as (
    select
        -- dimensions
        order_date as period_start,
        region,
        carrier_mode,

        -- measures
        count(*) as scored_orders,
        count(prediction_gap_days) as scored_delivered_orders,
        avg(prediction_gap_days) as mean_prediction_gap_days,
        avg(abs(prediction_gap_days)) as mean_abs_prediction_gap_days,
        count(*) filter (where is_open and late_risk is not null) as scored_open_orders,
        count(*) filter (where is_open and is_high_risk) as high_risk_open_orders,
        count(*) filter (where is_open and is_high_risk)
        / nullif(count(*) filter (where is_open and late_risk is not null), 0) as high_risk_share,
        avg(late_risk) as mean_late_risk,

    from scored
    group by all
)

select * from aggregated
