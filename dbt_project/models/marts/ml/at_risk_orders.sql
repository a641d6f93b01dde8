-- Open orders the risk model has scored, riskiest first: the customer-service work list.
with

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

ranked as (
    select
        row_number() over (order by late_risk desc, order_time, order_id) as risk_rank,

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
)

select * from ranked
