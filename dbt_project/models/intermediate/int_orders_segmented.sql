-- One row per clean order with the dashboard's filter dimensions resolved (never null) and the
-- customer's ML segment attached.
with

orders as (
    select * from {{ ref('stg_clean__orders') }}
),

segments as (
    select * from {{ ref('stg_ml__customer_segments') }}
),

segmented as (
    select
        -- ids
        orders.order_id,
        orders.customer_id,
        orders.source_system,

        -- dimensions (filters are never null)
        coalesce(nullif(trim(orders.region), ''), 'unknown') as region,
        coalesce(nullif(trim(orders.market), ''), 'unknown') as market,
        coalesce(
            nullif(trim(orders.carrier), ''),
            nullif(trim(orders.shipping_mode), ''),
            'unknown'
        ) as carrier_mode,
        case
            when nullif(trim(orders.carrier), '') is not null then 'carrier'
            when nullif(trim(orders.shipping_mode), '') is not null then 'shipping_mode'
            else 'unknown'
        end as carrier_mode_kind,
        orders.shipping_mode,
        orders.carrier,
        coalesce(nullif(trim(orders.main_category), ''), 'unknown') as main_category,
        coalesce(nullif(trim(orders.main_department), ''), 'unknown') as main_department,
        coalesce(segments.segment_name, 'Unsegmented') as customer_segment,
        orders.source_segment,
        coalesce(orders.channel, 'unknown') as channel,
        coalesce(orders.payment_type, 'unknown') as payment_type,
        orders.customer_city,
        orders.customer_state,
        orders.customer_country,
        orders.customer_lat,
        orders.customer_lon,
        orders.destination_state,

        -- measures
        orders.scheduled_days,
        orders.item_count,
        orders.units,
        orders.gross_value,
        orders.discount,
        orders.net_value,
        orders.freight,

        -- timestamps
        orders.order_time,
        cast(orders.order_time as date) as order_date,
        cast(date_trunc('week', orders.order_time) as date) as order_week,
        orders.promised_delivery_time,

    from orders
    left join segments
        on orders.customer_id = segments.customer_id
)

select * from segmented
