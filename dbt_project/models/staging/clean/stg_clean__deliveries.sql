-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_deliveries', 'order_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_deliveries') }}
    {{ changed_source_rows('cleaned_deliveries', 'order_id') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,

        -- dimensions
        cast(status as varchar) as delivery_status,
        cast(is_late as boolean) as is_late,

        -- measures
        cast(exception_count as bigint) as exception_count,
        cast(delivery_days as double) as delivery_days,
        cast(delay_days as double) as delay_days,

        -- timestamps
        cast(order_time as timestamp) as order_time,
        cast(promised_delivery_time as timestamp) as promised_delivery_time,
        cast(shipped_at as timestamp) as shipped_at,
        cast(delivered_at as timestamp) as delivered_at,
        cast(canceled_at as timestamp) as canceled_at,
        cast(last_event_at as timestamp) as last_event_at,

    from source
)

select * from renamed
