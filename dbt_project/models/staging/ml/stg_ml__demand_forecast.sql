with

source as (
    select * from {{ source('ml', 'demand_forecast') }}
),

renamed as (
    select
        -- ids
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,

        -- dimensions
        cast(category as varchar) as category,
        cast(period_start as date) as period_start,
        cast(period_grain as varchar) as period_grain,
        cast(is_future as boolean) as is_future,

        -- measures
        cast(forecast_orders as double) as forecast_orders,
        cast(baseline_orders as double) as baseline_orders,
        cast(actual_orders as double) as actual_orders,

        -- timestamps
        cast(scored_at as timestamp) as scored_at,

    from source
)

select * from renamed
