-- Every day from the first order to the last, extended to the last forecast period.
with

orders as (
    select * from {{ ref('int_orders_segmented') }}
),

forecasts as (
    select * from {{ ref('stg_ml__demand_forecast') }}
),

bounds as (
    select
        (select min(order_date) from orders) as first_day,
        greatest(
            (select max(order_date) from orders),
            (select max(period_start) + 6 from forecasts)
        ) as last_day,
),

days as (
    select cast(unnest(generate_series(first_day, last_day, interval 1 day)) as date) as date_day
    from bounds
    where first_day is not null
),

final as (
    select
        -- ids
        date_day,

        -- dimensions
        cast(date_trunc('week', date_day) as date) as week_start,
        cast(date_trunc('month', date_day) as date) as month_start,
        year(date_day) as year,
        quarter(date_day) as quarter,
        month(date_day) as month,
        isodow(date_day) as iso_weekday,
        dayname(date_day) as day_name,
        isodow(date_day) >= 6 as is_weekend,

    from days
)

select * from final
