"""Bring your own data: a YAML mapping maps a CSV onto the event contracts, end to end."""

from __future__ import annotations

import json
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
    from scpro_assets.definitions import build_definitions
    from scpro_assets.ingest.runner import ingest_until_caught_up
    from scpro_assets.replay import replay

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
