with

source as (
    select * from {{ source('lake', 'lake_inventory') }}
),

renamed as (
    select
        -- ids
        cast(layer as varchar) as layer,
        cast(dataset as varchar) as dataset,

        -- measures
        cast(row_count as bigint) as row_count,
        cast(quarantined as bigint) as quarantined,
        cast(detail as varchar) as detail,

        -- timestamps
        cast(last_updated_at as timestamp) as last_updated_at,
        cast(inventoried_at as timestamp) as inventoried_at,

    from source
)

select * from renamed
