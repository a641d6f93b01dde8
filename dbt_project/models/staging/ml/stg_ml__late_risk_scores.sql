-- A table, never a view over delta_scan: every reader of the warehouse (Evidence's Node driver)
-- would otherwise need the delta extension (as the clean source's staging models).
{{ config(materialized='table') }}

with

source as (
    select * from {{ source('ml', 'late_risk_scores') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,

        -- dimensions
        cast(risk_band as varchar) as risk_band,
        cast(top_reasons as varchar) as top_reasons,
        cast(is_open as boolean) as is_open,

        -- measures
        cast(late_risk as double) as late_risk,

        -- timestamps
        cast(scored_at as timestamp) as scored_at,

    from source
)

select * from renamed
