with

registry as (
    select * from {{ ref('stg_ml__model_registry') }}
),

final as (
    select
        -- ids
        model_name,
        model_version,

        -- dimensions
        task,
        framework,
        algorithm,

        -- timestamps
        trained_at,

        -- measures
        train_rows,
        test_rows,
        primary_metric,
        primary_metric_value,
        metrics,
        interval_level,
        interval_coverage,
        interval_width_days,

        -- serving
        coalesce(is_serving, false) as is_serving,
        serving_reason,

    from registry
)

select * from final
