with

source as (
    select * from {{ source('clean', 'cleaned_web_logs') }}
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
