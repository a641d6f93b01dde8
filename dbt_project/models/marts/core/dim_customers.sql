with

orders as (
    select * from {{ ref('int_orders_segmented') }}
),

segments as (
    select * from {{ ref('stg_ml__customer_segments') }}
),

customer_orders as (
    select
        customer_id,
        arg_max(source_segment, order_time) as source_segment,
        arg_max(customer_city, order_time) as customer_city,
        arg_max(customer_state, order_time) as customer_state,
        arg_max(customer_country, order_time) as customer_country,
        arg_max(region, order_time) as region,
        arg_max(market, order_time) as market,
        count(*) as orders,
        sum(net_value) as revenue,
        min(order_time) as first_order_at,
        max(order_time) as last_order_at,
    from orders
    group by customer_id
),

final as (
    select
        -- ids
        customer_orders.customer_id,

        -- dimensions
        coalesce(segments.segment_name, 'Unsegmented') as customer_segment,
        segments.segment_id,
        coalesce(customer_orders.source_segment, 'unknown') as source_segment,
        customer_orders.customer_city,
        customer_orders.customer_state,
        customer_orders.customer_country,
        customer_orders.region,
        customer_orders.market,

        -- measures
        customer_orders.orders,
        customer_orders.revenue,
        segments.recency_days,
        segments.frequency,
        segments.monetary,
        segments.late_share,
        segments.mean_delay_days,

        -- timestamps
        customer_orders.first_order_at,
        customer_orders.last_order_at,
        segments.scored_at as segmented_at,

    from customer_orders
    left join segments
        on customer_orders.customer_id = segments.customer_id
)

select * from final
