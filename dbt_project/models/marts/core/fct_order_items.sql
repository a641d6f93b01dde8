-- Incremental: each build replaces the lines of the orders changed since the last complete build
-- (int_order_changes; macros/incremental.sql), merging them on the line's key.
{{
    config(
        materialized='incremental',
        unique_key=['order_id', 'item_id'],
        incremental_strategy='merge',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_orders() }}",
    )
}}

with

items as (
    select * from {{ ref('stg_clean__order_items') }}
    {{ changed_orders_filter() }}
),

orders as (
    select * from {{ ref('int_orders_segmented') }}
    {{ changed_orders_filter() }}
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
