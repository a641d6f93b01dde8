with

orders as (
    select * from {{ ref('int_orders_segmented') }}
),

final as (
    select
        -- ids
        region,

        -- dimensions
        mode(market) as market,
        count(distinct customer_country) as countries,

        -- measures
        count(*) as orders,
        count(distinct customer_id) as customers,

        -- timestamps
        min(order_time) as first_order_at,
        max(order_time) as last_order_at,

    from orders
    group by region
)

select * from final
