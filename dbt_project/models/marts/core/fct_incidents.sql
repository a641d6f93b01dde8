with

incidents as (
    select * from {{ ref('stg_clean__incidents') }}
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
