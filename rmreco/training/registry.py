"""The Model Registry: gates, promotion, rollback and listing, by aliases (stages are deprecated).

``champion`` is the version in production; ``challenger`` the latest version that was evaluated
and not promoted. Every move of ``champion`` is appended to the registered model's tag
``champion_history`` so that a rollback returns to the version that served before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rmreco.domain.errors import RmrecoError
from rmreco.domain.names import CHALLENGER, CHAMPION

__all__ = ["CHALLENGER", "CHAMPION"]  # re-exported: the registry's callers name aliases here
HISTORY_TAG = "champion_history"


class RegistryError(RmrecoError):
    """A registry operation was refused (unknown model or version, nothing to roll back to)."""


@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger may become champion, and why (``metric`` names the measure)."""

    passed: bool
    reason: str
    challenger_value: float
    champion_value: float | None = None
    champion_version: str | None = None
    metric: str = "oot_auc"


def _label(metric: str) -> str:
    return {"oot_auc": "AUC", "oot_map_at_5": "MAP@5"}.get(metric, metric)


def decide_gate(
    challenger_value: float,
    *,
    metric: str = "oot_auc",
    min_value: float,
    max_drop: float,
    champion_value: float | None,
    champion_version: str | None,
    champion_error: str | None = None,
    vetoes: Sequence[str] = (),
) -> GateDecision:
    """Apply the gates to a metric where higher is better (out-of-time AUC, MAP@5...): an
    absolute floor, and no worse than the champion beyond a tolerance.

    ``champion_value`` is the champion's value on the same test rows (None when there is no
    champion). ``champion_error`` says why an existing champion could not be evaluated; the
    challenger is then refused, since it cannot be compared. ``vetoes`` are checks the model
    failed whatever its metric (a monotone constraint it breaks): any refuses it, in their
    words.
    """
    name = _label(metric)
    value = challenger_value
    if vetoes:
        return GateDecision(
            False,
            "refused: " + "; ".join(vetoes),
            value,
            champion_value,
            champion_version,
            metric,
        )
    if value < min_value:
        return GateDecision(
            False,
            f"refused: {name} {value:.4f} is below the floor {min_value:.4f}",
            value,
            champion_value,
            champion_version,
            metric,
        )
    if champion_error is not None:
        return GateDecision(
            False,
            f"refused: champion v{champion_version} could not be scored "
            f"on the test window ({champion_error}); promote by hand if intended",
            value,
            None,
            champion_version,
            metric,
        )
    if champion_value is None:
        return GateDecision(
            True,
            f"promoted: {name} {value:.4f} clears the floor "
            f"{min_value:.4f} and there is no champion yet",
            value,
            metric=metric,
        )
    drop = champion_value - value
    if drop > max_drop:
        return GateDecision(
            False,
            f"refused: {name} {value:.4f} is {drop:.4f} below "
            f"champion v{champion_version} ({champion_value:.4f}) on the same test "
            f"window; tolerance {max_drop:.4f}",
            value,
            champion_value,
            champion_version,
            metric,
        )
    return GateDecision(
        True,
        f"promoted: {name} {value:.4f} against champion "
        f"v{champion_version} {champion_value:.4f} on the same test window "
        f"(tolerance {max_drop:.4f})",
        value,
        champion_value,
        champion_version,
        metric,
    )


#: scores whose standard deviation on the test window is below this are constant
CONSTANT_SCORE_STD = 1e-9


def constant_score_veto(scores: np.ndarray, what: str) -> str | None:
    """The veto of a model whose test-window scores are constant (one distinct value, or a
    standard deviation below :data:`CONSTANT_SCORE_STD`), in words naming ``what``; None when
    the scores vary."""
    finite = np.asarray(scores, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return f"{what} gives no score on the test window"
    distinct = len(np.unique(finite))
    if distinct < 2 or float(np.std(finite)) < CONSTANT_SCORE_STD:
        return (
            f"{what} gives every row of the test window the same score ({distinct} distinct "
            f"value{'s' if distinct != 1 else ''}, std {float(np.std(finite)):.2g}): it ranks "
            "nothing"
        )
    return None


def no_split_veto(has_split: bool, what: str, min_data_in_leaf: int, fit_rows: int) -> str | None:
    """The veto of a LightGBM model without a single split (every tree one leaf), naming the
    likely cause: leaves that need more rows than the fit set can give. None when it splits."""
    if has_split:
        return None
    return (
        f"{what} has no split (every tree is a single leaf): min_data_in_leaf "
        f"{min_data_in_leaf:,} on {fit_rows:,} fit rows; state it as a share of the fit rows "
        "(model.lightgbm.min_data_in_leaf_share) or lower it"
    )


def lift_veto(
    model_value: float, popularity_value: float, min_lift: float, metric: str
) -> str | None:
    """The veto of a ranking model that does not beat popularity on ``metric`` by more than
    ``min_lift``; None when it does."""
    lift = model_value - popularity_value
    if lift > min_lift:
        return None
    return (
        f"{_label(metric)} {model_value:.4f} does not beat popularity's {popularity_value:.4f} "
        f"by more than {min_lift:.4f} (lift {lift:+.4f}): the model ranks no better than the "
        "adoption rates"
    )


def ranking_groups_veto(groups: float, k: int) -> str | None:
    """The veto of a ranking measured on no client-snapshot with two or more candidate
    products (with one candidate, any model ranks it first); None when there are some."""
    if groups > 0:
        return None
    return (
        "no client-snapshot of the test window has two or more candidate products and an "
        f"adoption: MAP@{k} measures no ranking (a catalog where clients have one candidate "
        "cannot be judged)"
    )


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version the ``champion`` alias points at, or None."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def promote(client: MlflowClient, name: str, version: str, *, reason: str) -> None:
    """Point ``champion`` at ``version`` and record the move.

    Raises:
        RegistryError: the model or the version does not exist.
    """
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version}") from None
    history = _history(client, name)
    if history and history[-1] == str(version):
        return
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, str(version)]))
    client.set_model_version_tag(
        name, str(version), "promoted_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    client.set_model_version_tag(name, str(version), "promotion_reason", reason)
    try:
        if str(client.get_model_version_by_alias(name, CHALLENGER).version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException:
        pass


def mark_challenger(client: MlflowClient, name: str, version: str, *, reason: str) -> None:
    """Point ``challenger`` at a version that was evaluated and not promoted."""
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    client.set_model_version_tag(name, str(version), "gate", reason)


def rollback(client: MlflowClient, name: str) -> str:
    """Return ``champion`` to the version that held it before; returns that version.

    Raises:
        RegistryError: the model does not exist or has no earlier champion.
    """
    try:
        history = _history(client, name)
    except MlflowException:
        raise RegistryError(f"no registered model named {name!r}") from None
    if len(history) < 2:
        raise RegistryError(f"model {name!r} has no earlier champion to roll back to")
    current, previous = history[-1], history[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    client.set_model_version_tag(
        name, current, "rolled_back_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )
    return previous


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: str
    aliases: tuple[str, ...]
    created: str
    run_id: str | None
    metrics: dict[str, float]
    gate: str


def list_versions(
    client: MlflowClient,
    names: list[str] | None = None,
    metric_names: tuple[str, ...] = ("oot_auc",),
) -> list[VersionRow]:
    """Every version of the given (default: all) registered models, newest first."""
    models = names or [m.name for m in client.search_registered_models()]
    rows: list[VersionRow] = []
    for name in models:
        # search results leave aliases empty on some stores; the registered model has them all
        by_version: dict[str, list[str]] = {}
        for alias, aliased in (client.get_registered_model(name).aliases or {}).items():
            by_version.setdefault(str(aliased), []).append(alias)
        for mv in client.search_model_versions(f"name = '{name}'"):
            metrics: dict[str, float] = {}
            if mv.run_id:
                try:
                    run_metrics = client.get_run(mv.run_id).data.metrics
                    metrics = {k: run_metrics[k] for k in metric_names if k in run_metrics}
                except MlflowException:
                    metrics = {}
            rows.append(
                VersionRow(
                    name=name,
                    version=str(mv.version),
                    aliases=tuple(
                        sorted(
                            set(getattr(mv, "aliases", []) or [])
                            | set(by_version.get(str(mv.version), []))
                        )
                    ),
                    created=time.strftime(
                        "%Y-%m-%d %H:%M", time.gmtime(mv.creation_timestamp / 1000)
                    ),
                    run_id=mv.run_id,
                    metrics=metrics,
                    gate=(mv.tags or {}).get("gate", (mv.tags or {}).get("promotion_reason", "")),
                )
            )
    rows.sort(key=lambda r: (r.name, -int(r.version)))
    return rows
