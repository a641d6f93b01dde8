-- One row per order with a delivery state, joined with the delivery-time prediction and the
-- late-risk score when the models have scored it.
with

deliveries as (
    select * from {{ ref('stg_clean__deliveries') }}
),

predictions as (
    select * from {{ ref('stg_ml__delivery_time_predictions') }}
),

risk_scores as (
    select * from {{ ref('stg_ml__late_risk_scores') }}
),

scored as (
    select
        -- ids
        deliveries.order_id,

        -- dimensions
        deliveries.delivery_status,
        deliveries.is_late,
        case
            when risk_scores.late_risk is null then 'unscored'
            when risk_scores.risk_band in ('high', 'medium', 'low') then risk_scores.risk_band
            when risk_scores.late_risk >= {{ var('high_risk_threshold') }} then 'high'
            when risk_scores.late_risk >= 0.4 then 'medium'
            else 'low'
        end as risk_band,
        risk_scores.top_reasons,
        predictions.model_version as delivery_model_version,
        risk_scores.model_version as risk_model_version,

        -- measures
        deliveries.exception_count,
        deliveries.delivery_days,
        deliveries.delay_days,
        predictions.predicted_delivery_days,
        predictions.predicted_delivery_days - deliveries.delivery_days as prediction_gap_days,
        risk_scores.late_risk,

        -- timestamps
        deliveries.shipped_at,
        deliveries.delivered_at,
        deliveries.canceled_at,
        coalesce(
            predictions.predicted_delivery_time,
            deliveries.order_time
            + to_microseconds(cast(round(predictions.predicted_delivery_days * 86400e6) as bigint))
        ) as predicted_delivery_time,

        -- ETA range (UTC dates)
        predictions.predicted_delivery_date,
        predictions.eta_low,
        predictions.eta_high,

    from deliveries
    left join predictions
        on deliveries.order_id = predictions.order_id
    left join risk_scores
        on deliveries.order_id = risk_scores.order_id
)

select * from scored
