-- Orders, revenue and average basket value per day x region x carrier/mode x segment x channel.
with

orders as (
    select * from {{ ref('fct_orders') }}
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
