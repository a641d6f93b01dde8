-- The orders whose rows this build recomputes in the order-grain facts, with their days (the
-- KPI marts recompute those days and weeks): orders, lines and deliveries the clean layer changed
-- since the last complete build (the deleted image's day included), orders the models scored
-- differently, and the orders of customers whose segment changed. Empty when a change set is
-- unknown: the incremental models then recompute everything (macros/incremental.sql).
{{ config(materialized='table') }}

{%- set datasets = order_change_datasets() %}

{% if changes_known(datasets) %}
with

clean_changes as (
    select
        key as order_id,
        cast(business_time as date) as order_date,
    from {{ changed_keys(['cleaned_orders', 'cleaned_order_items', 'cleaned_deliveries']) }}
),

rescored as (
    select key as order_id
    from {{ changed_keys(['delivery_time_predictions', 'late_risk_scores']) }}
),

resegmented as (
    select key as customer_id
    from {{ changed_keys(['customer_segments']) }}
),

orders as (
    select * from {{ ref('stg_clean__orders') }}
),

model_changes as (
    select
        order_id,
        cast(order_time as date) as order_date,
    from orders
    where order_id in (select order_id from rescored)
        or customer_id in (select customer_id from resegmented)
),

changed as (
    select * from clean_changes
    union
    select * from model_changes
)

select * from changed
{% else %}
-- depends_on: {{ ref('stg_clean__orders') }}
select
    cast(null as varchar) as order_id,
    cast(null as date) as order_date,
where false
{% endif %}
