-- Incremental: a build replaces the rows of the keys the clean layer changed since the last
-- complete build (macros/incremental.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_source_rows('cleaned_payments', 'event_id') }}",
    )
}}

with

source as (
    select * from {{ source('clean', 'cleaned_payments') }}
    {{ changed_source_rows('cleaned_payments', 'event_id') }}
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
