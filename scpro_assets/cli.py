"""The ``scpro`` command: run the embedded broker, replay sources, ingest, benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scpro_assets.settings import TOPICS, Settings


@click.group()
def main() -> None:
    """SCPro: supply-chain intelligence on Kafka, Dagster, Spark, dbt and DuckDB."""


@main.group()
def kafka() -> None:
    """The embedded Apache Kafka broker (or checks on an external cluster)."""


@kafka.command("start")
@click.option("--partitions", type=int, default=None, help="Partitions per event topic.")
def kafka_start(partitions: int | None) -> None:
    """Start the embedded broker in the background and create the event topics."""
    from scpro_assets.kafka.broker import BrokerError, EmbeddedKafka
    from scpro_assets.kafka.clients import ensure_topics

    settings = Settings.from_env()
    try:
        status = EmbeddedKafka(settings).start()
    except BrokerError as error:
        raise click.ClickException(str(error)) from error
    click.echo(status.describe())
    counts = ensure_topics(settings.kafka, partitions)
    click.echo("topics: " + ", ".join(f"{t} ({n} partitions)" for t, n in sorted(counts.items())))


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the embedded broker cleanly."""
    from scpro_assets.kafka.broker import EmbeddedKafka

    stopped = EmbeddedKafka(Settings.from_env()).stop()
    click.echo("Kafka stopped" if stopped else "Kafka was not running")


@kafka.command("status")
def kafka_status() -> None:
    """Say whether the broker runs, and the offsets of each topic."""
    from kafka.errors import KafkaError

    from scpro_assets.kafka.broker import EmbeddedKafka
    from scpro_assets.kafka.clients import end_offsets

    settings = Settings.from_env()
    status = EmbeddedKafka(settings).status()
    click.echo(status.describe())
    try:
        for topic in TOPICS:
            offsets = end_offsets(settings.kafka, topic)
            total = sum(end - begin for begin, end in offsets.values())
            click.echo(
                f"  {settings.kafka.topic_name(topic)}: {len(offsets)} partitions, {total} events"
            )
    except KafkaError as error:
        click.echo(f"  broker at {settings.kafka.bootstrap_servers} does not answer: {error}")
        sys.exit(1)


@main.command()
@click.argument("source", type=click.Choice(["dataco", "olist", "synthetic"]))
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder of the dataset's CSVs.")
@click.option("--orders", type=int, default=10_000, show_default=True, help="Synthetic orders.")
@click.option("--seed", type=int, default=7, show_default=True, help="Synthetic seed.")
@click.option(
    "--speed",
    default="max",
    show_default=True,
    help="'max' (as fast as possible) or business hours per second, e.g. 24.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def replay(
    source: str, data_dir: Path | None, orders: int, seed: int, speed: str, progress: bool
) -> None:
    """Publish a dataset's events to Kafka in event-time order, keyed by order id."""
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.replay import load_source
    from scpro_assets.replay import replay as run_replay

    settings = Settings.from_env()
    rate = None if speed == "max" else float(speed)
    events, report, total = load_source(source, data_dir, orders=orders, seed=seed)
    if report is not None:
        click.echo(report.summary())
    ensure_topics(settings.kafka)
    stats = run_replay(events, settings.kafka, speed=rate, progress=progress, total=total)
    click.echo(
        f"published {stats.total} events in {stats.seconds:.1f}s "
        f"({stats.events_per_second:,.0f} events/s): "
        + ", ".join(f"{t}={n}" for t, n in sorted(stats.published.items()))
    )


if __name__ == "__main__":
    main()
