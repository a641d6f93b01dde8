-- One row per customer segment: who they are (RFM means from the segmentation model), what they
-- bring in, how deliveries treat them, and what marketing should do with them.
with

customers as (
    select * from {{ ref('dim_customers') }}
),

deliveries as (
    select * from {{ ref('fct_deliveries') }}
),

by_customer as (
    select
        customer_segment,
        count(*) as customers,
        avg(monetary) as avg_monetary,
        avg(recency_days) as avg_recency_days,
        avg(frequency) as avg_frequency,
    from customers
    group by customer_segment
),

by_order as (
    select
        customer_segment,
        count(*) as orders,
        sum(net_value) as revenue,
        count(delivered_at) as delivered_orders,
        count(*) filter (where is_late) as late_orders,
        avg(delay_days) as avg_delay_days,
    from deliveries
    group by customer_segment
),

profiled as (
    select
        -- dimensions
        by_customer.customer_segment,

        -- measures
        by_customer.customers,
        coalesce(by_order.orders, 0) as orders,
        coalesce(by_order.revenue, 0) as revenue,
        by_customer.avg_monetary,
        by_customer.avg_recency_days,
        by_customer.avg_frequency,
        by_order.late_orders / nullif(by_order.delivered_orders, 0) as late_share,
        by_order.avg_delay_days,
        1 - by_order.late_orders / nullif(by_order.delivered_orders, 0) as on_time_rate,
        coalesce(by_order.revenue, 0)
        / nullif(sum(coalesce(by_order.revenue, 0)) over (), 0) as share_of_revenue,
        -- for the description: how this segment compares with the others
        avg(by_customer.avg_monetary) over () as _mean_monetary,
        avg(by_customer.avg_frequency) over () as _mean_frequency,
        avg(by_customer.avg_recency_days) over () as _mean_recency,
        sum(by_order.late_orders) over ()
        / nullif(sum(by_order.delivered_orders) over (), 0) as _overall_late_share,
    from by_customer
    left join by_order
        on by_customer.customer_segment = by_order.customer_segment
),

final as (
    select
        customer_segment,
        customers,
        orders,
        revenue,
        avg_monetary,
        avg_recency_days,
        avg_frequency,
        late_share,
        avg_delay_days,
        on_time_rate,
        share_of_revenue,
        case
            when customer_segment = 'Unsegmented'
                then 'Not scored by the segmentation model yet: no targeted action.'
            when late_share > 1.25 * _overall_late_share
                then 'Hurt by late deliveries: recover them first (apology, voucher, faster mode).'
            when avg_monetary >= _mean_monetary and avg_frequency >= _mean_frequency
                then 'Best customers: reward loyalty, early access, protect their delivery promise.'
            when avg_recency_days > _mean_recency
                then 'Drifting away: win-back campaign with a time-limited offer.'
            when avg_frequency < _mean_frequency
                then 'Occasional buyers: cross-sell and second-order incentives.'
            else 'Steady buyers: keep engaged with regular, relevant offers.'
        end as description,
    from profiled
)

select * from final
