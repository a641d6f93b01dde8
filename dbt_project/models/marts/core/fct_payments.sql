-- Incremental: each build replaces the payment events the clean layer changed since the last
-- complete build (it only ever adds them), merging them on the event id
-- (macros/incremental.sql). `dbt build --full-refresh` rebuilds it.
{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='merge',
        on_schema_change='fail',
        pre_hook="{{ delete_changed('event_id', dataset_keys('cleaned_payments'), ['cleaned_payments']) }}",
    )
}}

with

payments as (
    select * from {{ ref('stg_clean__payments') }}
    {{ changed_filter('event_id', dataset_keys('cleaned_payments'), ['cleaned_payments']) }}
),

final as (
    select
        -- ids
        payments.event_id,
        payments.order_id,

        -- dimensions
        payments.payment_status,
        coalesce(payments.payment_type, 'unknown') as payment_type,
        payments.installments,

        -- measures
        payments.amount,

        -- timestamps
        payments.paid_at,
        cast(payments.paid_at as date) as paid_date,

    from payments
)

select * from final
