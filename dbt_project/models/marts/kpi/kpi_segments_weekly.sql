{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('week') }}",
    )
}}

-- On-time rate, orders and revenue per ISO week x customer segment.
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
        customer_segment,

        -- measures
        count(*) as orders,
        sum(net_value) as revenue,
        count(delivered_at) as delivered_orders,
        count(*) filter (where not is_late) as on_time_orders,
        count(*) filter (where not is_late) / nullif(count(delivered_at), 0) as on_time_rate,

    from deliveries
    group by all
)

select * from aggregated
