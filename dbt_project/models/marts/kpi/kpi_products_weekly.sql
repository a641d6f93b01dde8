{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('week') }}",
    )
}}

-- Top products: units and revenue per ISO week x product, ranked by revenue within the week.
-- Incremental: a build recomputes only the weeks of the orders changed since the last complete
-- build (macros/incremental.sql).
with

items as (
    select * from {{ ref('fct_order_items') }}
    {{ changed_periods_filter("cast(date_trunc('week', order_date) as date)", 'week') }}
),

aggregated as (
    select
        cast(date_trunc('week', order_date) as date) as period_start,
        product_id,
        arg_max(product_name, length(coalesce(product_name, ''))) as product_name,
        arg_max(category, length(category)) as category,
        count(distinct order_id) as orders,
        cast(sum(quantity) as bigint) as units,
        sum(line_value) as revenue,
    from items
    group by period_start, product_id
),

ranked as (
    select
        -- dimensions
        period_start,
        product_id,
        product_name,
        category,

        -- measures
        orders,
        units,
        revenue,
        rank() over (partition by period_start order by revenue desc) as revenue_rank,

    from aggregated
)

select * from ranked
