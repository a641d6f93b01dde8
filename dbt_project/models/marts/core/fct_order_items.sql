with

items as (
    select * from {{ ref('stg_clean__order_items') }}
),

orders as (
    select * from {{ ref('int_orders_segmented') }}
),

final as (
    select
        -- ids
        items.order_id,
        items.item_id,
        items.line_number,
        items.product_id,

        -- dimensions
        items.product_name,
        coalesce(nullif(trim(items.category), ''), 'unknown') as category,
        coalesce(nullif(trim(items.department), ''), 'unknown') as department,

        -- measures
        items.quantity,
        items.unit_price,
        items.discount,
        items.line_value,

        -- order context (filters)
        orders.order_date,
        orders.region,
        orders.carrier_mode,
        orders.customer_segment,

    from items
    inner join orders
        on items.order_id = orders.order_id
)

select * from final
