{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
    )
}}
-- When SCPro first listed each order as at risk, and first at high risk, on the wall clock.
--
-- The replayed streams carry the business time of their data set (DataCo's orders are from
-- 2015-2018) while actions carry the wall clock of the person acting: "how long has this order
-- waited" and "time from high risk to first action" need both ends on one clock. This model
-- keeps that history across builds (incremental): a row is written when an order first
-- appears in the at-risk list, and again the first time it is seen at high risk; it stays after
-- the order leaves the list. A full refresh starts the history again from that build.
with

at_risk as (
    select * from {{ ref('at_risk_orders') }}
),

listed as (
    select
        order_id,
        risk_band = 'high' as is_high_risk,
    from at_risk
),

{% if is_incremental() %}
previous as (
    select order_id, first_listed_at, first_high_risk_at from {{ this }}
),
{% else %}
previous as (
    select
        cast(null as varchar) as order_id,
        cast(null as timestamp) as first_listed_at,
        cast(null as timestamp) as first_high_risk_at,
    where false
),
{% endif %}

build_time as (
    -- the warehouse runs in UTC (profiles.yml), so this is UTC wall clock
    select cast(current_timestamp as timestamp) as now
),

entries as (
    select
        -- ids
        listed.order_id,

        -- timestamps
        coalesce(previous.first_listed_at, build_time.now) as first_listed_at,
        coalesce(
            previous.first_high_risk_at,
            case when listed.is_high_risk then build_time.now end
        ) as first_high_risk_at,

    from listed
    cross join build_time
    left join previous on listed.order_id = previous.order_id
    -- only what is new: an order never listed, or at high risk for the first time
    where previous.order_id is null
        or (previous.first_high_risk_at is null and listed.is_high_risk)
)

select * from entries
