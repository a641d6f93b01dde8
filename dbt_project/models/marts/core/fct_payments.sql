-- Payment events never change once landed, so new builds only append the event ids not seen yet
-- (the clean layer re-publishes the whole history each time; this keeps the warehouse's work
-- proportional to what is new). `dbt build --full-refresh` rebuilds it.
{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

with

payments as (
    select * from {{ ref('stg_clean__payments') }}
),

{% if is_incremental() %}
already_loaded as (
    select event_id from {{ this }}
),
{% endif %}

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
    {% if is_incremental() %}
    anti join already_loaded
        on payments.event_id = already_loaded.event_id
    {% endif %}
)

select * from final
