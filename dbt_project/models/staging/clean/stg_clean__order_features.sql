-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('order_features', 'order_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'order_features') }}
    {{ changed_source_rows('order_features', 'order_id') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,
        cast(customer_id as varchar) as customer_id,

        -- measures known at order time
        cast(prior_orders as bigint) as prior_orders,
        cast(prior_late_rate as double) as prior_late_rate,
        cast(distance_km as double) as distance_km,
        cast(open_incidents_at_order as bigint) as open_incidents_at_order,

        -- timestamps
        cast(order_time as timestamp) as order_time,

    from source
)

select * from renamed
