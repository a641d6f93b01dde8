-- Incremental: each build replaces the rows of the orders changed since the last complete build
-- (int_order_changes; macros/incremental.sql), merging them on the key.
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_orders() }}",
    )
}}

with

orders as (
    select * from {{ ref('int_orders_segmented') }}
    {{ changed_orders_filter() }}
),

deliveries as (
    select * from {{ ref('int_deliveries_scored') }}
    {{ changed_orders_filter() }}
),

final as (
    select
        -- ids
        orders.order_id,
        orders.customer_id,

        -- timestamps
        orders.order_time,
        orders.order_date,
        orders.order_week,

        -- dimensions
        orders.region,
        orders.market,
        orders.carrier_mode,
        orders.main_category,
        orders.customer_segment,
        orders.channel,
        orders.payment_type,

        -- measures
        orders.item_count,
        orders.units,
        orders.gross_value,
        orders.discount,
        orders.net_value,
        orders.freight,

        -- state
        coalesce(deliveries.delivery_status, 'placed') as status,

    from orders
    left join deliveries
        on orders.order_id = deliveries.order_id
)

select * from final
