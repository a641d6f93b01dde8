{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('week') }}",
    )
}}

-- Late rate, mean and p90 delay per ISO week x region x carrier/mode, over delivered orders
-- (p90 is not additive: it is computed here per cell; across cells read fct_deliveries).
-- Incremental: a build recomputes only the weeks of the orders changed since the last complete
-- build (macros/incremental.sql).
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
    {{ changed_periods_filter('order_week', 'week') }}
),

aggregated as (
    select
        -- dimensions
        order_week as period_start,
        region,
        carrier_mode,

        -- measures
        count(*) as delivered_orders,
        count(*) filter (where is_late) as late_orders,
        count(*) filter (where is_late) / count(*) as late_rate,
        avg(delay_days) as mean_delay_days,
        quantile_cont(delay_days, 0.9) as p90_delay_days,
        avg(delivery_days) as mean_delivery_days,
        quantile_cont(delivery_days, 0.9) as p90_delivery_days,

    from deliveries
    where delivered_at is not null
    group by all
)

select * from aggregated
