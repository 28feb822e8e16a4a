"""The ``churn`` command line."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# Plain click help: typer's rich help labels every flag with a type (`--json <bool>`), as if it
# took a value.
app = typer.Typer(
    help="Customer churn early-warning platform.", no_args_is_help=True, rich_markup_mode=None
)
# URLs and paths are printed whole: a narrow terminal (or a pipe, 80 columns) must not split one.
console = Console(soft_wrap=True)


DEV_MODE_HELP = (
    "Development mode (the default) relaxes checks meant for the open internet: the alerts "
    "service accepts webhook URLs on loopback and private networks, and the auth service does "
    "not warn about signing keys stored unencrypted. --no-dev-mode applies the production "
    "checks. A CHURN_<SERVICE>_DEV_MODE variable in the environment (e.g. "
    "CHURN_ALERTS_DEV_MODE=false) wins over this option for that component."
)


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Create a demo tenant and stream simulated events.")
    ] = False,
    port: Annotated[int, typer.Option(help="Gateway port (a free one if taken).")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Where SQLite files and logs go.", envvar="CHURN_DATA_DIR")
    ] = Path(".churn"),
    fresh: Annotated[bool, typer.Option(help="Start from empty databases.")] = False,
    customers: Annotated[int, typer.Option(help="Simulated customers in the demo.")] = 200,
    rate: Annotated[float, typer.Option(help="Demo events per second.")] = 20.0,
    kafka: Annotated[
        str | None, typer.Option(help="Use this Kafka instead of embedded Tansu.")
    ] = None,
    mysql: Annotated[
        str | None, typer.Option(help="MySQL URL template with {service}, instead of SQLite.")
    ] = None,
    cache: Annotated[str, typer.Option(help="memory:// or redis://host:port/db")] = "memory://",
    dev_mode: Annotated[bool, typer.Option("--dev-mode/--no-dev-mode", help=DEV_MODE_HELP)] = True,
) -> None:
    """Start every service, the gateway and (embedded mode) a Kafka-compatible broker."""
    from churn_cli.launcher import Stack, StackConfig

    data_dir = data_dir.resolve()
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    # SIGTERM (a process manager, `kill`) takes the same path as Ctrl-C. Raising from the
    # handler, rather than setting ``stop`` in it, matters: the handler runs in the main thread,
    # which may be inside ``stop.wait`` holding the event's lock, and would deadlock there.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = Stack(
        StackConfig(
            data_dir=data_dir,
            gateway_port=port,
            gateway_port_fallback=True,
            kafka_bootstrap=kafka,
            mysql_url_template=mysql,
            cache_url=cache,
            dev_mode=dev_mode,
        )
    )
    try:
        with console.status("starting broker, services and gateway…"):
            stack.start()
        if port and stack.ports["gateway"] != port:
            console.print(f"[yellow]port {port} is taken; using a free one[/yellow]")
        console.print(f"[bold green]churn platform is up[/bold green]: gateway {stack.gateway_url}")
        console.print(f"  console:   {stack.gateway_url}/console/")
        console.print(f"  API docs:  {stack.gateway_url}/docs")
        console.print(f"  live feed: {stack.gateway_url}/socket.io/")
        console.print(f"  logs:      {stack.log_dir}")
        console.print(f"  broker:    {stack.kafka_bootstrap}")
        if demo:
            from churn_cli.demo import run_demo

            thread = threading.Thread(
                target=run_demo,
                args=(stack.gateway_url,),
                kwargs={
                    "customers": customers,
                    "events_per_second": rate,
                    "stop": stop,
                    "on_status": lambda m: console.print(f"  [cyan]demo[/cyan] {m}"),
                },
                daemon=True,
            )
            thread.start()
        console.print("Press Ctrl-C to stop.")
        while not stop.is_set():
            dead = [name for name, ok in stack.alive().items() if not ok]
            if dead:
                console.print(
                    f"[red]stopped unexpectedly: {', '.join(dead)}; see {stack.log_dir}[/red]"
                )
                break
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        # A terminal's Ctrl-C reaches us more than once (directly, and forwarded by `uv run`
        # and make), and a process manager may repeat its SIGTERM: a second KeyboardInterrupt
        # must not cut the shutdown short and orphan the broker, which runs in a session of
        # its own.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        with console.status("stopping…"):
            stack.stop()
        console.print("stopped.")


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where the merged document is written.")] = Path(
        "openapi/openapi.json"
    ),
    check: Annotated[
        bool, typer.Option(help="Fail if the committed document is out of date.")
    ] = False,
) -> None:
    """Write (or check) the gateway's merged OpenAPI document."""
    from churn_cli.spec import build_openapi, render

    _write_or_check(output, render(build_openapi()), check=check, command="churn openapi")


def _write_or_check(output: Path, text: str, *, check: bool, command: str) -> None:
    """Write a generated document, or (``check``) fail if the committed one differs."""
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            console.print(f"[red]{output} is out of date: run `{command}`[/red]")
            raise typer.Exit(1)
        console.print(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    console.print(f"wrote {output}")


def _check_training_file(file: Path, label: str, id_column: str | None) -> None:
    """Fail fast, with the reason, on a missing file or a column the file does not have."""
    import csv
    import gzip

    if not file.is_file():
        console.print(f"[red]cannot train: no such file: {file}[/red]")
        raise typer.Exit(2)
    if file.suffix.lower() in (".xlsx", ".xlsm"):
        return  # the header is checked when the sheet is read
    opener = gzip.open if file.suffix.lower() == ".gz" else open
    try:
        with opener(file, "rt", encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        console.print(f"[red]cannot train: {file} is not a readable CSV file ({exc})[/red]")
        raise typer.Exit(2) from exc
    for role, column in (("label", label), ("id", id_column)):
        if column is not None and column not in header:
            console.print(
                f"[red]cannot train: {file} has no {role} column {column!r}; "
                f"its columns are {', '.join(header)}[/red]"
            )
            raise typer.Exit(2)


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option(help="Where the CSV is written.")] = Path("customers.csv"),
    rows: Annotated[int, typer.Option(min=50, max=1_000_000, help="How many customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 7,
) -> None:
    """Write a generated, labelled customer file (label ``churned``, id ``customer_id``)."""
    from churn_cli.sample_data import write_sample

    churned = write_sample(out, rows=rows, seed=seed)
    console.print(f"wrote {out}: {rows} customers, {churned} churned ({churned / rows:.1%})")


@app.command()
def asyncapi(
    output: Annotated[Path, typer.Option(help="Where the document is written.")] = Path(
        "asyncapi/asyncapi.json"
    ),
    check: Annotated[
        bool, typer.Option(help="Fail if the committed document is out of date.")
    ] = False,
) -> None:
    """Write (or check) the AsyncAPI 3 document of the Kafka topics and the live feed."""
    from churn_cli.asyncapi import build_asyncapi
    from churn_cli.spec import render

    _write_or_check(output, render(build_asyncapi()), check=check, command="churn asyncapi")


@app.command()
def train(
    file: Annotated[Path, typer.Option("--file", help="Labelled CSV, one row per customer.")],
    label: Annotated[str, typer.Option(help="The label column (Yes/No, 1/0, true/false).")],
    id_column: Annotated[str | None, typer.Option("--id", help="Customer id column.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits and models.")] = 42,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.", is_flag=True)
    ] = False,
) -> None:
    """Train and cross-validate on a labelled file with the prediction service's pipeline.

    To serve a model trained on your customers, import the file into the platform
    (POST /v1/customers/import) and train there (POST /v1/models/train, then promote the
    version); this command only evaluates locally.
    """
    import json

    _check_training_file(file, label, id_column)  # before the seconds-long ML imports

    from churn_cli.train import train_file

    def progress(pct: float, stage: str) -> None:
        if not as_json:
            console.print(f"  {pct:5.1f}%  {stage}")

    try:
        report = train_file(file, label, id_column, seed=seed, progress=progress)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]cannot train: {exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report))
        return
    console.print(
        f"[bold]{report['model']}[/bold]: ROC-AUC {report['roc_auc']:.3f}, "
        f"PR-AUC {report['pr_auc']:.3f}, Brier {report['brier']:.4f} "
        f"({report['n_rows']} rows, {report['positive_rate']:.1%} positive; cross-validated)"
    )


auth_app = typer.Typer(help="Operator tasks of the auth service.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command("rotate-keys")
def auth_rotate_keys() -> None:
    """Add a new signing key to the auth database (CHURN_AUTH_DATABASE_URL), retiring the old.

    Tokens signed with the old key stay valid until they expire; replicas switch within 30 s.
    """
    import asyncio

    from churn_auth.admin import rotate_keys

    rotated = asyncio.run(rotate_keys())
    console.print(
        f"new signing key {rotated.kid}; retired {', '.join(rotated.previous_kids) or '-'}"
    )


if __name__ == "__main__":
    app()
