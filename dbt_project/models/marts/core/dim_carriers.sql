-- One row per carrier/mode value the dashboard filters on (the carrier when the source names one,
-- else the shipping mode).
with

orders as (
    select * from {{ ref('int_orders_segmented') }}
),

final as (
    select
        -- ids
        carrier_mode,

        -- dimensions
        arg_max(carrier_mode_kind, order_time) as carrier_mode_kind,
        string_agg(distinct shipping_mode, ', ' order by shipping_mode) as shipping_modes,

        -- measures
        count(*) as orders,

        -- timestamps
        min(order_time) as first_order_at,
        max(order_time) as last_order_at,

    from orders
    group by carrier_mode
)

select * from final
