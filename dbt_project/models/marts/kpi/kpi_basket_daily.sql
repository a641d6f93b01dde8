{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('day') }}",
    )
}}

-- Orders, revenue and average basket value per day x region x carrier/mode x segment x channel.
-- Incremental: a build recomputes only the days of the orders changed since the last complete
-- build (macros/incremental.sql).
with

orders as (
    select * from {{ ref('fct_orders') }}
    {{ changed_periods_filter('order_date', 'day') }}
),

aggregated as (
    select
        -- dimensions
        order_date as period_start,
        region,
        carrier_mode,
        customer_segment,
        channel,

        -- measures
        count(*) as orders,
        sum(net_value) as revenue,
        cast(sum(units) as bigint) as units,
        cast(sum(item_count) as bigint) as order_lines,
        sum(net_value) / count(*) as avg_basket_value,

    from orders
    group by all
)

select * from aggregated
