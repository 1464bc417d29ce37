"""Batch scoring: every performing client at one month, with the champion models.

Writes ``OUTDIR/credit.parquet`` (client_id, as_of, pd_12m, grade, reasons, model_version) and
``OUTDIR/cross_sell.parquet`` (client_id, as_of, product_code, propensity, expected_value, rank,
then grade, reasons, model_version): each client's eligible products it does not hold, ranked by
expected value (rank 1 the highest), financing only where the credit grade allows it. Without a
cross-sell champion the credit file is still written and the summary says cross-sell was
skipped. Each output is written to a temporary file and renamed into place, so a failed run
leaves no partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from rmreco.config import Settings
from rmreco.domain.errors import RmrecoError
from rmreco.features import FeatureInputs, build_features, default_status
from rmreco.features.cross_sell import PRODUCT, build_cross_sell_panel
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.propensity import PropensityModel, rank_offers
from rmreco.modeling.pyfunc import load_credit_model, load_propensity_model
from rmreco.training.registry import CHAMPION
from rmreco.training.tracking import configure_mlflow

CREDIT_FILE = "credit.parquet"
CROSS_SELL_FILE = "cross_sell.parquet"
DEFAULT_CROSS_SELL_MODEL = "rmreco-cross-sell"


class ScoringError(RmrecoError):
    """Batch scoring cannot run (no champion, a month outside the data...)."""


@dataclass(frozen=True)
class ScoringSummary:
    as_of: date
    files: dict[str, int]  # file -> rows
    model_versions: dict[str, str]
    #: outputs not written, with the reason
    skipped: dict[str, str] = field(default_factory=dict)


def load_credit_champion(client: MlflowClient, name: str) -> tuple[CreditRiskModel, str] | None:
    """The champion credit model and its version, or None when there is no champion."""
    from mlflow.exceptions import MlflowException

    try:
        version = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None
    return load_credit_model(f"models:/{name}/{version}"), version


def _load_propensity_champion(
    client: MlflowClient, name: str
) -> tuple[PropensityModel, str] | None:
    from mlflow.exceptions import MlflowException

    try:
        version = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None
    return load_propensity_model(f"models:/{name}/{version}"), version


def credit_grades(model: CreditRiskModel, frame: pd.DataFrame) -> np.ndarray:
    """The credit grade of each row's client and month (rows of a features frame or the
    cross-sell panel); None for segments the credit model does not cover."""
    segments = set(model.metadata.get("segments", []))
    keys = ["client_id", "month"]
    covered = frame["segment"].astype(str).isin(segments).to_numpy()
    out = np.full(len(frame), None, dtype=object)
    if not covered.any():
        return out
    clients = frame.loc[covered].drop_duplicates(keys)
    graded = clients[keys].assign(_grade=model.predict(clients, with_reasons=False).grade)
    joined = frame.loc[covered, keys].merge(graded, on=keys, how="left")
    out[covered] = joined["_grade"].to_numpy(dtype=object)
    return out


def score_batch(
    data: Path,
    *,
    as_of: date,
    out: Path,
    settings: Settings,
    credit_model: str = "rmreco-sme-credit-risk",
    cross_sell_model: str = DEFAULT_CROSS_SELL_MODEL,
    tracking_uri: str | None = None,
) -> ScoringSummary:
    """Score every performing client of ``data`` at month ``as_of`` with the champions.

    Raises:
        DataContractError: the data folder breaks the contract.
        ScoringError: no credit champion is registered, or ``as_of`` is outside the data.
    """
    inputs, _ = read_feature_inputs(data)
    months = pd.to_datetime(inputs.account_months["month"])
    if not (months.min() <= pd.Timestamp(as_of) <= months.max()):
        raise ScoringError(
            f"as-of month {as_of:%Y-%m} is outside the data ({months.min():%Y-%m}.."
            f"{months.max():%Y-%m})"
        )
    configure_mlflow(settings, tracking_uri)
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        loaded = load_credit_champion(client, credit_model)
    except MlflowException as exc:
        raise ScoringError(f"no champion of {credit_model!r} could be loaded: {exc}") from None
    if loaded is None:
        raise ScoringError(f"no champion of {credit_model!r} could be loaded")
    model, version = loaded

    features = build_features(inputs, months=[as_of])
    status = default_status(inputs)
    features = features[features["observed"]].merge(status, on=["client_id", "month"], how="left")
    segments = set(model.metadata.get("segments", []))
    performing = features[
        ~features["in_default"].fillna(False).astype(bool)
        & features["segment"].astype(str).isin(segments)
    ]
    result = model.predict(performing)
    credit = pd.DataFrame(
        {
            "client_id": performing["client_id"].to_numpy(),
            "as_of": pd.Series([as_of] * len(performing), dtype="object"),
            "pd_12m": result.pd_12m,
            "grade": result.grade.astype(str),
            "reasons": [json.dumps([r.to_dict() for r in row]) for row in result.reasons],
            "model_version": version,
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(credit, out / CREDIT_FILE)
    files = {CREDIT_FILE: len(credit)}
    versions = {credit_model: version}
    skipped: dict[str, str] = {}

    try:
        propensity = _load_propensity_champion(client, cross_sell_model)
    except (MlflowException, ValueError) as exc:
        propensity = None
        reason = f"the champion of {cross_sell_model!r} could not be loaded: {exc}"
    else:
        reason = f"no champion of {cross_sell_model!r} is registered"
    if propensity is None:
        skipped[CROSS_SELL_FILE] = f"cross-sell skipped: {reason}"
    else:
        xs_model, xs_version = propensity
        grades = dict(zip(credit["client_id"], credit["grade"], strict=True))
        offers = cross_sell_offers(inputs, xs_model, as_of, grades, model)
        offers["model_version"] = xs_version
        _write_atomically(offers, out / CROSS_SELL_FILE)
        files[CROSS_SELL_FILE] = len(offers)
        versions[cross_sell_model] = xs_version
    return ScoringSummary(as_of=as_of, files=files, model_versions=versions, skipped=skipped)


def cross_sell_offers(
    inputs: FeatureInputs,
    model: PropensityModel,
    as_of: date,
    grades: dict[str, str],
    credit: CreditRiskModel,
) -> pd.DataFrame:
    """The ranked offers of every performing client at ``as_of`` (see the module docstring);
    ``grades`` maps client ids to the credit grade at ``as_of`` (ungraded clients absent)."""
    meta = model.metadata
    panel = build_cross_sell_panel(
        inputs,
        months=[as_of],
        horizon_months=int(meta.get("horizon_months", 3)),
        cure_months=int(meta.get("cure_months", 3)),
        financials_lag_months=int(meta.get("financials_lag_months", 6)),
    )
    segments = set(meta.get("segments", []))
    panel = panel[panel["segment"].astype(str).isin(segments)].reset_index(drop=True)
    mapped = panel["client_id"].map(grades).astype(object)
    row_grades = mapped.where(mapped.notna(), None).to_numpy(dtype=object)
    ranked = rank_offers(
        model,
        panel,
        grades=row_grades,
        scale=credit.scale,
        with_reasons=True,
        group=("client_id",),
    )
    grade_of = pd.Series(row_grades, index=panel.index)
    return pd.DataFrame(
        {
            "client_id": ranked["client_id"].to_numpy(),
            "as_of": pd.Series([as_of] * len(ranked), dtype="object"),
            PRODUCT: ranked[PRODUCT].to_numpy(),
            "propensity": ranked["propensity"].to_numpy(),
            "expected_value": ranked["expected_value"].to_numpy(),
            "rank": ranked["rank"].to_numpy(dtype=np.int64),
            "grade": grade_of.loc[ranked["row"]].to_numpy(dtype=object),
            "reasons": ranked["reasons"].to_numpy(),
        }
    )


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
