"""Batch scoring: every performing client at one month, with the champion models.

Writes ``OUTDIR/credit.parquet`` (client_id, as_of, pd_12m, grade, reasons). The output is
written to a temporary file and renamed into place, so a failed run leaves no partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from rmreco.config import Settings
from rmreco.domain.errors import RmrecoError
from rmreco.features import build_features, default_status
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.pyfunc import load_credit_model
from rmreco.training.registry import CHAMPION
from rmreco.training.tracking import configure_mlflow

CREDIT_FILE = "credit.parquet"


class ScoringError(RmrecoError):
    """Batch scoring cannot run (no champion, a month outside the data...)."""


@dataclass(frozen=True)
class ScoringSummary:
    as_of: date
    files: dict[str, int]  # file -> rows
    model_versions: dict[str, str]


def score_batch(
    data: Path,
    *,
    as_of: date,
    out: Path,
    settings: Settings,
    credit_model: str = "rmreco-sme-credit-risk",
    tracking_uri: str | None = None,
) -> ScoringSummary:
    """Score every performing client of ``data`` at month ``as_of`` with the champion.

    Raises:
        DataContractError: the data folder breaks the contract.
        ScoringError: no champion is registered, or ``as_of`` is outside the data.
    """
    inputs, _ = read_feature_inputs(data)
    months = pd.to_datetime(inputs.account_months["month"])
    if not (months.min() <= pd.Timestamp(as_of) <= months.max()):
        raise ScoringError(
            f"as-of month {as_of:%Y-%m} is outside the data ({months.min():%Y-%m}.."
            f"{months.max():%Y-%m})"
        )
    configure_mlflow(settings, tracking_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        version = str(client.get_model_version_by_alias(credit_model, CHAMPION).version)
        model = load_credit_model(f"models:/{credit_model}/{version}")
    except MlflowException as exc:
        raise ScoringError(f"no champion of {credit_model!r} could be loaded: {exc}") from None

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
    return ScoringSummary(
        as_of=as_of, files={CREDIT_FILE: len(credit)}, model_versions={credit_model: version}
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
