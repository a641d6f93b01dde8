{{
    config(
        materialized='incremental',
        unique_key='period_start',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_periods('day') }}",
    )
}}

-- Additive delivery measures per day x region x carrier/mode x category x segment.
-- Incremental: a build recomputes only the days of the orders changed since the last complete
-- build (macros/incremental.sql).
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
    {{ changed_periods_filter('order_date', 'day') }}
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
