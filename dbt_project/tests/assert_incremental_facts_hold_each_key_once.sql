{{ config(meta={'dagster': {'ref': {'name': 'fct_deliveries'}}}) }}

-- Guards every snapshot (the cycle runs it; the per-column tests run on their schedule): the facts
-- the builds maintain incrementally hold each key once and no null key, and the order-grain facts
-- hold exactly the clean orders, so a replacement that went wrong (a key deleted and not put back,
-- or put back twice) fails the build before the snapshot is published. One query over the keys.
with

keys as (
    select
        'fct_orders' as fact_model,
        order_id as fact_key
    from {{ ref('fct_orders') }}
    union all
    select
        'fct_deliveries' as fact_model,
        order_id as fact_key
    from {{ ref('fct_deliveries') }}
    union all
    select
        'fct_order_items' as fact_model,
        order_id || '|' || item_id as fact_key
    from {{ ref('fct_order_items') }}
    union all
    select
        'fct_payments' as fact_model,
        event_id as fact_key
    from {{ ref('fct_payments') }}
    union all
    select
        'fct_incidents' as fact_model,
        incident_id as fact_key
    from {{ ref('fct_incidents') }}
),

repeated as (
    select
        fact_model,
        fact_key,
        'key held ' || count(*) || ' times' as problem,
    from keys
    group by fact_model, fact_key
    having fact_key is null or count(*) > 1
),

order_counts as (
    select
        (select count(*) from {{ ref('stg_clean__orders') }}) as clean_orders,
        (select count(*) from {{ ref('fct_orders') }}) as fct_orders,
        (select count(*) from {{ ref('fct_deliveries') }}) as fct_deliveries,
),

miscounted as (
    select
        'fct_orders, fct_deliveries' as fact_model,
        null as fact_key,
        'clean orders ' || clean_orders || ', fct_orders ' || fct_orders
        || ', fct_deliveries ' || fct_deliveries as problem,
    from order_counts
    where fct_orders <> clean_orders or fct_deliveries <> clean_orders
)

select * from repeated
union all
select * from miscounted
