-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_order_items', 'order_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_order_items') }}
    {{ changed_source_rows('cleaned_order_items', 'order_id') }}
),

renamed as (
    select
        -- ids
        cast(order_id as varchar) as order_id,
        cast(item_id as varchar) as item_id,
        cast(line_number as integer) as line_number,
        cast(product_id as varchar) as product_id,
        cast(seller_id as varchar) as seller_id,

        -- dimensions
        cast(product_name as varchar) as product_name,
        cast(category as varchar) as category,
        cast(department as varchar) as department,

        -- measures
        cast(quantity as bigint) as quantity,
        cast(unit_price as double) as unit_price,
        cast(discount as double) as discount,
        cast(freight as double) as freight,
        cast(weight_g as double) as weight_g,
        cast(line_value as double) as line_value,

        -- timestamps
        cast(order_time as timestamp) as order_time,

    from source
)

select * from renamed
