-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_orders', 'order_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_orders') }}
    {{ changed_source_rows('cleaned_orders', 'order_id') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,
        cast(customer_id as varchar) as customer_id,
        cast(source as varchar) as source_system,

        -- dimensions
        cast(customer_segment as varchar) as source_segment,
        cast(customer_city as varchar) as customer_city,
        cast(customer_state as varchar) as customer_state,
        cast(customer_country as varchar) as customer_country,
        cast(customer_lat as double) as customer_lat,
        cast(customer_lon as double) as customer_lon,
        cast(market as varchar) as market,
        cast(region as varchar) as region,
        cast(channel as varchar) as channel,
        cast(shipping_mode as varchar) as shipping_mode,
        cast(carrier as varchar) as carrier,
        cast(origin_city as varchar) as origin_city,
        cast(destination_city as varchar) as destination_city,
        cast(destination_state as varchar) as destination_state,
        cast(destination_country as varchar) as destination_country,
        cast(payment_type as varchar) as payment_type,
        cast(main_category as varchar) as main_category,
        cast(main_department as varchar) as main_department,

        -- measures
        cast(scheduled_days as double) as scheduled_days,
        cast(item_count as integer) as item_count,
        cast(units as bigint) as units,
        cast(gross_value as double) as gross_value,
        cast(discount as double) as discount,
        cast(net_value as double) as net_value,
        cast(freight as double) as freight,
        cast(total_weight_g as double) as total_weight_g,

        -- timestamps
        cast(order_time as timestamp) as order_time,
        cast(promised_delivery_time as timestamp) as promised_delivery_time,

    from source
)

select * from renamed
