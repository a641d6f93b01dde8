-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_shipments', 'event_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_shipments') }}
    {{ changed_source_rows('cleaned_shipments', 'event_id') }}
),

renamed as (
    select
        -- ids
        cast(event_id as varchar) as event_id,
        cast(order_id as varchar) as order_id,

        -- dimensions
        cast(status as varchar) as shipment_status,
        cast(carrier as varchar) as carrier,
        cast(shipping_mode as varchar) as shipping_mode,
        cast(location_city as varchar) as location_city,
        cast(location_state as varchar) as location_state,
        cast(detail as varchar) as detail,

        -- timestamps
        cast(event_time as timestamp) as event_time,
        cast(order_time as timestamp) as order_time,

    from source
)

select * from renamed
