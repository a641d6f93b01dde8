-- Top products: units and revenue per ISO week x product, ranked by revenue within the week.
with

items as (
    select * from {{ ref('fct_order_items') }}
),

aggregated as (
    select
        cast(date_trunc('week', order_date) as date) as period_start,
        product_id,
        arg_max(product_name, length(coalesce(product_name, ''))) as product_name,
        arg_max(category, length(category)) as category,
        count(distinct order_id) as orders,
        cast(sum(quantity) as bigint) as units,
        sum(line_value) as revenue,
    from items
    group by period_start, product_id
),

ranked as (
    select
        -- dimensions
        period_start,
        product_id,
        product_name,
        category,

        -- measures
        orders,
        units,
        revenue,
        rank() over (partition by period_start order by revenue desc) as revenue_rank,

    from aggregated
)

select * from ranked
