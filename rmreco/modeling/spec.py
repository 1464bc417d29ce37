"""Model specifications: the YAML files under ``models/`` parsed into frozen pydantic models.

A spec holds every experiment knob (features, monotone directions, hyperparameters, horizon,
grade bands, gates); nothing here repeats its values. Unknown keys are refused, so a typo in a
spec is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rmreco.domain.contract import EventType, Segment
from rmreco.domain.errors import ConfigurationError
from rmreco.features.bank_columns import is_bank_feature
from rmreco.features.builder import CATEGORICAL_FEATURES, FEATURE_DESCRIPTIONS

SpecT = TypeVar("SpecT", bound=BaseModel)


class Frozen(BaseModel):
    """Base of every spec model: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


#: The word that names each family in a registered name
_FAMILY_WORDS = {"credit_risk": "pd", "cross_sell": "cross-sell"}


def fitting_name(family: str, segments: Sequence[str], horizon_months: int) -> str:
    """A registered name that carries a spec's segments and label horizon, in the pattern of
    the shipped specs: ``rmreco-sme-pd-12m`` (credit risk), ``rmreco-sme-corporate-cross-sell-3m``
    (cross-sell)."""
    words = ["rmreco", *(str(s) for s in segments), _FAMILY_WORDS[family], f"{horizon_months}m"]
    return "-".join(words)


def check_name(name: str, family: str, segments: Sequence[str], horizon_months: int) -> None:
    """Refuse a registered name that does not carry each of the spec's segments and its label
    horizon as ``{h}m``, each a word of the name (words are separated by anything but letters
    and digits): a model's name says whom it scores and over what horizon.

    Raises:
        ValueError: naming the field ``name``, what it lacks and a name that would fit.
    """
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    horizon = f"{horizon_months}m"
    missing = [str(s) for s in segments if str(s) not in words]
    if horizon not in words:
        missing.append(horizon)
    if missing:
        raise ValueError(
            f"name {name!r} must carry each of the spec's segments "
            f"({', '.join(str(s) for s in segments)}) and its label horizon as {horizon}, each a "
            f"word of the name; it lacks {', '.join(missing)}. A name that fits: "
            f"name: {fitting_name(family, segments, horizon_months)}"
        )


class LabelSpec(Frozen):
    horizon_months: int = Field(12, ge=1, le=36)
    events: tuple[EventType, ...] = (EventType.DEFAULT,)
    cure_months: int = Field(3, ge=1, le=24)


class SplitSpec(Frozen):
    """How the credit panel is split into fit, calibration and test rows.

    ``kind: out_of_time`` (the default): fit on early snapshots, calibrate on the next
    ``calibration_months`` and test on the latest ``test_months`` whose outcome is complete, the
    later two on held-out clients only. ``kind: client``: for data with one outcome window (a few
    statements, then one outcome), a stratified hold-out by client over the same period: a
    ``holdout_share`` of the clients, drawn with the spec's seed within those who defaulted in a
    labelled snapshot and within those who did not, is held out, half for calibration, half for
    test; the rest are fitted on; ``test_months`` and ``calibration_months`` are then unused. It
    is the weaker test (the test shares the fit's period, so a drift over time goes unseen), and
    the report and model card say so.
    """

    kind: Literal["out_of_time", "client"] = "out_of_time"
    test_months: int = Field(3, ge=1)
    calibration_months: int = Field(3, ge=1)
    min_history_months: int = Field(3, ge=1)
    #: Share of clients never used for fitting; calibration and test rows come from them only.
    #: A client's static fields (declared turnover, employees) fingerprint it, so a model fitted
    #: on a client's earlier snapshots can recall that client's default when its outcome window
    #: overlaps the test period's; held-out clients make the test honest.
    #: With ``kind: client``: the share of clients held out, half for calibration, half for test.
    holdout_share: float = Field(0.4, gt=0, lt=1)


class FeatureSpec(Frozen):
    name: str
    monotone: Literal["increasing", "decreasing", "none"] = "none"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FEATURE_DESCRIPTIONS and not is_bank_feature(value):
            raise ValueError(
                f"unknown feature {value!r}; see rmreco.features.feature_names(), or name a "
                "bank's own column as clients__<column> or financials__<column>"
            )
        return value

    @model_validator(mode="after")
    def _no_direction_on_categories(self) -> FeatureSpec:
        if self.name in CATEGORICAL_FEATURES and self.monotone != "none":
            raise ValueError(f"categorical feature {self.name!r} cannot be monotone")
        return self

    @property
    def direction(self) -> int:
        return {"increasing": 1, "decreasing": -1, "none": 0}[self.monotone]


#: LightGBM's names of the fewest rows a leaf may hold (``min_data_in_leaf`` and its aliases)
MIN_DATA_IN_LEAF_NAMES = ("min_data_in_leaf", "min_data_per_leaf", "min_data", "min_child_samples")


class LightGbmSpec(Frozen):
    """LightGBM's settings. The fewest rows a leaf may hold depends on the size of the fit set:
    a spec states it either as a count in ``params`` (``min_data_in_leaf: 60``) or as a share
    of the rows each model is fitted on (``min_data_in_leaf_share: 0.005`` with
    ``min_data_in_leaf_floor: 20``), never both; :meth:`resolved_params` turns the share into
    the count the fit uses, which the run logs and the model carries."""

    num_boost_round: int = Field(600, ge=1)
    early_stopping_rounds: int | None = Field(50, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    #: ``min_data_in_leaf`` as a share of the fit rows (None: ``params`` states it, or
    #: LightGBM's default of 20 applies)
    min_data_in_leaf_share: float | None = Field(None, gt=0, lt=0.5)
    #: the least ``min_data_in_leaf`` the share resolves to
    min_data_in_leaf_floor: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> LightGbmSpec:
        stated = [n for n in MIN_DATA_IN_LEAF_NAMES if n in self.params]
        if self.min_data_in_leaf_share is not None and stated:
            raise ValueError(
                f"min_data_in_leaf_share and params.{stated[0]} both state the fewest rows of a "
                "leaf; keep one"
            )
        return self

    def min_data_in_leaf(self, fit_rows: int) -> int:
        """The fewest rows a leaf may hold for a fit set of ``fit_rows`` rows."""
        if self.min_data_in_leaf_share is not None:
            return max(self.min_data_in_leaf_floor, round(self.min_data_in_leaf_share * fit_rows))
        for name in MIN_DATA_IN_LEAF_NAMES:
            if name in self.params:
                return int(self.params[name])
        return 20  # LightGBM's own default

    def resolved_params(self, fit_rows: int) -> dict[str, Any]:
        """``params`` with the fewest rows of a leaf resolved for ``fit_rows`` fit rows."""
        if self.min_data_in_leaf_share is None:
            return dict(self.params)
        return {**self.params, "min_data_in_leaf": self.min_data_in_leaf(fit_rows)}


class ScorecardSpec(Frozen):
    bins: int = Field(8, ge=2, le=50)
    C: float = Field(1.0, gt=0)


class ModelSpec(Frozen):
    #: the model registered and served: one kind, or ``best``: the one with the better
    #: out-of-time AUC in this run (a tie goes to the scorecard, the simpler model)
    registered: Literal["lightgbm", "scorecard", "best"] = "lightgbm"
    calibration: Literal["platt", "isotonic"] = "platt"
    lightgbm: LightGbmSpec = LightGbmSpec()
    scorecard: ScorecardSpec = ScorecardSpec()


class GradeBand(Frozen):
    grade: str
    max_pd: float | None = Field(None, gt=0, le=1)


class ReasonSpec(Frozen):
    top: int = Field(3, ge=1, le=10)


class GateSpec(Frozen):
    min_auc: float = Field(0.7, ge=0.5, le=1)
    max_auc_drop: float = Field(0.01, ge=0, le=1)


class ValidationSpec(Frozen):
    """How a retrain's validation report measures the model (``rmreco.training.validation``)."""

    #: bootstrap resamples (clients drawn with replacement) behind every confidence interval
    bootstrap_resamples: int = Field(500, ge=20, le=10000)
    #: two-sided level of the confidence intervals
    confidence: float = Field(0.95, gt=0.5, lt=1)
    #: quantile bins of a numeric variable in the population stability index (PSI)
    psi_bins: int = Field(10, ge=2, le=50)


class CreditValidationSpec(ValidationSpec):
    #: the per-grade Jeffreys test flags a grade whose one-sided p-value is below this
    jeffreys_level: float = Field(0.05, gt=0, lt=0.5)
    #: clients of the test window whose PD is swept over each monotone feature's range
    monotonicity_sample: int = Field(200, ge=1, le=100000)
    #: quantiles of the feature's test-window values the sweep visits (0%, ..., 100%)
    monotonicity_grid: int = Field(21, ge=2, le=201)
    #: a PD moving against the declared direction by more than this is a violation
    monotonicity_tolerance: float = Field(1e-6, ge=0, le=0.01)
    #: the scorecard's points scale: ``base_score`` at good:bad odds ``base_odds``, ``pdo``
    #: points to double the odds
    base_score: float = 600.0
    base_odds: float = Field(50.0, gt=0)
    pdo: float = Field(20.0, gt=0)


class CreditRiskSpec(Frozen):
    """A credit-risk (PD) model: what it reads, how it is fitted, graded, explained and gated.

    One spec per segment family (``segments``); a bank can run one model per segment side by
    side, each registered under its spec's ``name``, which carries its segments and its label
    horizon (:func:`check_name`).
    """

    kind: Literal["credit_risk"] = "credit_risk"
    name: str
    description: str = ""
    segments: tuple[Segment, ...] = (Segment.SME,)
    seed: int = 42
    label: LabelSpec = LabelSpec()
    financials_lag_months: int = Field(6, ge=0, le=24)
    split: SplitSpec = SplitSpec()
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    #: the bank's own columns of clients and financials (declared in the data's manifest, or
    #: inferred) are added to ``features`` (no monotone direction) in every run
    bank_columns: bool = True
    model: ModelSpec = ModelSpec()
    grades: tuple[GradeBand, ...] = Field(min_length=2)
    reasons: ReasonSpec = ReasonSpec()
    gates: GateSpec = GateSpec()
    validation: CreditValidationSpec = CreditValidationSpec()

    @model_validator(mode="after")
    def _consistent(self) -> CreditRiskSpec:
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"features listed twice: {repeated}")
        if any(g.max_pd is None for g in self.grades[:-1]) or self.grades[-1].max_pd is not None:
            raise ValueError("every grade but the last needs max_pd; the last has none")
        bounds = [float(g.max_pd or 0.0) for g in self.grades[:-1]]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("grade max_pd bounds must increase strictly")
        labels = [g.grade for g in self.grades]
        if len(set(labels)) != len(labels) or "D" in labels:
            raise ValueError("grade names must be unique; D is reserved for default")
        check_name(self.name, self.kind, self.segments, self.label.horizon_months)
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def master_scale_bands(self) -> list[tuple[str, float | None]]:
        return [(g.grade, g.max_pd) for g in self.grades]

    def fingerprint(self) -> str:
        """A short hash of the resolved spec, logged with every run."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class CrossSellLabelSpec(Frozen):
    horizon_months: int = Field(3, ge=1, le=12)
    cure_months: int = Field(3, ge=1, le=24)


class CrossSellSplitSpec(Frozen):
    """How the cross-sell panel is split into fit, calibration and test rows.

    ``kind: out_of_time`` (the default): test on the latest ``test_months`` whose adoption
    outcome is complete, calibrate on the ``calibration_months`` before them, and fit on the
    months before those, an embargo of ``horizon - 1`` months apart. ``kind: client``: for data
    with one outcome window (a few months of history, then the adoptions of the months after
    it), a stratified hold-out by client over every snapshot whose outcome is complete: a
    ``holdout_share`` of the clients, drawn with the spec's seed within those who adopted a
    product in a labelled snapshot and within those who did not, is held out, half for
    calibration, half for test; the rest are fitted on; ``test_months`` and
    ``calibration_months`` are then unused. It is the weaker test (the test shares the fit's
    months, so a drift over time goes unseen), and the report, the model card and the run's
    ``comparison`` tag say so.
    """

    kind: Literal["out_of_time", "client"] = "out_of_time"
    test_months: int = Field(3, ge=1)
    calibration_months: int = Field(3, ge=1)
    min_history_months: int = Field(3, ge=1)
    #: share of the fit window's non-adopting rows kept (weighted back), to bound the fit's cost
    negative_sample: float = Field(1.0, gt=0, le=1)
    #: with ``kind: client``: the share of clients held out of fitting, half for calibration,
    #: half for test (unused out of time)
    holdout_share: float = Field(0.4, gt=0, lt=1)


class LogisticSpec(Frozen):
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(500, ge=10)


class CrossSellModelSpec(Frozen):
    #: which of the two LightGBM set-ups is registered: chosen by ranking quality on the
    #: calibration window (auto), or fixed
    choose: Literal["auto", "stacked", "per_product"] = "auto"
    calibration: Literal["platt", "isotonic"] = "platt"
    #: a product needs this many adoptions in the calibration window for a calibrator of its own
    min_calibration_adoptions: int = Field(20, ge=1)
    #: a catalog product with fewer adoptions than this in the fit window is left out of the
    #: run's model (not scored, not offered), with a warning naming it
    min_fit_adoptions: int = Field(1, ge=1)
    lightgbm: LightGbmSpec = LightGbmSpec()
    #: parameters of the per-product models that differ from ``lightgbm.params``
    per_product_params: dict[str, Any] = Field(default_factory=dict)
    logistic: LogisticSpec = LogisticSpec()


class CreditGateSpec(Frozen):
    #: the worst credit grade (of the credit-risk champion) to which financing is offered
    max_grade: str = "8"
    #: clients the credit model does not grade (segments it does not cover): keep their
    #: financing products in the list (``include``, for the RM to refer) or drop them
    ungraded: Literal["include", "exclude"] = "include"


class RankingGateSpec(Frozen):
    metric: str = "oot_map_at_5"
    min_value: float = Field(0.2, ge=0, le=1)
    max_drop: float = Field(0.01, ge=0, le=1)
    #: a product is ranked by its model only when the lower bound of the model's test-window
    #: AUC interval for that product (``validation.confidence``) lies above this; otherwise
    #: by its popularity rate, the same for every client
    min_product_auc: float = Field(0.5, ge=0.5, lt=1)
    #: the model's MAP@k on the test window must exceed popularity's by more than this (a
    #: model that ranks no better than the adoption rates is refused)
    min_lift_over_popularity: float = Field(0.0, ge=0, le=1)


class CrossSellSpec(Frozen):
    """The cross-sell propensity model: rows, features, fit, calibration, value and gates.

    Expected value of offering product p to a client = propensity x p's annual margin, where
    the margin is the catalog's ``annual_fee`` for a service and, for financing,
    ``margin_rate`` x ``limit_turnover_share`` x the client's annual turnover (declared, or the
    last 12 months' account inflows when none is declared).
    """

    kind: Literal["cross_sell"] = "cross_sell"
    name: str
    description: str = ""
    segments: tuple[Segment, ...] = (Segment.SME, Segment.CORPORATE)
    seed: int = 42
    label: CrossSellLabelSpec = CrossSellLabelSpec()
    financials_lag_months: int = Field(6, ge=0, le=24)
    split: CrossSellSplitSpec = CrossSellSplitSpec()
    #: the client features of the builder; the holdings features of every catalog product and
    #: the product itself are added when ``holdings_features`` is true
    features: tuple[str, ...] = Field(min_length=1)
    holdings_features: bool = True
    #: the bank's own columns of clients and financials (declared in the data's manifest, or
    #: inferred) are added to ``features`` in every run
    bank_columns: bool = True
    model: CrossSellModelSpec = CrossSellModelSpec()
    ranking_k: int = Field(5, ge=1, le=20)
    credit_gate: CreditGateSpec = CreditGateSpec()
    reasons: ReasonSpec = ReasonSpec()
    gates: RankingGateSpec = RankingGateSpec()
    validation: ValidationSpec = ValidationSpec()

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in value if n not in FEATURE_DESCRIPTIONS and not is_bank_feature(n)]
        if unknown:
            raise ValueError(f"unknown features {unknown}; see rmreco.features.feature_names()")
        repeated = sorted({n for n in value if value.count(n) > 1})
        if repeated:
            raise ValueError(f"features listed twice: {repeated}")
        return value

    @model_validator(mode="after")
    def _name_fits(self) -> CrossSellSpec:
        check_name(self.name, self.kind, self.segments, self.label.horizon_months)
        return self

    def fingerprint(self) -> str:
        """A short hash of the resolved spec, logged with every run."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_cross_sell_spec(path: Path) -> CrossSellSpec:
    """Read and check a cross-sell spec.

    Raises:
        ConfigurationError: the file is missing, is not YAML, or a field is wrong (named by path).
    """
    return load_spec_file(path, CrossSellSpec)


def load_credit_risk_spec(path: Path) -> CreditRiskSpec:
    """Read and check a credit-risk spec.

    Raises:
        ConfigurationError: the file is missing, is not YAML, or a field is wrong (named by path).
    """
    return load_spec_file(path, CreditRiskSpec)


@dataclass(frozen=True)
class SpecFile:
    """A model spec found in a models folder."""

    path: Path
    spec: CreditRiskSpec | CrossSellSpec


def find_specs(folder: Path) -> list[SpecFile]:
    """The model specs of a models folder: every YAML file with ``kind: credit_risk`` or
    ``kind: cross_sell``, in file-name order (files without a ``kind``, such as the credit
    policy, are skipped; an unknown kind is an error).

    Raises:
        ConfigurationError: the folder is missing, or a spec file in it is invalid.
    """
    if not folder.is_dir():
        raise ConfigurationError(f"models folder {folder} does not exist")
    found: list[SpecFile] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"spec file {path} is not valid YAML: {exc}") from None
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind == "credit_risk":
            found.append(SpecFile(path, load_credit_risk_spec(path)))
        elif kind == "cross_sell":
            found.append(SpecFile(path, load_cross_sell_spec(path)))
        elif kind is not None:
            raise ConfigurationError(
                f"spec file {path}: kind {kind!r} is not a model kind; use credit_risk or "
                "cross_sell (files without a kind, such as the credit policy, are not specs)"
            )
    names = [f.spec.name for f in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigurationError(f"models folder {folder}: specs share the name {repeated}")
    return found


def credit_specs(folder: Path) -> list[CreditRiskSpec]:
    """The credit-risk specs of a models folder (see :func:`find_specs`)."""
    return [f.spec for f in find_specs(folder) if isinstance(f.spec, CreditRiskSpec)]


def load_spec_file(path: Path, model: type[SpecT]) -> SpecT:
    """Read a YAML file into the frozen pydantic ``model``.

    Raises:
        ConfigurationError: the file is missing, is not YAML, or a field is wrong (named by path).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"spec file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"spec file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"spec file {path} must hold a mapping of settings")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"spec file {path}: {problems}") from None
