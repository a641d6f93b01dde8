-- Orders first seen at high risk per day (wall clock) x filters, and how soon people acted.
with

entries as (
    select * from {{ ref('fct_at_risk_entries') }}
),

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

actions as (
    select * from {{ ref('fct_order_actions') }}
),

first_actions as (
    select
        order_id,
        min(acted_at) as first_action_at,
        bool_or(action = 'resolve') as is_resolved,
    from actions
    group by order_id
),

flagged as (
    select
        entries.order_id,
        cast(entries.first_high_risk_at as date) as period_start,
        coalesce(deliveries.region, 'unknown') as region,
        coalesce(deliveries.carrier_mode, 'unknown') as carrier_mode,
        coalesce(deliveries.main_category, 'unknown') as main_category,
        coalesce(deliveries.customer_segment, 'Unsegmented') as customer_segment,
        first_actions.first_action_at,
        coalesce(first_actions.is_resolved, false) as is_resolved,
        -- an action taken before the order turned high risk means nobody waited: zero
        greatest(
            date_diff('second', entries.first_high_risk_at, first_actions.first_action_at), 0
        ) / 60.0 as minutes_to_first_action,
    from entries
    left join deliveries on entries.order_id = deliveries.order_id
    left join first_actions on entries.order_id = first_actions.order_id
    where entries.first_high_risk_at is not null
),

aggregated as (
    select
        -- dimensions
        period_start,
        region,
        carrier_mode,
        main_category,
        customer_segment,

        -- measures (additive: mean = sum_minutes_to_first_action / acted_orders)
        count(*) as high_risk_orders,
        count(first_action_at) as acted_orders,
        count(*) filter (where is_resolved) as resolved_orders,
        coalesce(sum(minutes_to_first_action), 0) as sum_minutes_to_first_action,
        avg(minutes_to_first_action) as mean_minutes_to_first_action,

    from flagged
    group by all
)

select * from aggregated
