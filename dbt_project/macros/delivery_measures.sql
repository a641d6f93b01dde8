{#- The additive delivery measures of the kpi_delivery_* marts (see SERVING_CONTRACT.md): sums and
    counts only, so any filter combination re-aggregates exactly. -#}
{% macro delivery_measures() -%}
        count(*) as orders,
        coalesce(sum(net_value), 0) as revenue,
        count(delivered_at) as delivered_orders,
        count(*) filter (where is_late) as late_orders,
        count(*) filter (where not is_late) as on_time_orders,
        coalesce(sum(delay_days), 0) as sum_delay_days,
        count(*) filter (where is_open) as open_orders,
        count(*) filter (where is_open and is_high_risk) as high_risk_open_orders,
        count(prediction_gap_days) as scored_delivered_orders,
        coalesce(sum(abs(prediction_gap_days)), 0) as sum_abs_prediction_gap_days,
{%- endmacro %}
