-- A delivered order is late exactly when it has days past the promise; an undelivered one has
-- neither a late flag nor a delay.
select order_id
from {{ ref('fct_deliveries') }}
where (delivered_at is not null and (is_late is null or is_late <> (delay_days > 0)))
    or (delivered_at is null and (is_late is not null or delay_days is not null))
