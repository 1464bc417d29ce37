"""This module owns the service commands of the CLI: ``serve`` (the scoring service under
uvicorn) and ``demo`` (the demo workflow of :mod:`rmreco.demo`, its summary, then the service).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rmreco.cli.main import TrackingOption, current_settings, out_console, spinner, translate_errors

if TYPE_CHECKING:
    from rmreco.demo import DemoSummary

app = typer.Typer()

DEMO_HOST = "127.0.0.1"


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
    """Start the scoring service (uvicorn)."""
    from rmreco.serving.server import serve as run_service

    settings = current_settings()
    settings.ensure_home()
    run_service(
        settings,
        host=host,
        port=port,
        workers=workers,
        tracking_uri=tracking_uri,
        policy_path=policy,
        **({"poll_seconds": poll_seconds} if poll_seconds is not None else {}),
    )


@app.command("demo")
@translate_errors
def demo(
    clients: Annotated[
        int | None,
        typer.Option("--clients", min=1, help="Clients of the demo bank (default 3,750)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port of the service.")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")
    ] = True,
) -> None:
    """The main job on the embedded default: a synthetic bank, loaded, models trained and
    registered, demo users with fresh keys, and the service."""
    from rmreco.demo import DEMO_CLIENTS, prepare_demo

    settings = current_settings()
    with spinner() as progress:
        task = progress.add_task("starting", total=None)
        summary = prepare_demo(
            settings,
            clients=clients or DEMO_CLIENTS,
            base_url=f"http://{DEMO_HOST}:{port}",
            on_step=lambda message: progress.update(task, description=message),
        )
    _print_demo(summary)
    if serve_after:
        from rmreco.serving.server import serve as run_service

        out_console.print(f"serving on {summary.base_url} (Ctrl-C to stop)")
        run_service(settings, host=DEMO_HOST, port=port)


def _print_demo(summary: DemoSummary) -> None:
    out_console.print(
        f"loaded {summary.bank} into {summary.database_url} (ingest run {summary.ingest_run})"
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
    typer.echo(
        f"""
rmreco demo
  API docs:      {summary.docs_url}
  readiness:     {summary.readiness_url}
  demo keys (new on every run; the old ones stop working):
    demo-admin  (admin)             {admin.key}
    demo-brm    (brm, RM {brm.rm_id})  {brm.key}
    demo-crm    (crm, RM {crm.rm_id})  {crm.key}
    demo-prm    (prm, RM {prm.rm_id})  {prm.key}
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
  readiness with model versions: curl -s -H 'Authorization: Bearer {admin.key}' \
      {summary.readiness_url}
  MLflow UI:     mlflow ui --backend-store-uri {summary.tracking_uri}
"""
    )
