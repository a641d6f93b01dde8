-- Incremental: each build replaces the incidents the clean layer changed since the last complete
-- build, merging them on the incident id (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        unique_key='incident_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        pre_hook="{{ delete_changed('incident_id', dataset_keys('cleaned_incidents'), ['cleaned_incidents']) }}",
    )
}}

with

incidents as (
    select * from {{ ref('stg_clean__incidents') }}
    {{ changed_filter('incident_id', dataset_keys('cleaned_incidents'), ['cleaned_incidents']) }}
),

final as (
    select
        -- ids
        incident_id,

        -- dimensions
        coalesce(kind, 'unknown') as kind,
        coalesce(severity, 'unknown') as severity,
        coalesce(nullif(trim(carrier), ''), 'unknown') as carrier,
        location_state,

        -- timestamps
        opened_at,
        resolved_at,
        cast(opened_at as date) as opened_date,

        -- measures
        resolution_hours,
        resolved_at is null as is_open,

    from incidents
)

select * from final
