{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('week') }}",
    )
}}

-- Top categories: orders, units and revenue per ISO week x category x region x segment.
-- Incremental: a build recomputes only the weeks of the orders changed since the last complete
-- build (macros/incremental.sql).
with

items as (
    select * from {{ ref('fct_order_items') }}
    {{ changed_periods_filter("cast(date_trunc('week', order_date) as date)", 'week') }}
),

aggregated as (
    select
        -- dimensions
        cast(date_trunc('week', order_date) as date) as period_start,
        category,
        region,
        customer_segment,

        -- measures
        count(distinct order_id) as orders,
        cast(sum(quantity) as bigint) as units,
        sum(line_value) as revenue,

    from items
    group by all
)

select * from aggregated
