with

source as (
    select * from {{ source('clean', 'cleaned_payments') }}
),

renamed as (
    select
        -- ids
        cast(event_id as varchar) as event_id,
        cast(order_id as varchar) as order_id,

        -- dimensions
        cast(payment_status as varchar) as payment_status,
        cast(payment_type as varchar) as payment_type,
        cast(installments as integer) as installments,
        cast(sequence as integer) as payment_sequence,

        -- measures
        cast(amount as double) as amount,

        -- timestamps
        cast(paid_at as timestamp) as paid_at,

    from source
)

select * from renamed
