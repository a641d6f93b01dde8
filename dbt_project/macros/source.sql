{#- `source()` as every model calls it, with one rule for where lake data is read from.

    Each source says once, in its yml, how its tables are read (`external_location` in the
    source's `config.meta`, dbt-duckdb's `{name}` standing for the table): the stable path under
    SCPRO_HOME, which a plain `dbt build` reads. A build started by SCPro (the Dagster asset,
    `scpro dbt`) pins each table to one file or glob first (var `scpro_inputs`, written by
    scpro_assets/warehouse/inputs.py: a resolved version folder, or a typed empty placeholder
    while a dataset has no file); `lake_location` swaps that path in, keeping the reader and its
    options. The clean source's Delta tables are pinned to one table version too
    (`build_value('scpro_versions')`): `delta_scan('<table>', version => n)`, so every model of a build reads
    the same commit while Spark merges the next. dbt documents overriding `source` this way
    (`builtins.source`). -#}
{% macro source(source_name, table_name) -%}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {{- return(lake_location(relation, table_name)) -}}
{%- endmacro %}


{#- The relation reading `pinned` (this build's file, glob or table for the table) instead of the
    path in the source's external_location, e.g. read_parquet('<pinned>', union_by_name = true),
    and at the pinned table version when there is one: delta_scan('<pinned>', version => 3). -#}
{% macro lake_location(relation, table_name) -%}
    {%- set pinned = var('scpro_inputs', {}).get(table_name) -%}
    {%- set version = build_value('scpro_versions').get(table_name) -%}
    {%- set external = relation.external if execute else none -%}
    {%- if not pinned or not external or external.count("'") < 2 -%}
        {{- return(relation) -}}
    {%- endif -%}
    {%- set reader, _stable, options = external.split("'", 2) -%}
    {%- if version is not none -%}
        {%- set options = ", version => " ~ (version | int) ~ options -%}
    {%- endif -%}
    {{- return(relation.incorporate(external=reader ~ "'" ~ pinned ~ "'" ~ options)) -}}
{%- endmacro %}


{#- A value that changes with every build SCPro starts (`scpro_versions`, `scpro_changes`): from
    the SCPRO_DBT_BUILD environment variable (JSON) while models execute, else the var of that
    name (a plain `dbt build`, or values too large for the variable). Not a var because dbt
    parses the whole project again whenever its vars change; an environment variable read only
    at execution is no input of the parse, so a build's new pins and change sets cost no parse.
    -#}
{% macro build_value(name) -%}
    {%- if execute -%}
        {%- set found = env_var('SCPRO_DBT_BUILD', '') -%}
        {%- if found -%}
            {{- return(fromjson(found).get(name, {})) -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(var(name, {})) -}}
{%- endmacro %}
