-- Freshness and accounting of each layer: what the lake held when the warehouse was built (from
-- the build's inventory of Parquet footers) and what the warehouse's marts hold now.
with

lake as (
    select * from {{ ref('stg_lake__inventory') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

order_items as (
    select * from {{ ref('fct_order_items') }}
),

payments as (
    select * from {{ ref('fct_payments') }}
),

incidents as (
    select * from {{ ref('fct_incidents') }}
),

warehouse as (
    select
        'fct_orders' as dataset,
        count(*) as row_count,
        max(order_time) as latest,
    from orders
    union all
    select
        'fct_deliveries' as dataset,
        count(*) as row_count,
        max(order_time) as latest,
    from deliveries
    union all
    select
        'fct_order_items' as dataset,
        count(*) as row_count,
        cast(null as timestamp) as latest,
    from order_items
    union all
    select
        'fct_payments' as dataset,
        count(*) as row_count,
        max(paid_at) as latest,
    from payments
    union all
    select
        'fct_incidents' as dataset,
        count(*) as row_count,
        max(opened_at) as latest,
    from incidents
),

final as (
    select
        layer,
        dataset,
        last_updated_at,
        row_count,
        coalesce(quarantined, 0) as quarantined,
        detail,
    from lake

    union all

    select
        'warehouse' as layer,
        dataset,
        cast(current_timestamp as timestamp) as last_updated_at,
        row_count,
        cast(0 as bigint) as quarantined,
        coalesce('latest business time ' || cast(latest as varchar), 'built') as detail,
    from warehouse
)

select * from final
