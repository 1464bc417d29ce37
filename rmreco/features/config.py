"""This module owns the feature configuration a model is trained with, and the rule of whom a
model scores.

A trained model carries its :class:`FeatureConfig` in its artifact. Training, batch scoring,
evaluation and the service build features from that configuration (never from the builder's
defaults), so what is trained is what is served. :class:`SnapshotParams` are the part of it that
shapes one client's features and status at one month: the service's stored snapshots are
computed with one set of them, and a model whose own set differs cannot be served from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl

from rmreco.domain.contract import CONTRACT_VERSION, EventType
from rmreco.domain.errors import ConfigurationError, RmrecoError
from rmreco.features.bank_columns import CATEGORICAL, NUMERIC, bank_features, is_bank_feature
from rmreco.features.builder import (
    DEFAULT_FINANCIALS_LAG_MONTHS,
    feature_frame,
    features_to_pandas,
)
from rmreco.features.cross_sell import build_cross_sell_panel
from rmreco.features.inputs import FeatureInputs
from rmreco.features.labels import DEFAULT_CURE_MONTHS, build_credit_panel, default_status_plan
from rmreco.features.observations import observed_inputs

Family = Literal["credit_risk", "cross_sell"]
FAMILIES: tuple[Family, ...] = ("credit_risk", "cross_sell")


class FeatureMismatchError(RmrecoError):
    """A frame or a data set given to a model lacks features the model needs."""


def bank_column_kinds(frame: pd.DataFrame, features: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The kind of each feature of ``features`` made of a bank's own column, as ``frame``
    holds it (categorical columns are pandas categoricals)."""
    return tuple(
        (name, CATEGORICAL if isinstance(frame[name].dtype, pd.CategoricalDtype) else NUMERIC)
        for name in features
        if is_bank_feature(name) and name in frame.columns
    )


@dataclass(frozen=True)
class SnapshotParams:
    """Builder settings that shape a client's features and default status at a month."""

    #: months after a financial year ends before its accounts are used
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS
    #: months without a default event before a defaulted client counts as performing again
    cure_months: int = DEFAULT_CURE_MONTHS

    def to_dict(self) -> dict[str, int]:
        return {
            "financials_lag_months": self.financials_lag_months,
            "cure_months": self.cure_months,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotParams:
        return cls(
            financials_lag_months=int(data["financials_lag_months"]),
            cure_months=int(data["cure_months"]),
        )

    def describe(self) -> str:
        return f"financials_lag_months={self.financials_lag_months}, cure_months={self.cure_months}"


@dataclass(frozen=True)
class FeatureConfig:
    """Everything about a model's input that must be the same in training and in use."""

    family: Family
    #: label window t+1 .. t+horizon (what the score is a probability of)
    horizon_months: int
    #: client segments the model was trained on and scores
    segments: tuple[str, ...]
    #: the model's input columns, in order
    features: tuple[str, ...]
    snapshot: SnapshotParams = field(default_factory=SnapshotParams)
    #: credit events that count as the outcome (credit-risk models)
    label_events: tuple[str, ...] = ()
    contract_version: str = CONTRACT_VERSION
    #: the features made of the bank's own columns, with their kind (numeric / categorical):
    #: data to score must carry each of them, of the same kind
    bank_columns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}")
        if not self.segments:
            raise ValueError("a model serves at least one segment")

    # --- whom the model scores ----------------------------------------------------------------

    def covers(self, segments: Sequence[Any] | pd.Series | np.ndarray) -> np.ndarray:
        """True where a client's segment is one the model was trained on."""
        values = pd.Series(np.asarray(segments, dtype=object)).astype(str)
        return np.asarray(values.isin(self.segments).to_numpy(), dtype=bool)

    def covers_segment(self, segment: str | None) -> bool:
        return segment is not None and str(segment) in self.segments

    def scored(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows the model scores: a client of one of its segments, not in default at the
        row's month (``in_default`` where the frame has it; panels hold performing rows only).
        The one population rule for training, batch scoring, evaluation and the service."""
        mask = self.covers(frame["segment"])
        if "in_default" in frame.columns:
            mask = mask & ~frame["in_default"].fillna(False).astype(bool).to_numpy()
        return mask

    def require_bank_columns(self, inputs: FeatureInputs) -> None:
        """Refuse data that lacks a bank column the model reads, or gives it another kind.

        Raises:
            FeatureMismatchError: the message names the table, column and kind, and the fix.
        """
        given = bank_features(inputs.extra_columns)
        problems = []
        for name, kind in self.bank_columns:
            table, column = name.split("__", 1)
            if name not in given:
                problems.append(f"{table}.{column} ({kind}) is not in the data")
            elif given[name] != kind:
                problems.append(
                    f"{table}.{column} is {given[name]} in the data, {kind} in the model"
                )
        if problems:
            raise FeatureMismatchError(
                "the model reads the bank's own columns it was trained on: "
                + "; ".join(problems)
                + ". Give them with the same kind (declare kinds under `columns:` in the "
                "data's manifest.yaml), or retrain on this data."
            )

    # --- the frames the model reads -------------------------------------------------------------

    def credit_panel(
        self, inputs: FeatureInputs, *, months: Sequence[date] | None = None
    ) -> pd.DataFrame:
        """Features and labels of the clients the (credit-risk) model scores at every snapshot
        month, or at ``months`` (see :func:`rmreco.features.build_credit_panel`)."""
        self.require_bank_columns(inputs)
        panel = build_credit_panel(
            inputs,
            horizon_months=self.horizon_months,
            label_events=self.label_events or (EventType.DEFAULT,),
            months=months,
            cure_months=self.snapshot.cure_months,
            financials_lag_months=self.snapshot.financials_lag_months,
        )
        return panel[self.scored(panel)].reset_index(drop=True)

    def cross_sell_panel(
        self,
        inputs: FeatureInputs,
        *,
        months: Sequence[date] | None = None,
        negative_sample: float = 1.0,
        seed: int = 0,
    ) -> pd.DataFrame:
        """The (client, product) rows the (cross-sell) model scores at ``months``, with labels
        (see :func:`rmreco.features.cross_sell.build_cross_sell_panel`)."""
        self.require_bank_columns(inputs)
        panel = build_cross_sell_panel(
            inputs,
            months=months,
            horizon_months=self.horizon_months,
            cure_months=self.snapshot.cure_months,
            financials_lag_months=self.snapshot.financials_lag_months,
            negative_sample=negative_sample,
            seed=seed,
        )
        return panel[self.scored(panel)].reset_index(drop=True)

    # --- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "horizon_months": self.horizon_months,
            "segments": list(self.segments),
            "features": list(self.features),
            "snapshot": self.snapshot.to_dict(),
            "label_events": list(self.label_events),
            "contract_version": self.contract_version,
            "bank_columns": dict(self.bank_columns),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Read :meth:`to_dict`'s output.

        Raises:
            ValueError: a field is missing or the model was trained on another version of the
                data contract.
        """
        try:
            config = cls(
                family=data["family"],
                horizon_months=int(data["horizon_months"]),
                segments=tuple(str(s) for s in data["segments"]),
                features=tuple(str(f) for f in data["features"]),
                snapshot=SnapshotParams.from_dict(data["snapshot"]),
                label_events=tuple(str(e) for e in data.get("label_events", ())),
                contract_version=str(data["contract_version"]),
                bank_columns=tuple(
                    (str(k), str(v)) for k, v in dict(data.get("bank_columns") or {}).items()
                ),
            )
        except KeyError as exc:
            raise ValueError(f"the model's feature configuration lacks {exc}") from None
        if config.contract_version != CONTRACT_VERSION:
            raise ValueError(
                f"the model was trained on data contract {config.contract_version}; this rmreco "
                f"reads contract {CONTRACT_VERSION}: retrain it"
            )
        return config


def shared_snapshot_params(configs: Mapping[str, FeatureConfig]) -> SnapshotParams:
    """The one set of snapshot settings of the models served together (by name); the builder's
    defaults when there is no model yet.

    Raises:
        ConfigurationError: the models were trained with different settings, which one set of
            stored snapshots cannot serve (the message names each model's settings).
    """
    distinct = {c.snapshot for c in configs.values()}
    if len(distinct) > 1:
        each = "; ".join(f"{name}: {c.snapshot.describe()}" for name, c in sorted(configs.items()))
        raise ConfigurationError(
            "the champions were trained with different feature settings, and the stored "
            f"snapshots serve one set ({each}); retrain them with the same settings"
        )
    return distinct.pop() if distinct else SnapshotParams()


def snapshot_frame(
    inputs: FeatureInputs, params: SnapshotParams, *, months: Sequence[date] | None = None
) -> pd.DataFrame:
    """Features and ``in_default`` of every client at the months it has an account row (all of
    them, or ``months``), computed with ``params``."""
    return features_to_pandas(snapshot_plan(inputs, params, months=months), extra=("in_default",))


def snapshot_plan(
    inputs: FeatureInputs,
    params: SnapshotParams,
    *,
    months: Sequence[date] | None = None,
    latest: bool = False,
    features: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """:func:`snapshot_frame` as a lazy polars plan, before the pandas edge; ``latest`` keeps
    each client's own latest observed month only (the service's stored snapshot), so that the
    rest of a caller's plan and the pandas edge see one row per client, not the whole history.
    ``features``: the :func:`~rmreco.features.builder.feature_frame` of ``inputs`` (already
    observed) at ``months`` with ``params``, when the caller computed it for other uses too.
    """
    inputs = observed_inputs(inputs, params.financials_lag_months)
    if features is None:
        features = feature_frame(
            inputs, months=months, financials_lag_months=params.financials_lag_months
        )
    frame = features.filter(pl.col("observed"))
    if latest:
        frame = frame.filter(pl.col("_mi") == pl.col("_mi").max().over("_cid"))
    status = default_status_plan(inputs, cure_months=params.cure_months)
    return frame.join(status, on=["_cid", "_mi"], how="left", maintain_order="left")
