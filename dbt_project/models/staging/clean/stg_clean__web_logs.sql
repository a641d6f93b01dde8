-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_web_logs', 'event_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_web_logs') }}
    {{ changed_source_rows('cleaned_web_logs', 'event_id') }}
),

renamed as (
    select
        -- ids
        cast(event_id as varchar) as event_id,
        cast(order_id as varchar) as order_id,
        cast(client_hash as varchar) as client_hash,

        -- dimensions
        cast(url as varchar) as url,
        cast(department as varchar) as department,
        cast(category as varchar) as category,
        cast(product as varchar) as product_name,

        -- timestamps
        cast(event_time as timestamp) as event_time,

    from source
)

select * from renamed
