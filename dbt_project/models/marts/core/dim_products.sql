with

items as (
    select * from {{ ref('stg_clean__order_items') }}
),

final as (
    select
        -- ids
        product_id,

        -- dimensions (as last sold)
        arg_max(product_name, order_time) as product_name,
        coalesce(nullif(trim(arg_max(category, order_time)), ''), 'unknown') as category,
        coalesce(nullif(trim(arg_max(department, order_time)), ''), 'unknown') as department,

        -- measures
        count(distinct order_id) as orders,
        cast(sum(quantity) as bigint) as units_sold,
        sum(line_value) as revenue,
        avg(unit_price) as avg_unit_price,

        -- timestamps
        min(order_time) as first_sold_at,
        max(order_time) as last_sold_at,

    from items
    where product_id is not null
    group by product_id
)

select * from final
