{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed('period_start', incident_days(), ['cleaned_incidents']) }}",
    )
}}

-- Incidents opened per day x kind x severity x carrier, with additive resolution measures.
-- Incremental: a build recomputes only the days of the incidents changed since the last complete
-- build (macros/incremental.sql).
with

incidents as (
    select * from {{ ref('fct_incidents') }}
    {{ changed_filter('opened_date', incident_days(), ['cleaned_incidents']) }}
),

aggregated as (
    select
        -- dimensions
        opened_date as period_start,
        kind,
        severity,
        carrier,

        -- measures
        count(*) as incidents_opened,
        count(resolved_at) as incidents_resolved,
        count(*) filter (where is_open) as open_incidents,
        coalesce(sum(resolution_hours), 0) as sum_resolution_hours,
        avg(resolution_hours) as mean_resolution_hours,

    from incidents
    group by all
)

select * from aggregated
