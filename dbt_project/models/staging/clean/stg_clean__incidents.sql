with

source as (
    select * from {{ source('clean', 'cleaned_incidents') }}
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
