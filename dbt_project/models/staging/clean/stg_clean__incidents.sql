-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_incidents', 'incident_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_incidents') }}
    {{ changed_source_rows('cleaned_incidents', 'incident_id') }}
),

renamed as (
    select
        -- ids
        cast(incident_id as varchar) as incident_id,

        -- dimensions
        cast(kind as varchar) as kind,
        cast(severity as varchar) as severity,
        cast(carrier as varchar) as carrier,
        cast(location_city as varchar) as location_city,
        cast(location_state as varchar) as location_state,
        cast(description as varchar) as description,

        -- measures
        cast(resolution_hours as double) as resolution_hours,

        -- timestamps
        cast(opened_at as timestamp) as opened_at,
        cast(resolved_at as timestamp) as resolved_at,

    from source
)

select * from renamed
