-- Top categories: orders, units and revenue per ISO week x category x region x segment.
with

items as (
    select * from {{ ref('fct_order_items') }}
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
