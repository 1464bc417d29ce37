"""This module owns refreshing the service's feature snapshots with the settings of the models
that will read them: the builder settings (financials lag, cure months) of the champions of the
models folder's specs, read from the registry, so that the snapshots are computed the way those
models were trained. The builder's defaults apply while no champion is registered."""

from __future__ import annotations

from rmreco.config import Settings
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.features.config import shared_snapshot_params
from rmreco.features.snapshots import StepProgress, refresh_client_features
from rmreco.modeling.spec import find_specs
from rmreco.training.run import champion_configs


def refresh_snapshots(
    database_url: str,
    settings: Settings,
    tracking_uri: str | None = None,
    on_step: StepProgress | None = None,
) -> int:
    """Recompute every client's feature snapshot in the database at ``database_url`` from its
    stored history, with the champions' builder settings, in one transaction; returns the number
    of clients written. ``on_step`` is told each step as it starts.

    Raises:
        ConfigurationError: the champions were trained with different builder settings.
        RegistryError: a champion could not be loaded.
    """
    if on_step is not None:
        on_step("reading the champions' feature settings from the registry")
    names = [found.spec.name for found in find_specs(settings.resolved_models_dir)]
    configs = champion_configs(names, settings=settings, tracking_uri=tracking_uri)
    params = shared_snapshot_params(configs)
    engine = create_engine_for(database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return refresh_client_features(session, params, on_step)
    finally:
        engine.dispose()
