"""Bring your own data: a YAML mapping maps a CSV onto the event contracts, end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from scpro_assets.contracts.events import validate_event
from scpro_assets.sources.common import pseudonymise, stable_event_id
from scpro_assets.sources.mapping import MappingError, load, load_mapping, map_csv

ITEM_CSV = """\
ref;placed;promise;client;client_email;segment;city;sku;title;qty;price;disc;weight_kg;paid;shipped;delivered;state
A1;03/01/2024 10:30;06/01/2024 18:00;c-9;ann@example.com;Consumer;Lyon;P-1;Kettle;2;20.00;1.50;1.2;39.99;03/01/2024 16:00;05/01/2024 11:00;ok
A1;03/01/2024 10:30;06/01/2024 18:00;c-9;ann@example.com;Consumer;Lyon;P-2;Mug;1;5.50;0;0.3;39.99;03/01/2024 16:00;05/01/2024 11:00;ok
B2;04/01/2024 09:00;08/01/2024 18:00;c-7;bob@example.com;Corporate;Paris;P-3;Lamp;1;30.00;0;;30.00;;;cancelled
C3;32/01/2024 09:00;08/01/2024 18:00;c-7;bob@example.com;Corporate;Paris;P-3;Lamp;1;30.00;0;;30.00;;;ok
D4;05/01/2024 09:00;09/01/2024 18:00;c-5;cy@example.com;Home Office;Nice;P-4;Desk;1;99.00;0;12;99.00;05/01/2024 12:00;;ok
D4;05/01/2024 09:00;09/01/2024 18:00;c-5;cy@example.com;Home Office;Nice;P-5;Chair;two;49.00;0;8;99.00;05/01/2024 12:00;;ok
E5;06/01/2024 09:00;05/01/2024 18:00;c-5;cy@example.com;Home Office;Nice;P-4;Desk;1;99.00;0;12;99.00;;;ok
"""

ITEM_MAPPING = """\
# one row per item, ';'-separated, day-first dates in Paris time
source: acme
rows: item
delimiter: ";"
timezone: Europe/Paris
date_formats: ["%d/%m/%Y %H:%M"]
orders:
  order_id: ref
  placed_at: placed
  promised_at: promise
  customer_id: client
  customer_segment: segment
  customer_city: city
  customer_country: {const: France}
  channel: {const: web}
items:
  product_id: sku
  product_name: title
  quantity: qty
  unit_price: price
  discount: disc
  weight: {column: weight_kg, unit: kg}
payments:
  amount: paid
  type: {const: card}
shipments:
  shipped_at: shipped
  delivered_at: delivered
  status: state
  canceled_values: [cancelled]
"""

ORDER_CSV = """\
order_no,created_at,days,customer,total,weight_g
1001,2024-02-01T08:00:00Z,3,k1,12.5,250
1002,2024-02-02 09:15,2,k2,7,
"""

ORDER_MAPPING = """\
source: shop
orders:
  order_id: order_no
  placed_at: created_at
  promised_days: days
  customer_id: customer
items:
  product_id: {const: parcel}
  unit_price: total
  weight: {column: weight_g, unit: g}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def item_files(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = _write(tmp_path, "orders.csv", ITEM_CSV)
    mapping = _write(tmp_path, "mapping.yaml", ITEM_MAPPING + "file: orders.csv\n")
    return mapping, csv_path


def test_item_rows_grouped_into_orders_with_exact_fields(item_files):
    mapping, _ = item_files
    events, report = load(mapping)
    placed = {e.payload["order_id"]: e.payload for e in events if e.topic == "orders"}
    assert sorted(placed) == ["acme-A1", "acme-B2"]
    a1 = placed["acme-A1"]
    assert a1["event_id"] == stable_event_id("acme", "order_placed", "acme-A1")
    assert a1["event_time"] == "2024-01-03T09:30:00.000Z"  # 10:30 in Paris (UTC+1)
    assert a1["promised_delivery_date"] == "2024-01-06T17:00:00.000Z"
    assert a1["source"] == "acme" and a1["channel"] == "web"
    assert a1["customer"] == {
        "customer_id": pseudonymise("acme-customer-c-9"),
        "segment": "Consumer",
        "city": "Lyon",
        "country": "France",
    }
    assert a1["items"] == [
        {
            "item_id": "acme-A1-1",
            "product_id": "P-1",
            "quantity": 2,
            "unit_price": 20.0,
            "discount": 1.5,
            "freight": 0.0,
            "product_name": "Kettle",
            "weight_g": 1200.0,
        },
        {
            "item_id": "acme-A1-2",
            "product_id": "P-2",
            "quantity": 1,
            "unit_price": 5.5,
            "discount": 0.0,
            "freight": 0.0,
            "product_name": "Mug",
            "weight_g": 300.0,
        },
    ]
    # Personal data never passes: the e-mail column is not mapped, so it is nowhere.
    assert "example.com" not in json.dumps([e.payload for e in events])
    kinds = sorted(
        (e.payload["order_id"], e.payload["event_type"], e.payload.get("status")) for e in events
    )
    assert kinds == [
        ("acme-A1", "order_placed", None),
        ("acme-A1", "payment_captured", None),
        ("acme-A1", "shipment_status", "delivered"),
        ("acme-A1", "shipment_status", "shipped"),
        ("acme-B2", "order_placed", None),
        ("acme-B2", "payment_captured", None),
        ("acme-B2", "shipment_status", "canceled"),
    ]
    pay = next(e.payload for e in events if e.payload["event_type"] == "payment_captured")
    assert (pay["amount"], pay["payment_type"], pay["installments"]) == (39.99, "card", 1)
    delivered = next(e for e in events if e.payload.get("status") == "delivered")
    assert delivered.payload["event_time"] == "2024-01-05T10:00:00.000Z"
    assert delivered.payload["order_time"] == "2024-01-03T09:30:00.000Z"
    assert delivered.key == "acme-A1" and delivered.topic == "shipments"
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)
    for event in events:
        assert validate_event(event.topic, event.payload).ok

    # Every row is accounted for, with its reason.
    assert report.rows_read == 7
    assert dict(report.events) == {
        "order_placed": 2,
        "payment_captured": 2,
        "shipment_status": 3,
    }
    assert dict(report.rejected) == {
        "bad date in orders.placed_at (column 'placed')": 1,
        "not a number in items.quantity (column 'qty')": 1,
        "order has a rejected row": 1,
        "order_placed: contract violation: event: Value error, promised_delivery_date is "
        "before the order was placed": 1,
    }
    assert report.rejected_total == 4
    assert report.examples["not a number in items.quantity (column 'qty')"] == (
        "line 7: order acme-D4"
    )
    assert report.examples["bad date in orders.placed_at (column 'placed')"] == (
        "line 5: order acme-C3"
    )
    assert report.examples["order has a rejected row"] == "line 6: order acme-D4"
    assert "4 rows rejected" in report.summary()


def test_event_ids_are_stable_across_replays(item_files):
    mapping, csv_path = item_files
    first, _ = load(mapping)
    second, _ = load(mapping, csv_path)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [e.to_json() for e in first] == [e.to_json() for e in second]
    assert len({e.event_id for e in first}) == len(first)


def test_one_row_per_order_with_promised_days_and_grams(tmp_path: Path):
    mapping = load_mapping(_write(tmp_path, "m.yaml", ORDER_MAPPING))
    events, report = map_csv(mapping, _write(tmp_path, "o.csv", ORDER_CSV))
    assert report.rejected_total == 0 and report.rows_read == 2
    assert [e.topic for e in events] == ["orders", "orders"]
    first, second = (e.payload for e in events)
    assert first["order_id"] == "shop-1001"
    assert first["event_time"] == "2024-02-01T08:00:00.000Z"
    assert first["promised_delivery_date"] == "2024-02-04T08:00:00.000Z"
    assert first["scheduled_days"] == 3.0
    assert first["items"] == [
        {
            "item_id": "shop-1001-1",
            "product_id": "parcel",
            "quantity": 1,
            "unit_price": 12.5,
            "discount": 0.0,
            "freight": 0.0,
            "weight_g": 250.0,
        }
    ]
    # A naive timestamp without a time zone key is read as UTC; an empty weight stays unknown.
    assert second["event_time"] == "2024-02-02T09:15:00.000Z"
    assert "weight_g" not in second["items"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("placed_at: created_at", "placed_at: created"), r"column\(s\) \['created'\]"),
        (("  customer_id: customer\n", "  customer_id: customer\n  custmer_city: c\n"),
         r"orders: unknown key\(s\) \['custmer_city'\]"),
        (("unit: g", "unit: stone"), r"items.weight.unit: 'stone'"),
        (("  promised_days: days\n", ""), "orders: give 'promised_at'"),
        (("source: shop", "source: shop\nrows: line"), "rows: 'line'"),
    ],
)  # fmt: skip
def test_mapping_errors_name_the_bad_key(tmp_path: Path, change, message):
    text = ORDER_MAPPING.replace(*change)
    assert text != ORDER_MAPPING
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(MappingError, match=message):
        map_csv(load_mapping(path), _write(tmp_path, "o.csv", ORDER_CSV))


def test_replayed_through_kafka_and_landed(item_files, scpro_settings, dagster_instance):
    """The mapped events go through the real broker and the landing contracts unharmed."""
    from scpro_assets.definitions.platform import build_definitions
    from scpro_assets.replay import replay
    from scpro_assets.runner import ingest_until_caught_up

    mapping, _ = item_files
    events, _ = load(mapping)
    stats = replay(events, scpro_settings.kafka)
    assert dict(stats.published) == {"orders": 2, "payments": 2, "shipments": 3}
    defs = build_definitions(scpro_settings)
    ingest_until_caught_up(defs, dagster_instance, topics=("orders", "payments", "shipments"))
    for topic, expected in (("orders", 2), ("payments", 2), ("shipments", 3)):
        raw = [
            row
            for f in sorted((scpro_settings.raw_dir / topic).glob("partition-*/*.parquet"))
            for row in pq.read_table(f).to_pylist()
        ]
        quarantined = list((scpro_settings.quarantine_dir / topic).glob("**/*.parquet"))
        assert len(raw) == expected, topic
        assert not quarantined, topic
    ids = {e.event_id for e in events if e.topic == "orders"}
    landed = {
        json.loads(row["payload"])["event_id"]
        for f in (scpro_settings.raw_dir / "orders").glob("partition-*/*.parquet")
        for row in pq.read_table(f).to_pylist()
    }
    assert landed == ids


def test_cli_replays_a_csv_with_a_mapping(item_files, scpro_settings, monkeypatch):
    from scpro_assets.cli import main

    mapping, csv_path = item_files
    monkeypatch.setenv("SCPRO_HOME", str(scpro_settings.home))
    monkeypatch.setenv("SCPRO_KAFKA_BOOTSTRAP", scpro_settings.kafka.bootstrap_servers)
    monkeypatch.setenv("SCPRO_TOPIC_PREFIX", scpro_settings.kafka.topic_prefix)
    result = CliRunner().invoke(
        main, ["replay", "csv", "--mapping", str(mapping), "--data", str(csv_path), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "acme: 7 rows read, 7 events" in result.output
    assert "published 7 events" in result.output
    missing = CliRunner().invoke(main, ["replay", "csv"])
    assert missing.exit_code != 0 and "--mapping" in missing.output


def test_documented_example_mapping_is_valid():
    from scpro_assets.settings import REPO_ROOT

    example = load_mapping(REPO_ROOT / "scpro_assets" / "sources" / "mapping.example.yaml")
    assert example.rows == "item" and example.source == "acme"
    assert example.canceled_values == {"CANCELLED", "RETURNED_BEFORE_SHIPPING"}
    assert example.items["weight"].unit == "kg"
    assert example.null_values == {"N/A", "-"}
    assert example.items["weight"].null_values == {"N/A", "-", "Weight Captured Separately"}
    assert example.shipments["delivered_at"].null_values == {"N/A", "-", "Date Not Captured"}


# --- real B2B histories: large lines, tokens meaning "empty", grouped reasons, limits -----------

# In the style of a pharma supply-chain shipments history (invented rows): one shipment a row,
# lines of 50,000 packs worth 3,000,000, two tonnes, and dates the source did not capture.
PHARMA_CSV = """\
shipment,project,po_sent,scheduled,shipped,delivered,vendor,product_group,item,packs,pack_price,line_value,weight_kg,freight
SC-1,PRJ-7,2015-06-02,2015-07-15,2015-06-20,2015-07-14,V-1,ARV,ITM-1,50000,60.00,3000000.00,2000,12000.50
SC-2,PRJ-7,2015-06-03,2015-07-20,Date Not Captured,2015-07-18,V-1,ARV,ITM-2,1200,2.50,3000.00,Weight Captured Separately,Freight Included in Commodity Cost
SC-3,PRJ-9,2015-06-04,2015-08-01,2015-06-30,N/A,V-2,HRDT,ITM-3,8000,12.00,96000.00,150,800.00
SC-4,PRJ-9,2015-06-05,2015-08-10,N/A,Date Not Captured,V-2,HRDT,ITM-4,400,75.00,30000.00,NA,NA
"""

PHARMA_MAPPING = """\
source: pharma
rows: order
null_values: ["Date Not Captured", "N/A", "NA"]
orders:
  order_id: shipment
  placed_at: po_sent
  promised_at: scheduled
  customer_id: project
items:
  product_id: item
  category: product_group
  seller_id: vendor
  quantity: packs
  unit_price: pack_price
  weight: {column: weight_kg, unit: kg, null_values: ["Weight Captured Separately"]}
  freight: {column: freight, null_values: ["Freight Included in Commodity Cost"]}
payments:
  amount: line_value
  type: {const: invoice}
shipments:
  shipped_at: shipped
  delivered_at: delivered
"""


def _pharma(tmp_path: Path, mapping: str = PHARMA_MAPPING, csv_text: str = PHARMA_CSV):
    return map_csv(
        load_mapping(_write(tmp_path, "m.yaml", mapping)), _write(tmp_path, "s.csv", csv_text)
    )


def test_a_pharma_history_with_large_lines_and_uncaptured_dates_lands_whole(tmp_path: Path):
    events, report = _pharma(tmp_path)
    assert report.rejected_total == 0, report.summary()
    placed = {e.payload["order_id"]: e.payload for e in events if e.topic == "orders"}
    assert sorted(placed) == ["pharma-SC-1", "pharma-SC-2", "pharma-SC-3", "pharma-SC-4"]
    big = placed["pharma-SC-1"]["items"][0]
    assert (big["quantity"], big["unit_price"], big["weight_g"]) == (50_000, 60.0, 2_000_000.0)
    assert big["freight"] == 12000.5
    paid = {e.payload["order_id"]: e.payload["amount"] for e in events if e.topic == "payments"}
    assert paid["pharma-SC-1"] == 3_000_000.0
    # A token meaning "empty" is unknown, not zero and not a bad value.
    assert "weight_g" not in placed["pharma-SC-2"]["items"][0]
    assert placed["pharma-SC-2"]["items"][0]["freight"] == 0.0  # the field's default
    assert "weight_g" not in placed["pharma-SC-4"]["items"][0]
    statuses = sorted(
        (e.payload["order_id"], e.payload["status"]) for e in events if e.topic == "shipments"
    )
    assert statuses == [
        ("pharma-SC-1", "delivered"),
        ("pharma-SC-1", "shipped"),
        ("pharma-SC-2", "delivered"),  # shipped: Date Not Captured
        ("pharma-SC-3", "shipped"),  # delivered: N/A, not delivered yet
        # SC-4: neither date captured, so no tracking event at all
    ]
    for event in events:
        assert validate_event(event.topic, event.payload).ok, event.payload


def test_null_values_of_a_column_apply_to_that_column_only(tmp_path: Path):
    # Without the file's list, the same tokens are bad dates and bad numbers, reported as such.
    without_file_tokens = PHARMA_MAPPING.replace(
        'null_values: ["Date Not Captured", "N/A", "NA"]\n', ""
    )
    only_shipped = without_file_tokens.replace(
        "  shipped_at: shipped\n",
        '  shipped_at: {column: shipped, null_values: ["Date Not Captured", "N/A"]}\n',
    ).replace("  delivered_at: delivered\n", "  delivered_at: {column: delivered}\n")
    mapping = load_mapping(_write(tmp_path, "m.yaml", only_shipped))
    assert mapping.null_values == frozenset()
    assert mapping.shipments["shipped_at"].null_values == {"Date Not Captured", "N/A"}
    assert mapping.shipments["delivered_at"].null_values == frozenset()
    assert mapping.items["weight"].null_values == {"Weight Captured Separately"}
    events, report = map_csv(mapping, _write(tmp_path, "s.csv", PHARMA_CSV))
    assert report.rows_read == 4
    assert dict(report.rejected) == {
        # SC-3: the delivered column knows no token; SC-4: 'NA' is empty only with the file's.
        "bad date in shipments.delivered_at (column 'delivered')": 1,
        "not a number in items.freight (column 'freight')": 1,
    }
    assert report.examples["bad date in shipments.delivered_at (column 'delivered')"] == (
        "line 4: order pharma-SC-3"
    )
    landed = {e.payload["order_id"] for e in events if e.topic == "orders"}
    assert landed == {"pharma-SC-1", "pharma-SC-2"}  # SC-2's shipped token is that column's


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("[-1]", r"null_values: expected a list of text tokens"),
        ("{a: b}", r"null_values: expected a list of text tokens"),
    ],
)
def test_null_values_must_be_text(tmp_path: Path, tokens: str, message: str):
    text = PHARMA_MAPPING.replace('["Date Not Captured", "N/A", "NA"]', tokens)
    with pytest.raises(MappingError, match=message):
        load_mapping(_write(tmp_path, "m.yaml", text))
    per_field = PHARMA_MAPPING.replace('["Weight Captured Separately"]', tokens)
    with pytest.raises(MappingError, match=r"items\.weight\.null_values: expected a list"):
        load_mapping(_write(tmp_path, "m2.yaml", per_field))


BEYOND_LIMITS_CSV = """\
order,placed,promised,customer,sku,qty,price
X1,2024-03-01,2024-03-05,c1,P-1,20000000,1.00
X1,2024-03-01,2024-03-05,c1,P-2,5,1.00
X1,2024-03-01,2024-03-05,c1,P-3,30000000,1.00
Y2,2024-03-02,2024-03-06,c2,P-1,3,1.00
Y2,2024-03-02,2024-03-06,c2,P-2,10000001,1.00
Z3,2024-03-03,2024-03-07,c3,P-1,1,2000000000.00
OK,2024-03-03,2024-03-07,c3,P-1,10000000,99.00
"""

BEYOND_LIMITS_MAPPING = """\
source: bulk
rows: item
orders:
  order_id: order
  placed_at: placed
  promised_at: promised
  customer_id: customer
items:
  product_id: sku
  quantity: qty
  unit_price: price
"""


def test_values_beyond_the_limits_are_rejected_with_one_reason_whatever_the_line(tmp_path: Path):
    mapping = load_mapping(_write(tmp_path, "m.yaml", BEYOND_LIMITS_MAPPING))
    events, report = map_csv(mapping, _write(tmp_path, "b.csv", BEYOND_LIMITS_CSV))
    quantity = (
        "order_placed: contract violation: items.*.quantity: "
        "Input should be less than or equal to 10000000"
    )
    price = (
        "order_placed: contract violation: items.*.unit_price: "
        "Input should be less than or equal to 1000000000"
    )
    # X1 breaks the rule on its lines 1 and 3, Y2 on its line 2: one reason, counted per order.
    assert dict(report.rejected) == {quantity: 2, price: 1, "order has a rejected row": 3}
    assert report.examples[quantity] == "line 2: order bulk-X1"
    assert sum(quantity in line for line in report.summary().splitlines()) == 1
    # At the limit, a line still lands.
    [placed] = [e.payload for e in events if e.topic == "orders"]
    assert placed["order_id"] == "bulk-OK" and placed["items"][0]["quantity"] == 10_000_000


def test_group_positions_rewrites_only_locations():
    from scpro_assets.sources.common import group_positions

    reason = (
        "order_placed: contract violation: items.0.quantity: Input should be less than or equal "
        "to 1000000000.5; items.12: Value error, discount exceeds the line's price; "
        "items.3.quantity: Input should be less than or equal to 1000000000.5"
    )
    assert group_positions(reason) == (
        "order_placed: contract violation: items.*.quantity: Input should be less than or equal "
        "to 1000000000.5; items.*: Value error, discount exceeds the line's price"
    )
    assert group_positions("bad date in orders.placed_at (column 'x.1')") == (
        "bad date in orders.placed_at (column 'x.1')"
    )


def test_deployment_limits_come_from_the_environment(monkeypatch):
    from scpro_assets.settings import ContractLimits

    for name in ("SCPRO_MAX_QUANTITY", "SCPRO_MAX_MONEY", "SCPRO_MAX_WEIGHT_G"):
        monkeypatch.delenv(name, raising=False)
    assert ContractLimits.from_env() == ContractLimits(
        max_quantity=10_000_000, max_money=1e9, max_weight_g=1e9
    )
    monkeypatch.setenv("SCPRO_MAX_QUANTITY", "40_000")
    monkeypatch.setenv("SCPRO_MAX_MONEY", "5e9")
    monkeypatch.setenv("SCPRO_MAX_WEIGHT_G", "1000")
    assert ContractLimits.from_env() == ContractLimits(
        max_quantity=40_000, max_money=5e9, max_weight_g=1000.0
    )
    for name, value, message in (
        ("SCPRO_MAX_MONEY", "lots", "SCPRO_MAX_MONEY: expected a positive number, got 'lots'"),
        ("SCPRO_MAX_WEIGHT_G", "-5", "SCPRO_MAX_WEIGHT_G: expected a positive number, got '-5'"),
        ("SCPRO_MAX_QUANTITY", "2.5", "SCPRO_MAX_QUANTITY: expected a whole number"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=message):
            ContractLimits.from_env()
        monkeypatch.delenv(name)


def test_a_deployment_limit_set_by_env_is_honoured_by_the_contracts(tmp_path: Path):
    """The contracts read their limits once, at import: a process started with the variables."""
    import subprocess
    import sys

    from scpro_assets.settings import REPO_ROOT

    mapping = _write(tmp_path, "m.yaml", PHARMA_MAPPING)
    data = _write(tmp_path, "s.csv", PHARMA_CSV)
    script = (
        "import json, sys\n"
        "from scpro_assets.sources.mapping import load_mapping, map_csv\n"
        "events, report = map_csv(load_mapping(sys.argv[1]), sys.argv[2])\n"
        "print(json.dumps(dict(report.rejected)))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SCPRO_MAX_QUANTITY": "40000",  # SC-1's 50,000 packs are now too many
        "SCPRO_MAX_WEIGHT_G": "100000",  # and SC-3's 150 kg too heavy
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(mapping), str(data)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "order_placed: contract violation: items.*.quantity: "
        "Input should be less than or equal to 40000; items.*.weight_g: "
        "Input should be less than or equal to 100000": 1,
        "order_placed: contract violation: items.*.weight_g: "
        "Input should be less than or equal to 100000": 1,
    }
