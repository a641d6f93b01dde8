{{ config(meta={'dagster': {'ref': {'name': 'kpi_delivery_daily'}}}) }}

-- The additive KPI marts add up to fct_deliveries exactly (orders, late orders, revenue).
with

deliveries as (
    select
        count(*) as orders,
        count(*) filter (where is_late) as late_orders,
        round(coalesce(sum(net_value), 0), 2) as revenue,
    from {{ ref('fct_deliveries') }}
),

daily as (
    select
        coalesce(sum(orders), 0) as orders,
        coalesce(sum(late_orders), 0) as late_orders,
        round(coalesce(sum(revenue), 0), 2) as revenue,
    from {{ ref('kpi_delivery_daily') }}
),

weekly as (
    select
        coalesce(sum(orders), 0) as orders,
        coalesce(sum(late_orders), 0) as late_orders,
        round(coalesce(sum(revenue), 0), 2) as revenue,
    from {{ ref('kpi_delivery_weekly') }}
)

select
    deliveries.orders,
    daily.orders as daily_orders,
    weekly.orders as weekly_orders,
    deliveries.late_orders,
    daily.late_orders as daily_late_orders,
    weekly.late_orders as weekly_late_orders,
    deliveries.revenue,
    daily.revenue as daily_revenue,
    weekly.revenue as weekly_revenue,
from deliveries, daily, weekly
where deliveries.orders <> daily.orders
    or deliveries.orders <> weekly.orders
    or deliveries.late_orders <> daily.late_orders
    or deliveries.late_orders <> weekly.late_orders
    or abs(deliveries.revenue - daily.revenue) > 0.01
    or abs(deliveries.revenue - weekly.revenue) > 0.01
