-- On-time rate, orders and revenue per ISO week x customer segment.
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
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
