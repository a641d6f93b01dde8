"""The ``scpro`` command: run the embedded broker, replay sources, ingest, benchmark."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from scpro_assets.settings import TOPICS, Settings

#: Every benchmark ``scpro bench`` runs, in order (``--only`` picks some).
BENCHMARKS = (
    "replay",
    "ingest",
    "clean",
    "incremental",
    "models",
    "scoring",
    "warehouse",
    "dashboard",
    "latency",
    "chaos",
)


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


@main.group()
def spark() -> None:
    """The embedded Spark Connect server (runs connect to it instead of starting a JVM each)."""


@spark.command("start")
def spark_start() -> None:
    """Start the embedded Spark Connect server in the background; wait until it answers."""
    from scpro_assets.spark_server import EmbeddedSparkConnect, SparkServerError

    settings = Settings.from_env()
    if settings.spark_connect.remote:
        raise click.ClickException(
            f"SCPRO_SPARK_REMOTE is set ({settings.spark_connect.remote}): sessions use that "
            "server, so no embedded one is started. Unset it to run the embedded server."
        )
    try:
        status = EmbeddedSparkConnect(settings).start()
    except SparkServerError as error:
        raise click.ClickException(str(error)) from error
    click.echo(status.describe())


@spark.command("stop")
def spark_stop() -> None:
    """Stop the embedded Spark Connect server (runs fall back to in-process Spark)."""
    from scpro_assets.spark_server import EmbeddedSparkConnect

    stopped = EmbeddedSparkConnect(Settings.from_env()).stop()
    click.echo("Spark Connect stopped" if stopped else "Spark Connect was not running")


@spark.command("status")
def spark_status() -> None:
    """Say whether the server runs, and where Spark sessions run now."""
    from scpro_assets.spark_server import EmbeddedSparkConnect, session_remote

    settings = Settings.from_env()
    click.echo(EmbeddedSparkConnect(settings).status().describe())
    remote = session_remote(settings)
    click.echo(
        f"sessions connect to {remote}"
        if remote
        else f"sessions run in-process on {settings.spark_master}"
    )


@spark.command("startup-time")
@click.option("--repeat", default=3, show_default=True, help="Fresh processes per way.")
def spark_startup_time(repeat: int) -> None:
    """Time a session's start (to its first answer) in-process and over Spark Connect.

    Each try is a fresh Python process, as each Dagster run is. Needs a Connect server
    (``scpro spark start``, or ``SCPRO_SPARK_REMOTE``).
    """
    from scpro_assets.spark_server import session_remote, time_session_start

    settings = Settings.from_env()
    remote = session_remote(settings)
    if remote is None:
        raise click.ClickException("no Spark Connect server runs: `scpro spark start` first")
    for label, target in ((f"in-process ({settings.spark_master})", None), (remote, remote)):
        seconds = sorted(time_session_start(settings.spark_master, target) for _ in range(repeat))
        click.echo(
            f"{label}: median {seconds[len(seconds) // 2]:.1f} s "
            f"(min {seconds[0]:.1f}, max {seconds[-1]:.1f}, {repeat} runs)"
        )


@main.command()
@click.argument("source", type=click.Choice(["dataco", "olist", "synthetic", "csv"]))
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder of the dataset's CSVs.")
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="csv only: the YAML mapping of your columns (see BRING_YOUR_OWN_DATA.md).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="csv only: the CSV to replay (else the mapping's 'file').",
)
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
    source: str,
    data_dir: Path | None,
    mapping: Path | None,
    data: Path | None,
    orders: int,
    seed: int,
    speed: str,
    progress: bool,
) -> None:
    """Publish a dataset's events to Kafka in event-time order, keyed by order id.

    SOURCE ``csv`` replays your own CSV through a YAML mapping (``--mapping``, ``--data``).
    """
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.replay import load_source
    from scpro_assets.replay import replay as run_replay

    settings = Settings.from_env()
    rate = None if speed == "max" else float(speed)
    if source == "csv":
        from scpro_assets.sources.mapping import MappingError
        from scpro_assets.sources.mapping import load as load_mapped

        if mapping is None:
            raise click.UsageError("scpro replay csv needs --mapping FILE.yaml")
        try:
            events, report = load_mapped(mapping, data)
        except (MappingError, OSError) as error:
            raise click.ClickException(str(error)) from error
        total = len(events)
    else:
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
    if stats.failed_total:  # acknowledged events only count as published: say what was not
        reasons = "\n".join(f"  {n} x {reason}" for reason, n in stats.errors.most_common())
        raise click.ClickException(f"{stats.failed_total} events NOT published:\n{reasons}")


@main.command()
@click.option("--once", is_flag=True, help="One evaluation of each sensor (else until caught up).")
@click.option(
    "--topic", "topics", multiple=True, type=click.Choice(list(TOPICS)), help="Only these topics."
)
def ingest(once: bool, topics: tuple[str, ...]) -> None:
    """Evaluate the Kafka sensors and land the ranges they request, in this process."""
    import dagster as dg

    from scpro_assets.definitions.landing import build_ingest_definitions
    from scpro_assets.instance import prepare_dagster_home
    from scpro_assets.runner import ingest_once, ingest_until_caught_up

    settings = Settings.from_env()
    home = prepare_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    # The landing code location only, as the daemon runs landing: the whole platform's imports
    # (Spark, dbt, the models) cost 3x the start-up for jobs and sensors landing never uses.
    defs = build_ingest_definitions(settings)
    with dg.DagsterInstance.get() as instance:
        run = ingest_once if once else ingest_until_caught_up
        ticks = run(defs, instance, topics or TOPICS)
    failed = 0
    for topic in topics or TOPICS:
        mine = [t for t in ticks if t.topic == topic]
        succeeded = [key for t in mine for key in t.succeeded]
        # One run per topic and tick lands a range per partition; its key names each ("+").
        ranges = sum(key.count("+") + 1 for key in succeeded)
        landed = len(succeeded)
        retried = sum(len(t.retried) for t in mine)
        already = sum(len(t.skipped_existing) for t in mine)
        failed_here = sum(len(t.failed) for t in mine)
        failed += failed_here
        if landed or retried or already or failed_here:
            click.echo(
                f"{topic}: {ranges} ranges landed in {landed} run{'s' * (landed != 1)}, "
                f"{retried} retried, {already} already run, {failed_here} failed"
            )
        else:
            click.echo(f"{topic}: {mine[-1].skip_reason}")
    if failed:
        raise click.ClickException(f"{failed} landing runs failed; see them in the Dagster UI")


@main.command()
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(BENCHMARKS),
    help="Run only these benchmarks.",
)
@click.option("--replay-orders", type=int, default=50_000, show_default=True)
@click.option("--ingest-events", type=int, default=1_000_000, show_default=True)
@click.option("--latency-samples", type=int, default=8, show_default=True)
@click.option("--warehouse-events", type=int, default=1_000_000, show_default=True)
@click.option(
    "--scoring-orders",
    type=int,
    default=100_000,
    show_default=True,
    help="Orders already scored when the scoring benchmark times a cycle of 1,000 changed ones.",
)
@click.option(
    "--latency-seconds",
    type=float,
    default=1200.0,
    show_default=True,
    help="Steady-state streaming time of the event-to-dashboard benchmark (on 2 cores an "
    "order produced after the first publication took longer than 540 s to be published).",
)
@click.option(
    "--chaos-repetitions",
    type=int,
    default=3,
    show_default=True,
    help="Rounds of the chaos benchmark (every fault once per round, on its own broker).",
)
@click.option(
    "--incremental-sizes",
    default="100000,1000000,5000000",
    show_default=True,
    help="History sizes (events, comma-separated) the incremental benchmark times a cycle on.",
)
@click.option(
    "--latency-history",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Events of history the event-to-dashboard benchmark streams on top of (0: an empty "
    "platform, as before issue #17).",
)
def bench(
    only: tuple[str, ...],
    replay_orders: int,
    ingest_events: int,
    latency_samples: int,
    warehouse_events: int,
    scoring_orders: int,
    latency_seconds: float,
    chaos_repetitions: int,
    incremental_sizes: str,
    latency_history: int,
) -> None:
    """Run the benchmarks; write bench-report.md and bench-report.json."""
    from scpro_assets.bench.run import run_all
    from scpro_assets.kafka.broker import EmbeddedKafka

    settings = Settings.from_env()
    broker = EmbeddedKafka(settings)
    needs_kafka = not only or set(only) & {"replay", "ingest", "incremental", "latency"}
    started_here = needs_kafka and not broker.status().running and _is_embedded(settings)
    if started_here:
        broker.start()
    try:
        report = run_all(
            settings,
            only or BENCHMARKS,
            replay_orders,
            ingest_events,
            latency_samples,
            warehouse_events=warehouse_events,
            scoring_orders=scoring_orders,
            latency_seconds=latency_seconds,
            chaos_repetitions=chaos_repetitions,
            incremental_sizes=tuple(int(n) for n in incremental_sizes.split(",") if n.strip()),
            latency_history=latency_history,
        )
    finally:
        if started_here:
            broker.stop()
    click.echo("\n" + report.markdown())


def _is_embedded(settings: Settings) -> bool:
    host = settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")[0]
    return host in ("localhost", "127.0.0.1", "")


@main.command()
@click.option("--port", default=5006, show_default=True, envvar="SCPRO_PANEL_PORT")
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--show/--no-show", default=False, help="Open a browser tab.")
def dashboard(port: int, address: str, show: bool) -> None:
    """Serve the Panel decision cockpit on the published serving snapshot."""
    from panel_app.server import app_path, serve

    click.echo(f"SCPro dashboard: http://{address}:{port}{app_path()}")
    serve(Settings.from_env(), port=port, show=show, address=address)


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],  # `scpro dbt --help` is dbt's help
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dbt(args: tuple[str, ...]) -> None:
    """Run dbt on SCPro's project, profile and lake: `scpro dbt build -s fct_deliveries+`.

    Commands that read the lake (build, run, test, compile, show...) pin every source table to
    one file first, as the Dagster asset does; artifacts go to dbt_project/target/scpro-dbt.
    """
    from scpro_assets.warehouse.build import dbt_invocation
    from scpro_assets.warehouse.project import DBT_PROJECT_DIR

    try:
        invocation = dbt_invocation(Settings.from_env(), list(args))
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    process = subprocess.run(
        invocation.command, cwd=DBT_PROJECT_DIR, env=invocation.env, check=False
    )
    sys.exit(process.returncode)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Where dbt serves the docs site.")
@click.option("--serve/--no-serve", default=True, help="Serve the site after generating it.")
def docs(port: int, serve: bool) -> None:
    """Serve dbt's docs site for the published warehouse: lineage, models, columns, rows."""
    from scpro_assets.warehouse.build import DOCS_TARGET, dbt_invocation, generate_docs
    from scpro_assets.warehouse.project import DBT_PROJECT_DIR

    settings = Settings.from_env()
    try:
        site = generate_docs(settings)
    except (FileNotFoundError, RuntimeError) as error:
        raise click.ClickException(
            f"{error}\nThe docs describe the published warehouse: run the pipeline first "
            "(make demo, or materialize serving_snapshot in Dagster)."
        ) from error
    click.echo(f"dbt docs for the published warehouse: {site}/index.html")
    if not serve:
        return
    args = ["docs", "serve", "--port", str(port), "--no-browser"]
    invocation = dbt_invocation(settings, args, target_path=DOCS_TARGET)
    click.echo(f"serving them at http://127.0.0.1:{port} (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(invocation.command, cwd=DBT_PROJECT_DIR, env=invocation.env, check=False)


#: Seconds the demo gives its children to stop on SIGTERM before it kills their process groups.
STOP_GRACE_S = 10.0

#: The demo's pace in business hours per second. Every snapshot has open orders at any pace (it
#: is cut at its watermark), but once the replay ends and all is landed, every DataCo order is
#: closed: at 24 (a day a second) the sample lasted 19 minutes, less than a first cycle took on a
#: busy box; at 6 it streams for 75 minutes, and the first training still has a few hundred
#: delivered orders.
DEMO_SPEED = 6.0

#: Seconds between the demo's status lines.
STATUS_EVERY_S = 10.0


def _stop_process_groups(children: list[tuple[str, subprocess.Popen]], grace_s: float) -> None:
    """SIGTERM every child's process group (its runs and JVMs too) at once, then SIGKILL them.

    One grace period for all, not one each: stopping them one after another took the demo past
    20 seconds. Groups are SIGKILLed after it even when their leader exited, for leftovers.
    """
    for _, process in children:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for name, process in children:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{name} did not stop in {grace_s:.0f} s: killing it")
        with contextlib.suppress(ProcessLookupError):  # leftovers of an exited leader too
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    """SIGTERM to the demo stops it like Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


class _DemoSparkServer:
    """The demo's Spark Connect server, started beside Dagster and stopped with it.

    It starts in a thread, so Dagster and the dashboard come up meanwhile; runs that start
    before it answers use in-process Spark (:func:`scpro_assets.spark_server.session_remote`).
    A server that already ran, or a configured ``SCPRO_SPARK_REMOTE``, is left alone.
    """

    def __init__(self, settings: Settings) -> None:
        import threading

        from scpro_assets.spark_server import EmbeddedSparkConnect

        self.remote = settings.spark_connect.remote
        self.server = EmbeddedSparkConnect(settings)
        self.was_running = self.server.status().running
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="spark-connect", daemon=True)

    def _run(self) -> None:
        from scpro_assets.spark_server import SparkServerError

        try:
            self.server.start()
        except SparkServerError as error:
            if not self.stopping:
                click.echo(f"Spark Connect did not start, runs use in-process Spark: {error}")

    def start(self) -> None:
        """Start the embedded server in the background, unless it runs or a remote is set."""
        if not self.remote and not self.was_running:
            self.thread.start()

    def describe(self) -> str:
        """Where the demo's Spark sessions run."""
        if self.remote:
            return f"{self.remote} (SCPRO_SPARK_REMOTE)"
        return f"Spark Connect at {self.server.status().remote} (embedded)"

    def stop(self) -> None:
        """Stop the server the demo started, even half-way through its start."""
        if self.remote or self.was_running:
            return
        self.stopping = True
        stopped = self.server.stop()
        if self.thread.is_alive():  # its start loop sees the server gone and ends
            self.thread.join(timeout=10)
            stopped = self.server.stop() or stopped  # in case it was launched just now
        if stopped:
            click.echo("stopped: Spark Connect")


@main.command()
@click.option(
    "--dataset",
    envvar="DATASET",
    default="dataco",
    show_default=True,
    type=click.Choice(["dataco", "olist", "synthetic"]),
)
@click.option(
    "--speed",
    default=DEMO_SPEED,
    show_default=True,
    envvar="SCPRO_DEMO_SPEED",
    help="Business hours replayed per second (6: a business day every four seconds).",
)
@click.option("--port", default=3000, show_default=True, envvar="SCPRO_DAGSTER_PORT")
@click.option("--dashboard-port", default=5006, show_default=True, envvar="SCPRO_PANEL_PORT")
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop everything by itself after this many seconds (a scripted run); exit code 0.",
)
def demo(
    dataset: str, speed: float, port: int, dashboard_port: int, duration: float | None
) -> None:
    """Start Kafka, Dagster and the dashboard, and stream a dataset; Ctrl-C stops everything.

    With Dagster running, the Kafka sensors land the stream and declarative automation carries
    it through Spark, the models, dbt and the serving snapshot to the dashboard by itself. The
    terminal shows the addresses, then a status line every few seconds; Dagster's and the
    dashboard's own output goes to SCPRO_HOME/logs/. Ctrl-C or SIGTERM stops everything.
    """
    import threading

    from scpro_assets.demo_status import DemoStatus
    from scpro_assets.instance import prepare_dagster_home
    from scpro_assets.kafka.broker import BrokerError, EmbeddedKafka
    from scpro_assets.kafka.clients import ensure_topics
    from scpro_assets.replay import load_source
    from scpro_assets.replay import replay as run_replay
    from scpro_assets.settings import REPO_ROOT

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    settings = Settings.from_env()
    try:
        events, report, _total = load_source(dataset, orders=10_000_000)
    except FileNotFoundError as error:
        raise click.ClickException(
            f"{dataset} data not found ({error.filename}): it is read from ../shared/data "
            "(or SCPRO_SHARED_DATA); "
            "run `make demo DATASET=synthetic` to stream generated events instead"
        ) from error
    if report is not None:
        click.echo(report.summary())
    broker = EmbeddedKafka(settings)
    # A broker that was already running (say, `scpro kafka start` earlier) is left running.
    broker_was_running = broker.status().running
    children: list[tuple[str, subprocess.Popen]] = []
    stop = threading.Event()
    spark_server = _DemoSparkServer(settings)
    published = [0]
    logs = settings.home / "logs"
    streamer = None
    try:
        try:
            click.echo(broker.start().describe())
        except BrokerError as error:
            raise click.ClickException(str(error)) from error
        ensure_topics(settings.kafka)
        home = prepare_dagster_home(settings)
        spark_server.start()

        def count(_event: object) -> None:
            published[0] += 1

        def stream() -> None:
            stats = run_replay(
                events, settings.kafka, speed=speed, on_acknowledged=count, stop=stop
            )
            if not stop.is_set():
                click.echo(f"replay finished: {stats.total:,} events published")
            if stats.failed_total:
                click.echo(
                    f"{stats.failed_total:,} events NOT published: {'; '.join(stats.errors)}"
                )

        env = {**os.environ, "DAGSTER_HOME": str(home), "SCPRO_HOME": str(settings.home)}
        commands = {
            # `dg dev` (dagster-dg-cli) supersedes `dagster dev`; workspace.yaml names the locations
            "Dagster": [
                *(str(Path(sys.executable).with_name("dg")), "dev", "-w", "workspace.yaml"),
                *("-h", "127.0.0.1", "-p", str(port)),
            ],
            "dashboard": [
                *(sys.executable, "-m", "scpro_assets.cli", "dashboard"),
                *("--port", str(dashboard_port)),
            ],
        }
        logs.mkdir(parents=True, exist_ok=True)
        for name, command in commands.items():
            with (logs / f"{name.lower()}.log").open("ab") as log:
                process = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            children.append((name, process))
        streamer = threading.Thread(target=stream, name="replay", daemon=True)
        streamer.start()
        from panel_app.server import app_path

        click.echo(
            f"\nSCPro is running:\n  Dagster UI   http://127.0.0.1:{port}\n"
            f"  Dashboard    http://127.0.0.1:{dashboard_port}{app_path()}\n"
            f"  Kafka        {broker.bootstrap}\n  Spark        {spark_server.describe()}\n"
            f"  streaming    {dataset} at {speed:g} business hours/s\n"
            f"  logs         {logs}/dagster.log, {logs}/dashboard.log\n"
            "The first snapshot comes after the first Spark, model and dbt cycle (a few minutes "
            'on 2 cores); each is cut at its event-time watermark ("data as of").\n'
            + (
                f"Stopping by itself after {duration:g} s.\n"
                if duration
                else "Press Ctrl-C to stop everything.\n"
            )
        )
        status = DemoStatus(settings, started)
        next_line = time.monotonic()
        while all(process.poll() is None for _, process in children):
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                click.echo(f"{duration:g} s are up")
                break
            for milestone in status.refresh(now):
                click.echo(milestone)
            if now >= next_line:
                click.echo(status.line(now, published[0]))
                next_line = now + STATUS_EVERY_S
            time.sleep(1)
        for name, process in children:
            if process.poll() is not None:
                click.echo(f"{name} exited with code {process.returncode} (see {logs})")
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        # A second Ctrl-C (or SIGTERM) must not cut the shutdown short and leave things running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stopping = time.monotonic()
        stop.set()
        spark_stopper = threading.Thread(target=spark_server.stop, name="spark-stop")
        spark_stopper.start()  # beside the children: the two take the same seconds
        _stop_process_groups(children, STOP_GRACE_S)
        if streamer is not None:
            streamer.join(timeout=5)
        spark_stopper.join(timeout=STOP_GRACE_S + 5)
        if broker_was_running:
            click.echo("stopped: the dashboard, Dagster and the replay (Kafka was already running)")
        else:
            broker.stop(timeout=STOP_GRACE_S)
            click.echo("stopped: the dashboard, Dagster, the replay and Kafka")
        click.echo(f"stopped in {time.monotonic() - stopping:.1f} s")


if __name__ == "__main__":
    main()
