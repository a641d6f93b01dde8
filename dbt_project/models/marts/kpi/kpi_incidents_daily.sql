-- Incidents opened per day x kind x severity x carrier, with additive resolution measures.
with

incidents as (
    select * from {{ ref('fct_incidents') }}
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
