-- Additive delivery measures per day x region x carrier/mode x category x segment.
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

aggregated as (
    select
        -- dimensions
        order_date as period_start,
        region,
        carrier_mode,
        main_category,
        customer_segment,

        -- measures
        {{ delivery_measures() }}

    from deliveries
    group by all
)

select * from aggregated
