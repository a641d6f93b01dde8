with

forecasts as (
    select * from {{ ref('stg_ml__demand_forecast') }}
),

final as (
    select
        -- dimensions
        coalesce(category, 'unknown') as category,
        period_start,
        period_grain,

        -- measures
        forecast_orders,
        baseline_orders,
        actual_orders,
        coalesce(is_future, actual_orders is null) as is_future,

        -- lineage
        model_version,

    from forecasts
)

select * from final
