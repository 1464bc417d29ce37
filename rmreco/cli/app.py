"""Commands of the ``rmreco`` CLI and the one place where errors become exit codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rmreco.config import Settings, get_settings
from rmreco.domain.errors import (
    ConfigurationError,
    DatabaseError,
    DataContractError,
    RmrecoError,
)

#: Exit codes scripts can rely on. 2 is click's own code for a usage error.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT_REFUSED = 3
EXIT_CONFIGURATION = 4
EXIT_DATABASE = 5

app = typer.Typer(
    name="rmreco",
    help="Credit and cross-sell recommendations for banks' relationship managers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The relational database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
train_app = typer.Typer(help="Train models; every run is tracked in MLflow.", no_args_is_help=True)
app.add_typer(train_app, name="train")
users_app = typer.Typer(help="Users of the service and their API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
features_app = typer.Typer(help="Feature snapshots the service reads.", no_args_is_help=True)
app.add_typer(features_app, name="features")
models_app = typer.Typer(help="The Model Registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")

DEFAULT_CREDIT_SPEC = Path("models/sme_credit_risk.yaml")
CREDIT_MODEL_NAME = "rmreco-sme-credit-risk"
DEFAULT_CROSS_SELL_SPEC = Path("models/cross_sell.yaml")
CROSS_SELL_MODEL_NAME = "rmreco-cross-sell"
TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: RMRECO_TRACKING_URI or the embedded SQLite store).",
    ),
]

P = ParamSpec("P")

err_console = Console(stderr=True)
out_console = Console()


def _settings() -> Settings:
    return get_settings()


def _parse_month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise typer.BadParameter(f"expected a month as YYYY-MM, got {value!r}") from None


def translate_errors(command: Callable[P, None]) -> Callable[P, None]:
    """The one place where rmreco's errors become a message on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except RmrecoError as exc:
            label, code = next(
                (exit_ for cls, exit_ in _ERROR_EXITS.items() if isinstance(exc, cls)),
                ("error", EXIT_FAILED),
            )
            err_console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code) from None

    return wrapper


_ERROR_EXITS: dict[type[RmrecoError], tuple[str, int]] = {
    DataContractError: ("error", EXIT_INPUT_REFUSED),
    ConfigurationError: ("configuration error", EXIT_CONFIGURATION),
    DatabaseError: ("database error", EXIT_DATABASE),
}


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Credit and cross-sell recommendations for banks' relationship managers."""
    logging.basicConfig(
        # the commands print what they did; library logs are for --verbose
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
@translate_errors
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the tables into (new or empty).")
    ],
    clients: Annotated[int, typer.Option("--clients", min=1, help="Number of clients.")] = 2000,
    months: Annotated[int, typer.Option("--months", min=13, help="Months of history.")] = 36,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 7,
    start: Annotated[
        str, typer.Option("--start", help="First month of the history, YYYY-MM.")
    ] = "2022-01",
) -> None:
    """Generate a synthetic bank: the contract's tables plus the ground truth under truth/."""
    start_month = _parse_month(start)
    from rmreco.data.synthetic import generate_bank

    with _progress() as progress:
        task = progress.add_task("generating clients", total=clients)
        try:
            summary = generate_bank(
                out,
                n_clients=clients,
                n_months=months,
                seed=seed,
                start_month=start_month,
                on_progress=lambda k: progress.advance(task, k),
            )
        except ValueError as exc:  # arguments the generator refuses, e.g. a non-empty --out
            raise typer.BadParameter(str(exc)) from None
    for table, rows in summary.rows.items():
        out_console.print(f"{table:>24}: {rows:>12,} rows")
    out_console.print(f"wrote {summary.out_dir} in {summary.seconds:.1f} s")


@app.command()
@translate_errors
def ingest(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of Parquet or CSV files named after the contract's tables.",
            exists=True,
            file_okay=False,
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Validate a folder of input tables against the data contract and load it, all or nothing."""
    from rmreco.data.ingest import ingest_folder
    from rmreco.db.engine import create_engine_for

    settings = _settings()
    url = db or settings.resolved_database_url
    if db is None:
        settings.ensure_home()
    engine = create_engine_for(url)
    try:
        summary = ingest_folder(folder, engine, settings=settings)
        for table, rows in summary.rows.items():
            out_console.print(f"{table:>24}: {rows:>12,} rows")
        out_console.print(f"loaded {folder} into the database (ingest run {summary.run_id})")
        refreshed = _refresh_features(engine)
    finally:
        engine.dispose()
    out_console.print(f"feature snapshots refreshed for {refreshed:,} clients")


@db_app.command("upgrade")
@translate_errors
def db_upgrade(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Create or migrate the database schema to the latest revision."""
    from rmreco.db.migrate import current, upgrade

    settings = _settings()
    if db is None:
        settings.ensure_home()
    url = db or settings.resolved_database_url
    upgrade(url)
    out_console.print(f"database at revision {current(url)}")


@db_app.command("current")
@translate_errors
def db_current(
    db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
) -> None:
    """Print the database's schema revision (empty when never migrated)."""
    from rmreco.db.migrate import current

    out_console.print(current(db or _settings().resolved_database_url) or "(not migrated)")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


CREDIT_REPORT = (
    "oot_auc",
    "oot_gini",
    "oot_ks",
    "oot_brier",
    "oot_logloss",
    "baseline_oot_auc",
    "oracle_oot_auc",
    "oot_mean_pd",
    "oot_default_rate",
)
CROSS_SELL_REPORT = (
    "oot_map_at_5",
    "oot_ndcg_at_5",
    "oot_precision_at_1",
    "popularity_oot_map_at_5",
    "logistic_oot_map_at_5",
    "oracle_oot_map_at_5",
    "oot_adoption_rate",
    "oot_mean_propensity",
)


def _run_training(
    job: Callable[..., Any],
    data: Path,
    spec: Path,
    *,
    title: str,
    settings: Settings | None = None,
    **options: Any,
) -> Any:
    """Run a training job (``rmreco.training``) under a spinner that shows its steps."""
    with _spinner() as progress:
        task = progress.add_task(title, total=None)
        return job(
            data,
            spec_path=spec,
            settings=settings or _settings(),
            on_step=lambda message: progress.update(task, description=message),
            **options,
        )


def _report_training(result: Any, keys: tuple[str, ...]) -> None:
    """What a training run did: its version, the metrics in ``keys``, the comparison, the gate."""
    out_console.print(
        f"run {result.run_id}: {result.model_name} v{result.version} ({result.registered_kind})"
    )
    width = max(len(k) for k in keys)
    for key in keys:
        if key in result.metrics:
            out_console.print(f"{key:>{width}}: {result.metrics[key]:.4f}")
    out_console.print(result.comparison)
    out_console.print(("[green]" if result.gate.passed else "[yellow]") + result.gate.reason)


@train_app.command("credit-risk")
@translate_errors
def train_credit_risk(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder of the contract's tables.", exists=True, file_okay=False
        ),
    ],
    spec: Annotated[
        Path, typer.Option("--spec", help="Model specification (YAML).")
    ] = DEFAULT_CREDIT_SPEC,
    tracking_uri: TrackingOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment name.")
    ] = "rmreco-credit-risk",
) -> None:
    """Train the SME credit-risk (12-month PD) model, register it, and gate its promotion."""
    from rmreco.training.credit_risk import train_credit_risk as job

    result = _run_training(
        job, data, spec, title="starting", tracking_uri=tracking_uri, experiment=experiment
    )
    _report_training(result, CREDIT_REPORT)


@train_app.command("cross-sell")
@translate_errors
def train_cross_sell(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder of the contract's tables.", exists=True, file_okay=False
        ),
    ],
    spec: Annotated[
        Path, typer.Option("--spec", help="Model specification (YAML).")
    ] = DEFAULT_CROSS_SELL_SPEC,
    tracking_uri: TrackingOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment name.")
    ] = "rmreco-cross-sell",
) -> None:
    """Train the cross-sell propensity models, register the better one, and gate its promotion."""
    from rmreco.training.cross_sell import train_cross_sell as job

    result = _run_training(
        job, data, spec, title="starting", tracking_uri=tracking_uri, experiment=experiment
    )
    _report_training(result, CROSS_SELL_REPORT)


@app.command("evaluate-cross-sell")
@translate_errors
def evaluate_cross_sell(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder of the contract's tables.", exists=True, file_okay=False
        ),
    ],
    spec: Annotated[
        Path, typer.Option("--spec", help="Model specification (YAML).")
    ] = DEFAULT_CROSS_SELL_SPEC,
    version: Annotated[
        str | None, typer.Option("--version", help="Registered version (default: the champion).")
    ] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Rank another bank's or a later period's test window as score-batch does, and measure
    MAP@5 against the adoptions that followed."""
    from rmreco.training.cross_sell import evaluate_cross_sell as run

    result = run(
        data,
        spec_path=spec,
        settings=_settings(),
        tracking_uri=tracking_uri,
        version=version,
        credit_model=CREDIT_MODEL_NAME,
    )
    credit = f", credit grades from v{result.credit_version}" if result.credit_version else ""
    out_console.print(
        f"v{result.model_version} on {result.test_period} ({result.rows:,} offers{credit})"
    )
    for key, value in result.metrics.items():
        out_console.print(f"{key:>24}: {value:.4f}")
    k = next(
        (n.removeprefix("oot_map_at_") for n in result.metrics if n.startswith("oot_map_at_")), "5"
    )
    compared = [
        (label, name)
        for label, name in (
            ("propensity order", f"oot_map_at_{k}"),
            ("value order (the list's rank)", f"value_oot_map_at_{k}"),
        )
        if name in result.reference and name in result.metrics
    ]
    if compared:
        out_console.print(f"MAP@{k} here against the version's own out-of-time test:")
    for label, name in compared:
        here, there = result.metrics[name], result.reference[name]
        out_console.print(
            f"{label:>30}: {here:.4f} vs {there:.4f} ({here / there:.1%})"
            if there > 0
            else f"{label:>30}: {here:.4f} vs {there:.4f}"
        )


@app.command("evaluate")
@translate_errors
def evaluate(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder of the contract's tables.", exists=True, file_okay=False
        ),
    ],
    spec: Annotated[
        Path, typer.Option("--spec", help="Model specification (YAML).")
    ] = DEFAULT_CREDIT_SPEC,
    version: Annotated[
        str | None, typer.Option("--version", help="Registered version (default: the champion).")
    ] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Backtest a registered credit-risk version on another bank's or a later period's data."""
    from rmreco.training.credit_risk import evaluate_credit_model

    result = evaluate_credit_model(
        data, spec_path=spec, settings=_settings(), tracking_uri=tracking_uri, version=version
    )
    out_console.print(
        f"v{result.model_version} on {result.test_period} ({result.rows:,} snapshots)"
    )
    for key, value in result.metrics.items():
        out_console.print(f"{key:>20}: {value:.4f}")


@models_app.command("list")
@translate_errors
def models_list(
    name: Annotated[str | None, typer.Argument(help="Registered model (default: all).")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """List registered model versions with their aliases, test metric and gate decision."""
    from mlflow import MlflowClient

    from rmreco.training.registry import list_versions
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(_settings(), tracking_uri)
    # each model's gated test metric: AUC for credit risk, MAP@5 for cross-sell
    shown = {"oot_auc": "auc", "oot_map_at_5": "map@5"}
    rows = list_versions(MlflowClient(), [name] if name else None, metric_names=tuple(shown))
    if not rows:
        typer.echo("no registered models")
    # one line per version, whatever the terminal's width: people read it and scripts grep it
    for r in rows:
        metric = " ".join(
            f"{label} {r.metrics[key]:.4f}" for key, label in shown.items() if key in r.metrics
        )
        aliases = f"[{','.join(r.aliases)}]" if r.aliases else "[]"
        typer.echo(f"{r.name}  v{r.version}  {aliases}  {r.created}  {metric or '-'}  {r.gate}")


@models_app.command("promote")
@translate_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Make VERSION the champion of NAME by hand (the gates are the training run's)."""
    from mlflow import MlflowClient

    from rmreco.training.registry import promote
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(_settings(), tracking_uri)
    promote(MlflowClient(), name, version, reason="promoted by hand (rmreco models promote)")
    out_console.print(f"{name}: champion is now v{version}")


@models_app.command("rollback")
@translate_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Return the champion alias of NAME to the version that held it before."""
    from mlflow import MlflowClient

    from rmreco.training.registry import rollback
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(_settings(), tracking_uri)
    previous = rollback(MlflowClient(), name)
    out_console.print(f"{name}: champion rolled back to v{previous}")


@app.command("score-batch")
@translate_errors
def score_batch(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder of the contract's tables.", exists=True, file_okay=False
        ),
    ],
    as_of: Annotated[str, typer.Option("--as-of", help="Month to score, YYYY-MM.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the scores into.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Score every performing client at a month with the champion models: PD and grade
    (credit.parquet) and, when a cross-sell champion exists, ranked offers (cross_sell.parquet)."""
    month = _parse_month(as_of)
    from rmreco.training.scoring import score_batch as run

    summary = run(
        data,
        as_of=month,
        out=out,
        settings=_settings(),
        tracking_uri=tracking_uri,
        credit_model=CREDIT_MODEL_NAME,
        cross_sell_model=CROSS_SELL_MODEL_NAME,
    )
    for file, rows in summary.files.items():
        out_console.print(f"{out / file}: {rows:,} rows")
    for model, version in summary.model_versions.items():
        out_console.print(f"{model}: v{version}")
    for message in summary.skipped.values():
        out_console.print(f"[yellow]{message}")


def _refresh_features(engine: object) -> int:
    from rmreco.db.engine import session_factory, transaction
    from rmreco.features.snapshots import refresh_client_features

    with transaction(session_factory(engine)) as session:  # type: ignore[arg-type]
        return refresh_client_features(session)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
    ),
]


def _engine(db: str | None) -> Any:
    from rmreco.db.engine import create_engine_for

    settings = _settings()
    if db is None:
        settings.ensure_home()
    return create_engine_for(db or settings.resolved_database_url)


@features_app.command("refresh")
@translate_errors
def features_refresh(db: DbOption = None) -> None:
    """Recompute every client's latest features from the stored history (after a load)."""
    engine = _engine(db)
    try:
        out_console.print(f"feature snapshots refreshed for {_refresh_features(engine):,} clients")
    finally:
        engine.dispose()


@users_app.command("create")
@translate_errors
def users_create(
    name: Annotated[str, typer.Option("--name", help="Unique user name.")],
    role: Annotated[str, typer.Option("--role", help="brm, crm, data_scientist or admin.")],
    rm_id: Annotated[
        str | None, typer.Option("--rm-id", help="The RM this user is (brm and crm).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a user and print their API key once (only its hash is stored)."""
    from rmreco.db import repository as repo
    from rmreco.db.engine import session_factory, transaction
    from rmreco.serving.security import RM_ROLES, ROLES, issue_key

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    if role in RM_ROLES and not rm_id:
        raise typer.BadParameter(f"a {role} user needs --rm-id", param_hint="--rm-id")
    engine = _engine(db)
    try:
        with transaction(session_factory(engine)) as session:
            if repo.user_by_name(session, name) is not None:
                raise typer.BadParameter(f"a user named {name!r} exists", param_hint="--name")
            if rm_id is not None and not repo.rm_exists(session, rm_id):
                raise typer.BadParameter(
                    f"no relationship manager {rm_id!r} is loaded", param_hint="--rm-id"
                )
            key = issue_key()
            repo.add_user(
                session, name=name, role=role, rm_id=rm_id, key_prefix=key.prefix, key_hash=key.hash
            )
    finally:
        engine.dispose()
    out_console.print(f"user {name} ({role}) created; API key (shown once):")
    print(key.key)


@users_app.command("revoke")
@translate_errors
def users_revoke(
    name: Annotated[str, typer.Option("--name", help="The user to revoke.")],
    db: DbOption = None,
) -> None:
    """Revoke a user's API key at once."""
    from datetime import UTC, datetime

    from rmreco.db import repository as repo
    from rmreco.db.engine import session_factory, transaction

    engine = _engine(db)
    try:
        with transaction(session_factory(engine)) as session:
            if not repo.revoke_user(session, name, datetime.now(UTC)):
                raise typer.BadParameter(f"no active user named {name!r}", param_hint="--name")
    finally:
        engine.dispose()
    out_console.print(f"user {name} revoked")


@app.command("serve")
@translate_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    tracking_uri: TrackingOption = None,
    policy: Annotated[Path, typer.Option("--policy", help="Credit policy file.")] = Path(
        "models/credit_policy.yaml"
    ),
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", help="How often to follow the champion aliases.")
    ] = 30.0,
) -> None:
    """Start the scoring service (uvicorn)."""
    import uvicorn

    from rmreco.serving.app import create_app

    settings = _settings()
    settings.ensure_home()
    application = create_app(
        settings, tracking_uri=tracking_uri, policy_path=policy, poll_seconds=poll_seconds
    )
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command("demo")
@translate_errors
def demo(
    clients: Annotated[int, typer.Option("--clients", help="Clients of the demo bank.")] = 2000,
    port: Annotated[int, typer.Option("--port", help="Port of the service.")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")
    ] = True,
) -> None:
    """The main job on the embedded default: a synthetic bank, loaded, models trained and
    registered, demo users with fresh keys, and the service."""
    from mlflow import MlflowClient
    from sqlalchemy import select

    from rmreco.data.ingest import ingest_folder
    from rmreco.data.synthetic import generate_bank
    from rmreco.db import repository as repo
    from rmreco.db import schema
    from rmreco.db.engine import session_factory, transaction
    from rmreco.db.migrate import upgrade
    from rmreco.serving.security import issue_key
    from rmreco.training.credit_risk import train_credit_risk as train_credit
    from rmreco.training.registry import champion_version
    from rmreco.training.tracking import configure_mlflow

    settings = _settings()
    home = settings.ensure_home()
    bank = home / "demo-bank"
    if not (bank / "clients.parquet").exists():
        out_console.print(f"generating a synthetic bank of {clients:,} clients in {bank}")
        generate_bank(bank, n_clients=clients, n_months=36, seed=7)
    url = settings.resolved_database_url
    upgrade(url)
    engine = _engine(None)
    try:
        summary = ingest_folder(bank, engine, settings=settings)
        out_console.print(f"loaded the bank into {url} (ingest run {summary.run_id})")
        out_console.print(f"feature snapshots of {_refresh_features(engine):,} clients")
        configure_mlflow(settings)
        from rmreco.training.cross_sell import train_cross_sell as train_offers

        for name, job, spec, metric in (
            (CREDIT_MODEL_NAME, train_credit, DEFAULT_CREDIT_SPEC, "oot_auc"),
            (CROSS_SELL_MODEL_NAME, train_offers, DEFAULT_CROSS_SELL_SPEC, "oot_map_at_5"),
        ):
            if champion_version(MlflowClient(), name) is not None:
                out_console.print(f"{name}: champion already registered")
                continue
            result = _run_training(job, bank, spec, title=f"training {name}", settings=settings)
            out_console.print(
                f"{name} v{result.version}: {metric} "
                f"{result.metrics[metric]:.4f}; {result.gate.reason}"
            )
        factory = session_factory(engine)
        with transaction(factory) as session:
            rows = session.execute(
                select(
                    schema.Client.rm_id, schema.Client.segment, schema.Client.client_id
                ).order_by(schema.Client.client_id)
            ).all()
            by_rm: dict[str, list[str]] = {}
            segment_rm: dict[str, str] = {}
            for rm_id, segment, client_id in rows:
                if rm_id is not None:
                    by_rm.setdefault(rm_id, []).append(client_id)
                    segment_rm.setdefault(segment, rm_id)
            keys = {}
            for name, role, rm_id in (
                ("demo-admin", "admin", None),
                ("demo-brm", "brm", segment_rm.get("sme")),
                ("demo-crm", "crm", segment_rm.get("corporate")),
            ):
                key = issue_key()
                if repo.user_by_name(session, name) is None:
                    repo.add_user(
                        session,
                        name=name,
                        role=role,
                        rm_id=rm_id,
                        key_prefix=key.prefix,
                        key_hash=key.hash,
                    )
                else:
                    repo.set_user_key(session, name, key_prefix=key.prefix, key_hash=key.hash)
                keys[name] = (key.key, rm_id)
    finally:
        engine.dispose()
    base = f"http://127.0.0.1:{port}"
    brm_key, brm_rm = keys["demo-brm"]
    sample = by_rm.get(brm_rm or "", ["C0000001"])[0]
    typer.echo(
        f"""
rmreco demo
  API docs:      {base}/docs
  readiness:     {base}/readyz
  demo keys (new on every run; the old ones stop working):
    demo-admin  (admin)             {keys["demo-admin"][0]}
    demo-brm    (brm, RM {brm_rm})  {brm_key}
    demo-crm    (crm, RM {keys["demo-crm"][1]})  {keys["demo-crm"][0]}
  try:
    curl -s -X POST -H 'Authorization: Bearer {brm_key}' -H 'Content-Type: application/json' \\
      -d '{{"amount": 150000, "tenor_months": 36}}' {base}/v1/clients/{sample}/financing-options
    curl -s -H 'Authorization: Bearer {brm_key}' {base}/v1/rms/{brm_rm}/kpis
    curl -s -H 'Authorization: Bearer {keys["demo-crm"][0]}' \\
      '{base}/v1/rms/{keys["demo-crm"][1]}/cross-sell?limit=10'
  MLflow UI:     mlflow ui --backend-store-uri {settings.resolved_tracking_uri}
"""
    )
    if serve_after:
        import uvicorn

        from rmreco.serving.app import create_app

        application = create_app(settings, poll_seconds=30.0)
        out_console.print(f"serving on {base} (Ctrl-C to stop)")
        uvicorn.run(application, host="127.0.0.1", port=port, log_level="warning")


def _spinner() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def main() -> None:
    """Console-script entry point."""
    app()
