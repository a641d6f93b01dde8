with

source as (
    select * from {{ source('ml', 'model_registry') }}
),

renamed as (
    select
        -- ids
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,

        -- dimensions
        cast(task as varchar) as task,
        cast(framework as varchar) as framework,
        cast(algorithm as varchar) as algorithm,
        cast(code_version as varchar) as code_version,
        cast(data_version as varchar) as data_version,
        cast(features as varchar) as features,
        cast(hyperparameters as varchar) as hyperparameters,
        cast(metrics as varchar) as metrics,
        cast(primary_metric as varchar) as primary_metric,
        cast(is_serving as boolean) as is_serving,
        cast(serving_reason as varchar) as serving_reason,
        cast(artifact_path as varchar) as artifact_path,

        -- measures
        cast(train_rows as bigint) as train_rows,
        cast(test_rows as bigint) as test_rows,
        cast(primary_metric_value as double) as primary_metric_value,
        cast(interval_level as double) as interval_level,
        cast(interval_coverage as double) as interval_coverage,
        cast(interval_width_days as double) as interval_width_days,

        -- timestamps
        cast(trained_at as timestamp) as trained_at,
        cast(train_start as timestamp) as train_start,
        cast(train_end as timestamp) as train_end,
        cast(test_start as timestamp) as test_start,
        cast(test_end as timestamp) as test_end,

    from source
)

select * from renamed
