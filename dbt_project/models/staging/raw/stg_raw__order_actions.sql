with

source as (
    select * from {{ source('raw', 'raw_actions') }}
),

renamed as (
    select
        -- ids
        cast(event_id as varchar) as action_id,
        cast(order_id as varchar) as order_id,

        -- dimensions
        json_extract_string(payload, '$.action') as action,
        json_extract_string(payload, '$.actor') as actor,
        json_extract_string(payload, '$.assignee') as assignee,
        json_extract_string(payload, '$.note') as note,
        json_extract_string(payload, '$.snapshot_version') as snapshot_version,
        cast(schema_version as integer) as schema_version,

        -- where it was landed from
        cast("partition" as integer) as kafka_partition,
        cast("offset" as bigint) as kafka_offset,

        -- timestamps (the action's event time is the wall clock when the person acted)
        cast(event_time as timestamp) as acted_at,
        cast(landed_at as timestamp) as landed_at,

    from source
)

select * from renamed
