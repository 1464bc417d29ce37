"""The credit-risk model as served: encoder, scorer (LightGBM or scorecard), calibrator,
master scale and reason codes, saved as plain files (JSON and LightGBM's text format).

Reasons are computed, never saved: the features that raised each PD most, in the words and
codes of the reason catalogue (:mod:`rmreco.features.reasons`), leaving out the features that
describe the extract rather than the client.

The same object answers training's evaluation, batch scoring and the service, from a pandas
frame (:meth:`CreditRiskModel.predict`) or from a ready float matrix (:meth:`predict_matrix`,
the fast path: no pandas on the way).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from rmreco.features.config import FeatureConfig
from rmreco.features.reasons import Explanation, Target, direction, explain, is_reason
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.scorecard import WoeScorecard

Kind = Literal["lightgbm", "scorecard"]
#: 2: the model carries its feature configuration (``feature_config``)
FORMAT_VERSION = 2
FAMILY = "credit_risk"


#: Smallest log-odds contribution that counts as moving a score.
MIN_CONTRIBUTION = 1e-6


@dataclass(frozen=True)
class Reason:
    """One feature that moved a score: its catalogue code, its value in its unit, the direction
    it moved the score, its share of the log-odds, and the sentence an RM reads."""

    code: str
    feature: str
    value: float | str | None
    unit: str | None
    direction: str
    contribution: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        value = round(self.value, 4) if isinstance(self.value, float) else self.value
        return {
            "code": self.code,
            "feature": self.feature,
            "value": value,
            "unit": self.unit,
            "direction": self.direction,
            "contribution": round(self.contribution, 4),
            "text": self.text,
        }


def make_reason(
    feature: str,
    value: float | str | None,
    contribution: float,
    *,
    target: Target,
    currency: str | None = None,
    products: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> Reason:
    """The reason of one feature's value and contribution, from the reason catalogue (see
    :func:`rmreco.features.reasons.explain` for the arguments)."""
    said = explain(feature, value, currency=currency, products=products, descriptions=descriptions)
    return Reason(
        code=said.code,
        feature=feature,
        value=said.value,
        unit=said.unit,
        direction=direction(contribution, target),
        contribution=contribution,
        text=said.text,
    )


def top_contributions(
    contrib: np.ndarray, eligible: np.ndarray, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``top`` candidate reasons: the columns of the largest contributions among the
    ``eligible`` columns (ties in column order), their contributions (-inf where not
    eligible), and which of them are reasons (those before the first that is not above
    :data:`MIN_CONTRIBUTION`).

    Args:
        contrib: rows x features log-odds contributions (no bias column).
        eligible: per feature, whether it may be a reason.
        top: the most reasons of a row.

    Returns:
        ``(columns, values, kept)``, each of shape rows x min(top, features).
    """
    masked = np.where(eligible, contrib, -np.inf)
    columns = np.argsort(-masked, axis=1, kind="stable")[:, :top]
    values = np.take_along_axis(masked, columns, axis=1)
    # a row's reasons stop at its first candidate that does not raise the score (NaN does)
    kept = np.logical_and.accumulate(~(values <= MIN_CONTRIBUTION), axis=1)
    return columns, values, kept


def build_reasons(
    X: np.ndarray,
    contrib: np.ndarray,
    eligible: np.ndarray,
    top: int,
    *,
    features: Sequence[str],
    value_of: Callable[[str, float], float | str | None],
    target: Target,
    currency: str | None,
    products: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[list[Reason]]:
    """The reasons of every row of an encoded matrix ``X`` from its contributions: the ``top``
    eligible features that raised its score most, strongest first (see
    :func:`top_contributions`), each the :func:`make_reason` of its value (``value_of``: the
    model's reading of an encoded value). Each (feature, value) is explained once per call."""
    columns, values, kept = top_contributions(contrib, eligible, top)
    out: list[list[Reason]] = [[] for _ in range(len(X))]
    rows, ranks = np.nonzero(kept)  # row-major: each row's reasons strongest first
    picked = columns[rows, ranks]
    said: dict[tuple[int, float | str], Explanation] = {}
    for i, j, c, x in zip(
        rows.tolist(),
        picked.tolist(),
        values[rows, ranks].tolist(),
        X[rows, picked].tolist(),
        strict=True,
    ):
        name = features[j]
        # -0.0 and 0.0 may read differently, and NaN equals no key: both keyed by their text
        key = (j, x if x == x and x != 0 else repr(x))
        explanation = said.get(key)
        if explanation is None:
            explanation = explain(
                name,
                value_of(name, x),
                currency=currency,
                products=products,
                descriptions=descriptions,
            )
            said[key] = explanation
        out[i].append(
            Reason(
                code=explanation.code,
                feature=name,
                value=explanation.value,
                unit=explanation.unit,
                direction=direction(c, target),
                contribution=c,
                text=explanation.text,
            )
        )
    return out


def reasons_json(rows: Sequence[Sequence[Reason]]) -> list[str]:
    """Each row's reasons as JSON text: ``json.dumps([r.to_dict() for r in row])``, with each
    distinct reason's text (all but its contribution) encoded once per call."""
    parts: dict[tuple[Any, ...], tuple[str, str]] = {}
    out: list[str] = []
    for row in rows:
        if not row:
            out.append("[]")
            continue
        fragments = []
        for r in row:
            contribution = round(r.contribution, 4)
            if not isinstance(contribution, float) or not math.isfinite(contribution):
                fragments.append(json.dumps(r.to_dict()))
                continue
            # the value by its type and text: 0.0 and -0.0 (or "1" and 1.0) write differently
            value = (type(r.value), repr(r.value))
            key = (r.code, r.feature, value, r.unit, r.direction, r.text)
            known = parts.get(key)
            if known is None:
                whole = r.to_dict()
                del whole["contribution"], whole["text"]
                known = (json.dumps(whole)[:-1], json.dumps({"text": r.text})[1:])
                parts[key] = known
            number = float.__repr__(contribution)  # as json writes a float
            fragments.append(f'{known[0]}, "contribution": {number}, {known[1]}')
        out.append("[" + ", ".join(fragments) + "]")
    return out


def pd_column(horizon_months: int) -> str:
    """The name of a PD column in scored tables: the probability of default within
    ``horizon_months`` months (``pd_12m``, ``pd_1m``), as the model that wrote it was trained."""
    return f"pd_{horizon_months}m"


@dataclass(frozen=True)
class CreditPredictions:
    """Scores of some rows: ``pd`` is the probability of a default event within
    ``horizon_months`` months after the row's month (the model's label horizon)."""

    pd: np.ndarray
    grade: np.ndarray
    reasons: list[list[Reason]]
    horizon_months: int

    @property
    def pd_column(self) -> str:
        """The name of the PD column in scored tables (``pd_12m``)."""
        return pd_column(self.horizon_months)


class CreditRiskModel:
    """A fitted, calibrated, graded PD model with reason codes."""

    def __init__(
        self,
        *,
        kind: Kind,
        config: FeatureConfig,
        encoder: FeatureEncoder,
        calibrator: Calibrator,
        scale: MasterScale,
        booster: lgb.Booster | None = None,
        scorecard: WoeScorecard | None = None,
        top_reasons: int = 3,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if (kind == "lightgbm") != (booster is not None) or (kind == "scorecard") != (
            scorecard is not None
        ):
            raise ValueError("a lightgbm model needs a booster, a scorecard model a scorecard")
        if config.family != FAMILY or tuple(config.features) != tuple(encoder.features):
            raise ValueError("the feature configuration does not describe this model's input")
        self.kind = kind
        self.config = config
        self.encoder = encoder
        self.calibrator = calibrator
        self.scale = scale
        self.booster = booster
        self.scorecard = scorecard
        self.top_reasons = top_reasons
        self.metadata = dict(metadata or {})
        #: LightGBM prediction threads: one is fastest for the service's single rows and keeps
        #: batch scoring from fighting other processes for the cores.
        self.threads = 1

    @property
    def features(self) -> tuple[str, ...]:
        return self.encoder.features

    @property
    def horizon_months(self) -> int:
        """The months after a snapshot its PD covers (the label horizon it was trained on)."""
        return self.config.horizon_months

    @property
    def input_columns(self) -> list[str]:
        """Columns :meth:`predict` reads."""
        return list(self.features)

    # --- scoring ---------------------------------------------------------------------------

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of default."""
        if self.booster is not None:
            return np.asarray(
                self.booster.predict(X, raw_score=True, num_threads=self.threads), dtype=float
            )
        assert self.scorecard is not None
        return self.scorecard.raw_score(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions (TreeSHAP for LightGBM), bias last."""
        if self.booster is not None:
            return np.asarray(
                self.booster.predict(X, pred_contrib=True, num_threads=self.threads), dtype=float
            )
        assert self.scorecard is not None
        return self.scorecard.contributions(X)

    def predict_pd(self, X: np.ndarray) -> np.ndarray:
        return self.calibrator.transform(self.raw_score(X))

    def predict_matrix(
        self, X: np.ndarray, *, with_reasons: bool = True, currency: str | None = None
    ) -> CreditPredictions:
        """PD, grade and reasons from an encoded matrix (see :attr:`encoder`); ``currency``
        (ISO 4217) is named after the amounts in the reasons' texts."""
        if with_reasons:
            # One pass of the trees: TreeSHAP contributions and the bias add up to the raw score
            # exactly (as the scorecard's terms and intercept do), so the PD needs no second one.
            contrib = self.contributions(X)
            probability = self.calibrator.transform(contrib.sum(axis=1))
            reasons = self._reasons(X, contrib[:, :-1], self.top_reasons, currency)
        else:
            probability = self.predict_pd(X)
            reasons = [[] for _ in range(len(X))]
        return CreditPredictions(
            pd=probability,
            grade=self.scale.grade(probability),
            reasons=reasons,
            horizon_months=self.horizon_months,
        )

    def predict(
        self, frame: pd.DataFrame, *, with_reasons: bool = True, currency: str | None = None
    ) -> CreditPredictions:
        """PD, grade and reasons of every row of a features frame (batch scoring, training)."""
        return self.predict_matrix(
            self.encoder.transform(frame), with_reasons=with_reasons, currency=currency
        )

    def predict_records(
        self,
        records: Sequence[dict[str, Any]],
        *,
        with_reasons: bool = True,
        currency: str | None = None,
    ) -> CreditPredictions:
        """PD, grade and reasons of feature dicts (the service's stored snapshots); the same
        matrix as :meth:`predict` would build (see ``FeatureEncoder.transform_records``)."""
        return self.predict_matrix(
            self.encoder.transform_records(records), with_reasons=with_reasons, currency=currency
        )

    def reasons(
        self, X: np.ndarray, top: int | None = None, *, currency: str | None = None
    ) -> list[list[Reason]]:
        """The features that raised each PD most, strongest first, in words an RM reads."""
        top = self.top_reasons if top is None else top
        return self._reasons(X, self.contributions(X)[:, :-1], top, currency)

    @cached_property
    def _is_reason(self) -> np.ndarray:
        """Per input column: may the feature be a reason (see :func:`is_reason`)."""
        return np.array([is_reason(name) for name in self.encoder.features], dtype=bool)

    def _reasons(
        self, X: np.ndarray, contrib: np.ndarray, top: int, currency: str | None
    ) -> list[list[Reason]]:
        """The ``top`` features of each row with the largest positive contributions, leaving
        out the features that describe the extract rather than the client."""
        return build_reasons(
            X,
            contrib,
            self._is_reason,
            top,
            features=self.encoder.features,
            value_of=self._value,
            target="pd",
            # the model's currency when the caller names none (a model may record its data's)
            currency=currency or recorded_currency(self.metadata),
        )

    def _value(self, name: str, code: float) -> float | str | None:
        if name in self.encoder.categories:
            return self.encoder.level(name, code)
        return None if math.isnan(code) else code

    # --- persistence -----------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Write the model as ``model.json`` (and ``booster.txt``) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "family": FAMILY,
            "kind": self.kind,
            "feature_config": self.config.to_dict(),
            "encoder": self.encoder.to_dict(),
            "calibrator": self.calibrator.to_dict(),
            "scale": {
                "grades": list(self.scale.grades),
                "upper_bounds": list(self.scale.upper_bounds),
            },
            "top_reasons": self.top_reasons,
            "metadata": self.metadata,
        }
        if self.booster is not None:
            self.booster.save_model(str(folder / "booster.txt"))
        if self.scorecard is not None:
            data["scorecard"] = self.scorecard.to_dict()
        (folder / "model.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> CreditRiskModel:
        """Read a model written by :meth:`save`.

        Raises:
            ValueError: the folder holds no model of a format this code reads.
        """
        path = folder / "model.json"
        if not path.exists():
            raise ValueError(f"{folder} holds no credit-risk model (model.json missing)")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model format {data.get('format_version')} is not supported (this rmreco reads "
                f"format {FORMAT_VERSION}, which records the feature configuration): retrain it"
            )
        if data.get("family") != FAMILY:
            raise ValueError(f"{folder} holds a {data.get('family')} model, not a credit model")
        booster = None
        if data["kind"] == "lightgbm":
            booster = lgb.Booster(model_file=str(folder / "booster.txt"))
        scorecard = WoeScorecard.from_dict(data["scorecard"]) if "scorecard" in data else None
        return cls(
            kind=data["kind"],
            config=FeatureConfig.from_dict(data["feature_config"]),
            encoder=FeatureEncoder.from_dict(data["encoder"]),
            calibrator=Calibrator.from_dict(data["calibrator"]),
            scale=MasterScale(
                grades=tuple(data["scale"]["grades"]),
                upper_bounds=tuple(data["scale"]["upper_bounds"]),
            ),
            booster=booster,
            scorecard=scorecard,
            top_reasons=int(data["top_reasons"]),
            metadata=data.get("metadata", {}),
        )


def recorded_currency(metadata: Mapping[str, Any]) -> str | None:
    """The currency of the data a model was trained on, when its metadata records one."""
    value = metadata.get("currency")
    return str(value) if value else None
