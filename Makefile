# SCPro: `make demo` runs the platform, `make test` runs the suite; both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
KAFKA_LIBS := infra/kafka/target/libs
STAMP_PY := $(VENV)/.installed
STAMP_KAFKA := $(KAFKA_LIBS)/.resolved
SPARK_LIBS := infra/spark/target/libs
STAMP_SPARK_JARS := $(SPARK_LIBS)/.resolved
STAMP_NODE := tests/node/node_modules/.installed
CHROMIUM := /usr/bin/chromium
DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o \( -name '*.sql' -o -name '*.yml' \) -print)
STAMP_DBT := dbt_project/target/manifest.json

.PHONY: setup prereqs test demo bench pictures lint format docs clean

prereqs:
	@command -v $(PYTHON) >/dev/null || { echo "SCPro needs Python 3.11 ($(PYTHON) not found on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
	  || { echo "SCPro needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	@command -v java >/dev/null || { echo "SCPro needs Java 17+ for the embedded Kafka broker and Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); [ "$${v:-0}" -ge 17 ] \
	  || { echo "SCPro needs Java 17+, found Java $$v"; exit 1; }
	@command -v mvn >/dev/null || { echo "SCPro needs Maven to fetch Apache Kafka and Delta Lake from Maven Central (apt-get install maven)"; exit 1; }
	@command -v npm >/dev/null || { echo "SCPro needs Node.js and npm to prove Evidence can read its DuckDB files (apt-get install nodejs npm)"; exit 1; }

$(STAMP_PY): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	@# Bytecode once, here: with PYTHONDONTWRITEBYTECODE set, every Dagster run worker would
	@# otherwise recompile Dagster, pandas and friends on each start.
	-$(BIN)/python -m compileall -q -j 0 $(VENV)/lib scpro_assets sensors spark ml_assets panel_app >/dev/null 2>&1
	touch $@

$(STAMP_KAFKA): infra/kafka/pom.xml
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies
	touch $@

# Delta Lake's jars for Spark (the lake's table format), from Maven Central like Kafka's.
$(STAMP_SPARK_JARS): infra/spark/pom.xml
	rm -rf $(SPARK_LIBS)
	mvn -q -B -f infra/spark/pom.xml dependency:copy-dependencies
	touch $@

$(STAMP_NODE): tests/node/package.json tests/node/package-lock.json
	npm install --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

# dbt's manifest is prepared here, so Dagster never parses dbt at import time.
$(STAMP_DBT): $(STAMP_PY) $(DBT_SOURCES)
	$(BIN)/python -m scpro_assets.warehouse.prepare

# Browser tests drive Debian's Chromium (never a browser build downloaded by a test tool).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "SCPro could not install Debian's chromium for the browser tests"; exit 1; }; \
	else echo "SCPro's browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi

setup: prereqs $(STAMP_PY) $(STAMP_KAFKA) $(STAMP_SPARK_JARS) $(STAMP_NODE) $(CHROMIUM) $(STAMP_DBT)

# Imports by import-linter's contracts ([tool.importlinter] in pyproject.toml: the product imports
# no test fixture or benchmark, spark/ holds pure transforms, no import cycles). SQL is linted by
# sqlfluff with dbt's templater (.sqlfluff): it compiles the project first.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/sqlfluff lint dbt_project

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q -ra -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# dbt's docs site for the published warehouse, served at http://127.0.0.1:8080.
docs: setup
	$(BIN)/scpro docs

demo: setup
	$(BIN)/scpro demo

bench: setup
	$(BIN)/scpro bench

# The README's pictures, from a running `make demo` (in another terminal) after its first snapshot.
pictures: setup
	$(BIN)/python infra/readme_pictures.py

clean:
	-$(BIN)/scpro kafka stop
	rm -rf .scpro
