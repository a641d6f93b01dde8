{#- Use the folder's schema as-is (staging, intermediate, main), not <target>_<schema>:
    the dashboard and Evidence read `main.<mart>` whatever the target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
