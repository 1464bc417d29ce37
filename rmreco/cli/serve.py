"""This module owns the service commands of the CLI: ``serve`` (the scoring service under
uvicorn) and ``demo`` (the demo workflow of :mod:`rmreco.demo`, its summary, then the service).

Both refuse early rather than fail late: ``serve`` refuses a database that is not at this
version's schema before it starts (the check ``rmreco ingest`` makes,
:func:`rmreco.db.migrate.require_head`), and ``demo`` refuses a port it cannot listen on before
any of its minutes of work, and before it hands out keys.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rmreco.cli.main import (
    EXIT_FAILED,
    TrackingOption,
    current_settings,
    err_console,
    open_engine,
    out_console,
    quiet_mlflow,
    show_service_logs,
    steps,
    translate_errors,
    work_progress,
)

if TYPE_CHECKING:
    from rmreco.demo import DemoSummary

app = typer.Typer()

#: Where the demo serves, and the port of the MLflow UI whose command it prints (not 5000,
#: which macOS's AirPlay receiver holds). The Makefile's DEMO_PORT and DEMO_MLFLOW_PORT pass
#: other ports as options.
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8000
DEMO_MLFLOW_PORT = 5050


@app.command("serve")
@translate_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    tracking_uri: TrackingOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Credit policy file (default: credit_policy.yaml of the models folder).",
        ),
    ] = None,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            "--poll-seconds",
            help="How often to follow the champion aliases (default: every 30 seconds).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes sharing the port and the database (limits are per worker).",
        ),
    ] = 1,
) -> None:
    """Start the scoring service (uvicorn). A database not at this version's schema (never
    migrated, or migrated by an older rmreco) is refused with the command that migrates it."""
    from rmreco.serving.server import serve as run_service

    settings = current_settings()
    settings.ensure_home()
    require_current_schema()
    show_service_logs()
    run_service(
        settings,
        host=host,
        port=port,
        workers=workers,
        tracking_uri=tracking_uri,
        policy_path=policy,
        **({"poll_seconds": poll_seconds} if poll_seconds is not None else {}),
    )


def require_current_schema() -> None:
    """Refuse the settings' database unless it is at this version's schema: the one check
    ingest makes (:func:`rmreco.db.migrate.require_head`), whose message names the command
    to run.

    Raises:
        SchemaNotCurrentError: the database was never migrated, or is at another revision.
        DatabaseError: the database cannot be reached.
    """
    from sqlalchemy.exc import DBAPIError

    from rmreco.db.migrate import require_head
    from rmreco.domain.errors import DatabaseError

    engine = open_engine(None)
    try:
        with engine.connect() as connection:
            require_head(connection)
    except DBAPIError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot reach the database {shown}: {exc.orig}") from None
    finally:
        engine.dispose()


def port_problem(host: str, port: int) -> str | None:
    """Why nothing can listen on ``host:port``, or None when the service could. Bound as
    uvicorn binds (``SO_REUSEADDR``), so a port a stopped service left in TIME_WAIT is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


@app.command("demo")
@translate_errors
def demo(
    clients: Annotated[
        int | None,
        typer.Option("--clients", min=1, help="Clients of the demo bank (default 3,750)."),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port of the service (make: DEMO_PORT).")
    ] = DEMO_PORT,
    mlflow_port: Annotated[
        int,
        typer.Option(
            "--mlflow-port",
            min=1,
            max=65535,
            help="Port in the MLflow UI command the demo prints (make: DEMO_MLFLOW_PORT).",
        ),
    ] = DEMO_MLFLOW_PORT,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")
    ] = True,
) -> None:
    """The main job on the embedded default: a synthetic bank, loaded, models trained and
    registered, demo users and their keys, and the service. Run again, it reuses all of it and
    the keys that still work; a port already taken is refused before anything is done."""
    if serve_after and (problem := port_problem(DEMO_HOST, port)) is not None:
        base = f"http://{DEMO_HOST}:{port}"
        other = port + 1 if port < 65535 else port - 1
        err_console.print(
            f"[bold red]error:[/] cannot serve the demo on {base}: port {port} ({problem}). "
            f"Nothing was done. If a demo is serving there already, open {base}/ with the "
            f"keys it printed (they still work). Otherwise pick a free port: "
            f"`DEMO_PORT={other} make demo`, or `rmreco demo --port {other}`.",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED)
    from rmreco.demo import DEMO_CLIENTS, prepare_demo

    settings = current_settings()
    quiet_mlflow()
    with work_progress() as progress, steps(progress, "preparing the demo") as step:
        summary = prepare_demo(
            settings,
            clients=clients or DEMO_CLIENTS,
            base_url=f"http://{DEMO_HOST}:{port}",
            on_step=step,
        )
    _print_demo(summary, mlflow_port=mlflow_port)
    if serve_after:
        from rmreco.serving.server import serve as run_service

        out_console.print(
            f"serving on {summary.base_url} (Ctrl-C to stop): open {summary.workspace_url} "
            "and sign in with a demo key",
            highlight=False,
        )
        show_service_logs()
        run_service(settings, host=DEMO_HOST, port=port)


#: What each demo user is for, in the order the summary lists them (the first is the one to
#: start with).
DEMO_USER_ROLES = (
    ("demo-brm", "an SME (business) RM: financing options for the clients of one portfolio"),
    ("demo-crm", "a corporate RM: the cross-sell list of one portfolio"),
    ("demo-prm", "a personal RM: the cross-sell list of personal clients"),
    ("demo-admin", "an admin: every portfolio, the models, readiness details"),
)


def _print_demo(summary: DemoSummary, *, mlflow_port: int) -> None:
    out_console.print(
        f"loaded {summary.bank} into {summary.database_url} (ingest run {summary.ingest_run})",
        highlight=False,
    )
    out_console.print(f"feature snapshots of {summary.clients_with_features:,} clients")
    for model in summary.models:
        if model.skipped:
            out_console.print(f"[yellow]{model.name}: not trained: {model.skipped}")
        elif not model.was_trained:
            out_console.print(f"{model.name}: champion v{model.version} already registered")
        else:
            value = f"{model.value:.4f}" if model.value is not None else "-"
            out_console.print(
                f"{model.name} v{model.version}: {model.metric} {value}; {model.gate}"
            )
    base, sample = summary.base_url, summary.sample_client
    admin, brm, crm, prm = (
        summary.user(name) for name in ("demo-admin", "demo-brm", "demo-crm", "demo-prm")
    )
    users = []
    for name, what in DEMO_USER_ROLES:
        user = summary.user(name)
        rm = f", RM {user.rm_id}" if user.rm_id else ""
        state = "new" if user.is_new_key else "kept"
        users.append(f"    {name:<11} {user.key}  ({state}; {user.role}{rm}: {what})")
    kept_in = f" (kept in {summary.keys_file})" if summary.keys_file else ""
    mlflow_base = f"http://127.0.0.1:{mlflow_port}"
    experiments = [
        f"    {mlflow_base}/#/experiments/{experiment_id}?workflowType=machine_learning  ({name})"
        for name, experiment_id in summary.experiments.items()
    ] or [f"    {mlflow_base}"]
    user_lines = "\n".join(users)
    experiment_lines = "\n".join(experiments)
    typer.echo(
        f"""
rmreco demo
  open {summary.workspace_url} and sign in with a key below: start with demo-brm (an SME RM:
    its portfolio, a client's history and financing options); the API and its documentation:
    {summary.docs_url} (Authorize with a key; or send it as `Authorization: Bearer <key>`)
  demo users and their keys{kept_in}: a key keeps working on every run of the demo until it is
    revoked (`rmreco users revoke --name NAME`; the next run gives that user a new one)
{user_lines}
  readiness:  {summary.readiness_url}
  try:
    curl -s -X POST -H 'Authorization: Bearer {brm.key}' -H 'Content-Type: application/json' \\
      -d '{{"amount": 150000, "tenor_months": 36, "purpose": "equipment"}}' \\
      {base}/v1/clients/{sample}/financing-options
    curl -s -H 'Authorization: Bearer {brm.key}' {base}/v1/rms/{brm.rm_id}/kpis
    curl -s -H 'Authorization: Bearer {crm.key}' \\
      '{base}/v1/rms/{crm.rm_id}/cross-sell?limit=10'
    curl -s -X POST -H 'Authorization: Bearer {crm.key}' \\
      {base}/v1/clients/{summary.sample_corporate_client}/financing-options
    curl -s -H 'Authorization: Bearer {prm.key}' \\
      '{base}/v1/rms/{prm.rm_id}/cross-sell?limit=10'
  retries: a POST sent with -H 'Idempotency-Key: <a uuid>' is answered once and recorded once,
    however often it is sent again with that key
  readiness with model versions: curl -s -H 'Authorization: Bearer {admin.key}' \\
      {summary.readiness_url}
  MLflow UI, in another terminal (port {mlflow_port}; another: DEMO_MLFLOW_PORT=N make demo):
    source .venv/bin/activate   # in the repository: puts rmreco and mlflow on the PATH
    mlflow ui --backend-store-uri {summary.tracking_uri} --port {mlflow_port}
  then open the training runs:
{experiment_lines}
"""
    )
