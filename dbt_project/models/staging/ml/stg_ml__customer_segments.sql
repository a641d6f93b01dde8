with

source as (
    select * from {{ source('ml', 'customer_segments') }}
),

renamed as (
    select
        -- ids
        cast(customer_id as varchar) as customer_id,
        cast(segment_id as integer) as segment_id,
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,

        -- dimensions
        cast(segment_name as varchar) as segment_name,

        -- measures
        cast(recency_days as double) as recency_days,
        cast(frequency as bigint) as frequency,
        cast(monetary as double) as monetary,
        cast(late_share as double) as late_share,
        cast(mean_delay_days as double) as mean_delay_days,

        -- timestamps
        cast(scored_at as timestamp) as scored_at,

    from source
)

select * from renamed
