"""Model specifications: the YAML files under ``models/`` parsed into frozen pydantic models.

A spec holds every experiment knob (features, monotone directions, hyperparameters, horizon,
grade bands, gates); nothing here repeats its values. Unknown keys are refused, so a typo in a
spec is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rmreco.domain.contract import EventType, Segment
from rmreco.domain.errors import ConfigurationError
from rmreco.features.builder import CATEGORICAL_FEATURES, FEATURE_DESCRIPTIONS

SpecT = TypeVar("SpecT", bound=BaseModel)


class Frozen(BaseModel):
    """Base of every spec model: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelSpec(Frozen):
    horizon_months: int = Field(12, ge=1, le=36)
    events: tuple[EventType, ...] = (EventType.DEFAULT,)
    cure_months: int = Field(3, ge=1, le=24)


class SplitSpec(Frozen):
    test_months: int = Field(3, ge=1)
    calibration_months: int = Field(3, ge=1)
    min_history_months: int = Field(3, ge=1)


class FeatureSpec(Frozen):
    name: str
    monotone: Literal["increasing", "decreasing", "none"] = "none"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FEATURE_DESCRIPTIONS:
            raise ValueError(f"unknown feature {value!r}; see rmreco.features.feature_names()")
        return value

    @model_validator(mode="after")
    def _no_direction_on_categories(self) -> FeatureSpec:
        if self.name in CATEGORICAL_FEATURES and self.monotone != "none":
            raise ValueError(f"categorical feature {self.name!r} cannot be monotone")
        return self

    @property
    def direction(self) -> int:
        return {"increasing": 1, "decreasing": -1, "none": 0}[self.monotone]


class LightGbmSpec(Frozen):
    num_boost_round: int = Field(600, ge=1)
    early_stopping_rounds: int | None = Field(50, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ScorecardSpec(Frozen):
    bins: int = Field(8, ge=2, le=50)
    C: float = Field(1.0, gt=0)


class ModelSpec(Frozen):
    registered: Literal["lightgbm", "scorecard"] = "lightgbm"
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


class CreditRiskSpec(Frozen):
    """The SME credit-risk model: what it reads, how it is fitted, graded, explained and gated."""

    name: str
    description: str = ""
    segments: tuple[Segment, ...] = (Segment.SME,)
    seed: int = 42
    label: LabelSpec = LabelSpec()
    financials_lag_months: int = Field(6, ge=0, le=24)
    split: SplitSpec = SplitSpec()
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    model: ModelSpec = ModelSpec()
    grades: tuple[GradeBand, ...] = Field(min_length=2)
    reasons: ReasonSpec = ReasonSpec()
    gates: GateSpec = GateSpec()

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


def load_credit_risk_spec(path: Path) -> CreditRiskSpec:
    """Read and check a credit-risk spec.

    Raises:
        ConfigurationError: the file is missing, is not YAML, or a field is wrong (named by path).
    """
    return load_spec_file(path, CreditRiskSpec)


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
