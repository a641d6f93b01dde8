-- One row per action people took on an order from the At-risk page, each event once.
with

actions as (
    select * from {{ ref('stg_raw__order_actions') }}
),

deduplicated as (
    -- A producer's retry repeats an event id: keep its first landing.
    select * from actions
    qualify
        row_number() over (
            partition by action_id order by landed_at, kafka_partition, kafka_offset
        ) = 1
),

sequenced as (
    select
        *,
        row_number() over (partition by order_id order by acted_at, action_id) as action_seq,
    from deduplicated
),

first_resolution as (
    select
        order_id,
        min(action_seq) as resolve_seq,
    from sequenced
    where action = 'resolve'
    group by order_id
),

final as (
    select
        -- ids
        sequenced.action_id,
        sequenced.order_id,
        sequenced.action_seq,

        -- dimensions
        sequenced.action,
        sequenced.actor,
        sequenced.assignee,
        sequenced.note,
        sequenced.snapshot_version,
        -- Resolution is final: an action after it (a page that had not seen the resolve yet) is
        -- kept for the audit trail, flagged, and changes neither status nor owner.
        coalesce(sequenced.action_seq > first_resolution.resolve_seq, false)
            as is_after_resolution,

        -- timestamps
        sequenced.acted_at,
        cast(sequenced.acted_at as date) as acted_date,
        sequenced.landed_at,

        -- lineage
        sequenced.kafka_partition,
        sequenced.kafka_offset,

    from sequenced
    left join first_resolution on sequenced.order_id = first_resolution.order_id
)

select * from final
