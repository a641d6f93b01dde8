-- Open orders the risk model has scored, riskiest first: the customer-service work list.
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

ranked as (
    select
        row_number() over (order by late_risk desc, order_time asc, order_id asc) as risk_rank,

        -- ids
        order_id,
        customer_id,

        -- timestamps
        order_time,
        promised_delivery_time,
        predicted_delivery_time,

        -- ETA range (UTC dates)
        predicted_delivery_date,
        eta_low,
        eta_high,

        -- risk
        late_risk,
        risk_band,
        top_reasons,

        -- dimensions
        customer_segment,
        region,
        carrier_mode,
        main_category,

        -- measures
        net_value,
        status,

    from deliveries
    where is_open and late_risk is not null
),

-- The exception queue (issue #15): each order's status and owner from the At-risk page's actions.
actions as (
    select * from {{ ref('fct_order_actions') }}
    where not is_after_resolution
),

queue_state as (
    select
        order_id,
        -- the latest action that sets a status; notes alone mean someone has looked at it
        case arg_max(action, action_seq) filter (where action <> 'note')
            when 'assign' then 'assigned'
            when 'resolve' then 'resolved'
            else 'acknowledged'
        end as queue_status,
        arg_max(assignee, action_seq) filter (where action = 'assign') as owner,
        count(*) as action_count,
        min(acted_at) as first_action_at,
        max(acted_at) as last_action_at,
    from actions
    group by order_id
),

queued as (
    select
        ranked.*,
        coalesce(queue_state.queue_status, 'new') as queue_status,
        queue_state.owner,
        coalesce(queue_state.action_count, 0) as action_count,
        queue_state.first_action_at,
        queue_state.last_action_at,
    from ranked
    left join queue_state on ranked.order_id = queue_state.order_id
)

select * from queued
