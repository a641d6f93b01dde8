-- A table, never a view over delta_scan: every reader of the warehouse (Evidence's Node driver)
-- would otherwise need the delta extension (as the clean source's staging models).
{{ config(materialized='table') }}

with

source as (
    select * from {{ source('ml', 'delivery_time_predictions') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,

        -- measures
        cast(predicted_delivery_days as double) as predicted_delivery_days,
        cast(eta_low_days as double) as eta_low_days,
        cast(eta_high_days as double) as eta_high_days,
        cast(is_open as boolean) as is_open,

        -- dates
        cast(predicted_delivery_date as date) as predicted_delivery_date,
        cast(eta_low as date) as eta_low,
        cast(eta_high as date) as eta_high,

        -- timestamps
        cast(predicted_delivery_time as timestamp) as predicted_delivery_time,
        cast(scored_at as timestamp) as scored_at,

    from source
)

select * from renamed
