-- Every scored order's ETA lies inside its interval, and the interval never ends before it starts.
select order_id
from {{ ref('fct_deliveries') }}
where predicted_delivery_date is not null
    and (eta_low > predicted_delivery_date or eta_high < predicted_delivery_date)
