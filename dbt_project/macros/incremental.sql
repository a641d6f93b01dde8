{#- Incremental models: each build replaces the rows of what changed in the lake since the last
    complete build, nothing else (scpro_assets/warehouse/changes.py writes the change sets).

    `build_value('scpro_changes')` (macros/source.sql) maps a dataset (a clean table, an ML output) to its change set:
    {path: Parquet file of (key, business_time), partition: the table's partition column, partitions: the
    partitions the changed rows live in}. A dataset missing from it (a plain `dbt build`, a first
    build, a table the clean layer rewrote) counts as wholly changed: the models then re-read all
    of it through the same path. A model replaces a key's rows in two steps: a pre-hook deletes
    every row of the changed keys (`delete_changed`: keys that vanished from the lake go too),
    then the model's own select, narrowed to those keys (`changed_filter`), puts back their
    current rows with the model's incremental strategy. `dbt build --full-refresh` rebuilds
    every model from all of the lake, and must give the same tables. -#}


{#- The change set of `dataset`, or none when its changes are unknown. -#}
{% macro change_set(dataset) -%}
    {{- return(build_value('scpro_changes').get(dataset)) -}}
{%- endmacro %}


{#- Whether every one of `datasets` has a known change set. -#}
{% macro changes_known(datasets) -%}
    {%- for dataset in datasets -%}
        {%- if not change_set(dataset) -%}{{- return(false) -}}{%- endif -%}
    {%- endfor -%}
    {{- return(true) -}}
{%- endmacro %}


{#- `read_parquet([...])` over the change sets of `datasets` (those known; an empty relation
    when none is: callers use it only when all are, see `changed_filter`). -#}
{% macro changed_keys(datasets) -%}
    {%- set paths = [] -%}
    {%- for dataset in datasets if change_set(dataset) -%}
        {%- do paths.append("'" ~ change_set(dataset).path ~ "'") -%}
    {%- endfor -%}
    {%- if paths -%}
        read_parquet([{{ paths | join(', ') }}])
    {%- else -%}
        (select cast(null as varchar) as key, cast(null as timestamp) as business_time where false)
    {%- endif -%}
{%- endmacro %}


{#- `select key` of the keys of `dataset` changed since the last complete build. -#}
{% macro dataset_keys(dataset) -%}
    select key from {{ changed_keys([dataset]) }}
{%- endmacro %}


{#- The datasets whose changes change an order's row in the order-grain facts. -#}
{% macro order_change_datasets() -%}
    {{- return([
        'cleaned_orders', 'cleaned_order_items', 'cleaned_deliveries',
        'delivery_time_predictions', 'late_risk_scores', 'customer_segments',
    ]) -}}
{%- endmacro %}


{#- ` where <expression> in (<changed>)` in an incremental build whose `datasets` changes are all
    known; nothing otherwise (a first or full build, or unknown changes: every row). -#}
{% macro changed_filter(expression, changed, datasets) -%}
    {%- if is_incremental() and changes_known(datasets) -%}
        where {{ expression }} in ({{ changed }})
    {%- endif -%}
{%- endmacro %}


{#- Pre-hook: delete the rows `changed_filter` selects (every row when the changes are unknown). -#}
{% macro delete_changed(expression, changed, datasets) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} {{ changed_filter(expression, changed, datasets) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- A clean staging table's filter: the rows of the changed keys, read from the partitions they
    live in only (Delta prunes the other files). -#}
{% macro changed_source_rows(dataset, key) -%}
    {%- set change = change_set(dataset) -%}
    {%- if is_incremental() and change -%}
        where cast({{ key }} as varchar) in ({{ dataset_keys(dataset) }})
        {%- if change.partition and change.partitions is not none %}
            {%- if change.partitions %}
            and {{ change.partition }} in (
                {%- for value in change.partitions -%}
                    '{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}
                {%- endfor -%}
            )
            {%- else %}
            and false
            {%- endif %}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}


{#- A clean staging table's pre-hook: delete the rows of its changed keys. -#}
{% macro delete_changed_source_rows(dataset, key) -%}
    {{- delete_changed(key, dataset_keys(dataset), [dataset]) -}}
{%- endmacro %}


{#- `select order_id` of the orders changed since the last complete build. -#}
{% macro changed_orders() -%}
    select order_id from {{ ref('int_order_changes') }}
{%- endmacro %}


{#- An order-grain model's filter: the orders of `int_order_changes`. -#}
{% macro changed_orders_filter(column='order_id') -%}
    {{- changed_filter(column, changed_orders(), order_change_datasets()) -}}
{%- endmacro %}


{#- An order-grain model's pre-hook: delete the rows of the changed orders. -#}
{% macro delete_changed_orders(column='order_id') -%}
    {{- delete_changed(column, changed_orders(), order_change_datasets()) -}}
{%- endmacro %}


{#- A KPI's filter on its period: the days (grain 'day') or ISO weeks ('week') of the changed
    orders; `expression` is the model's period column. -#}
{% macro changed_periods_filter(expression, grain='day') -%}
    {{- changed_filter(expression, changed_periods(grain), order_change_datasets()) -}}
{%- endmacro %}


{#- A KPI's pre-hook: delete its rows of the changed days or weeks. -#}
{% macro delete_changed_periods(grain='day') -%}
    {{- delete_changed('period_start', changed_periods(grain), order_change_datasets()) -}}
{%- endmacro %}


{#- `select <period>` of the changed orders' days or weeks. -#}
{% macro changed_periods(grain) -%}
    {%- set day = "cast(date_trunc('week', order_date) as date)" if grain == 'week' else 'order_date' -%}
    select distinct {{ day }} from {{ ref('int_order_changes') }}
{%- endmacro %}


{#- `select` of the days of the incidents changed since the last complete build (both images). -#}
{% macro incident_days() -%}
    select distinct cast(business_time as date) from {{ changed_keys(['cleaned_incidents']) }}
{%- endmacro %}
