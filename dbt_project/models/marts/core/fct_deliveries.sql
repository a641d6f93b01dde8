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

-- The dashboard's main table: one row per order, promise vs actual, and the models' view of it.
with

orders as (
    select * from {{ ref('int_orders_segmented') }}
    {{ changed_orders_filter() }}
),

deliveries as (
    select * from {{ ref('int_deliveries_scored') }}
    {{ changed_orders_filter() }}
),

joined as (
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
        orders.shipping_mode,
        orders.carrier,
        orders.main_category,
        orders.customer_segment,
        orders.destination_state,
        orders.customer_lat,
        orders.customer_lon,
        coalesce(deliveries.delivery_status, 'placed') as status,
        coalesce(deliveries.delivery_status, 'placed') not in ('delivered', 'canceled') as is_open,

        -- measures
        orders.net_value,
        orders.scheduled_days,
        orders.promised_delivery_time,
        deliveries.delivered_at,
        deliveries.delivery_days,
        deliveries.is_late,
        deliveries.delay_days,

        -- predictions
        deliveries.predicted_delivery_days,
        deliveries.predicted_delivery_time,
        deliveries.predicted_delivery_date,
        deliveries.eta_low,
        deliveries.eta_high,
        deliveries.prediction_gap_days,
        deliveries.late_risk,
        coalesce(deliveries.risk_band, 'unscored') as risk_band,
        coalesce(deliveries.risk_band, 'unscored') = 'high' as is_high_risk,
        deliveries.top_reasons,
        deliveries.delivery_model_version,
        deliveries.risk_model_version,

    from orders
    left join deliveries
        on orders.order_id = deliveries.order_id
)

select * from joined
