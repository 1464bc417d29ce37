"""This module owns ``rmreco data check``'s answer: a read-only profile of a data folder (clients
per segment, RMs per role, months, outcome months per horizon, defaults, adoptions, currency,
tables given and not given, the bank's own columns with their kinds, financials coverage) and,
for every spec of a models folder, whether it can train on that data and, when it cannot, why
and which setting would fit.

Months come from whatever dates the data has: account months, else the months the features
observe a client without account history at (its statements' years, its ``as_of_month``: see
:func:`rmreco.features.builder.observation_months`).

The verdicts run the training jobs' own data preparation (:func:`rmreco.training.credit_risk.
build_split`, :func:`rmreco.training.cross_sell_split.build_split`, whose refusals are the rules of
:mod:`rmreco.training.splits`): a spec this check passes builds the same split in training, and
one it refuses is refused by training with the same message. Nothing is fitted and nothing is
written; on a large book the check takes as long as the jobs' panel building.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rmreco.data.contract import ValidatedTables
from rmreco.domain import contract
from rmreco.domain.contract import EventType
from rmreco.features import FeatureInputs
from rmreco.features.builder import DEFAULT_FINANCIALS_LAG_MONTHS, month_index
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import outcome_end
from rmreco.features.observations import observed_inputs
from rmreco.modeling.spec import CreditRiskSpec, SpecFile, find_specs
from rmreco.training import credit_risk, cross_sell_split
from rmreco.training.splits import Split, TrainingDataError, complete_outcome_months

logger = logging.getLogger(__name__)

AS_OF_MONTH = "as_of_month"


@dataclass(frozen=True)
class MonthSpan:
    """Months of something: the first and last (YYYY-MM) and how many distinct months."""

    first: str | None
    last: str | None
    count: int

    @classmethod
    def of(cls, indices: Sequence[int] | np.ndarray) -> MonthSpan:
        unique = np.unique(np.asarray(indices, dtype=np.int64))
        if unique.size == 0:
            return cls(None, None, 0)
        return cls(_month_text(int(unique[0])), _month_text(int(unique[-1])), int(unique.size))


@dataclass(frozen=True)
class Defaults:
    """Default events of the data (event type ``default``)."""

    events: int
    months: MonthSpan
    #: share of each segment's clients with at least one default event in the data
    client_rate_by_segment: dict[str, float]
    #: events of every type, by type
    events_by_type: dict[str, int]


@dataclass(frozen=True)
class Adoptions:
    """Starts of one product inside the history (after its first month): what cross-sell
    labels are made of."""

    count: int
    months: MonthSpan


@dataclass(frozen=True)
class Financials:
    """How many clients have at least one financial statement, and which years."""

    clients: int
    share_of_clients: float
    first_year: int | None
    last_year: int | None


@dataclass(frozen=True)
class DataProfile:
    folder: str
    currency: str | None
    clients_by_segment: dict[str, int]
    rms_by_role: dict[str, int]
    account_months: MonthSpan
    #: per label horizon (months) of the specs: the months whose outcome the data covers
    outcome_months: dict[int, MonthSpan]
    defaults: Defaults
    adoptions: dict[str, Adoptions]
    financials: Financials
    #: rows per contract table present; optional tables left out are in ``absent_tables``
    tables: dict[str, int]
    absent_tables: list[str]
    warnings: list[str] = field(default_factory=list)
    #: the months a client is observed at: its account months, or, without account history,
    #: its statements' and ``as_of_month`` months (what the feature builder lays its grid on)
    observation_months: MonthSpan = field(default_factory=lambda: MonthSpan(None, None, 0))
    #: where those months come from: "account_months", "financials.year", "clients.as_of_month"
    months_from: list[str] = field(default_factory=list)
    #: ``clients.as_of_month`` (given or filled from the manifest's observation month)
    as_of_months: MonthSpan = field(default_factory=lambda: MonthSpan(None, None, 0))
    #: the bank's own columns of clients and financials with their kinds, by table
    extra_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the manifest's extract date (YYYY-MM-DD), when it gives one
    extract_date: str | None = None
    #: what reading changed, once per column or table (see ValidatedTables.notes)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SpecVerdict:
    name: str
    kind: str
    path: str
    segments: list[str]
    horizon_months: int
    can_train: bool
    #: why it cannot, naming what the data has and the setting that would fit (empty when it can)
    reasons: list[str]
    #: the fit, calibration and test periods the job would use (when it can train)
    periods: dict[str, str]


@dataclass(frozen=True)
class DataCheck:
    profile: DataProfile
    verdicts: list[SpecVerdict]

    @property
    def can_all_train(self) -> bool:
        return all(v.can_train for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values (month spans as mappings, horizons as strings)."""
        data = asdict(self)
        data["profile"]["outcome_months"] = {
            str(h): span for h, span in data["profile"]["outcome_months"].items()
        }
        data["can_all_train"] = self.can_all_train
        return data


def check_data(folder: Path, models_dir: Path) -> DataCheck:
    """Profile ``folder`` and tell, for every spec of ``models_dir``, whether it can train.

    Raises:
        DataContractError: the folder breaks the data contract.
        ConfigurationError: the models folder is missing or holds an invalid spec.
    """
    specs = find_specs(models_dir)
    inputs, validated = read_feature_inputs(folder)
    horizons = sorted({found.spec.label.horizon_months for found in specs})
    return DataCheck(
        profile=profile_data(inputs, validated, horizons),
        verdicts=[spec_verdict(inputs, found) for found in specs],
    )


def profile_data(
    inputs: FeatureInputs, validated: ValidatedTables, horizons: Sequence[int] = ()
) -> DataProfile:
    """The profile of validated input tables; ``horizons`` are the label horizons (months) for
    which to count months with a complete outcome."""
    clients = inputs.clients
    segments = clients["segment"].astype(str)
    account_months = month_index(inputs.account_months["month"])
    observed = observed_inputs(inputs, DEFAULT_FINANCIALS_LAG_MONTHS)
    months = month_index(observed.account_months["month"])
    rms = validated.frame(contract.RELATIONSHIP_MANAGERS.name)
    present = {name: len(table.frame) for name, table in validated.tables.items()}
    as_of = clients[AS_OF_MONTH].dropna() if AS_OF_MONTH in clients else pd.Series([])
    extract = validated.manifest.extract_date if validated.manifest is not None else None
    return DataProfile(
        folder=str(validated.folder),
        currency=validated.currency,
        clients_by_segment=_counts(segments),
        rms_by_role=_counts(rms["role"].astype(str)) if "role" in rms else {},
        account_months=MonthSpan.of(account_months),
        # credit outcomes may lie after the last account month (an observation-window extract)
        outcome_months={
            h: MonthSpan.of(
                complete_outcome_months(months, h, last=outcome_end(observed))
                if len(months)
                else []
            )
            for h in horizons
        },
        defaults=_defaults(inputs.credit_events, segments, clients["client_id"]),
        adoptions=_adoptions(inputs, int(months.min()), int(months.max()))
        if len(months)
        else _adoptions(inputs, None, None),
        financials=_financials(inputs.financials, clients["client_id"]),
        tables=present,
        absent_tables=[t.name for t in contract.TABLES if t.name not in present],
        warnings=list(validated.warnings),
        observation_months=MonthSpan.of(months),
        months_from=_months_from(inputs, account_months, as_of),
        as_of_months=MonthSpan.of(month_index(as_of) if len(as_of) else []),
        extra_columns={t: dict(kinds) for t, kinds in validated.extra_columns.items()},
        extract_date=None if extract is None else extract.isoformat(),
        notes=list(validated.notes),
    )


def _months_from(inputs: FeatureInputs, account_months: np.ndarray, as_of: pd.Series) -> list[str]:
    """Which tables the observation months come from."""
    sources: list[str] = []
    with_history = set(inputs.account_months["client_id"].astype(str))
    if len(account_months):
        sources.append(f"{contract.ACCOUNT_MONTHS.name}")
    financials = inputs.financials
    if (
        financials is not None
        and len(financials)
        and not set(financials["client_id"].astype(str)) <= with_history
    ):
        sources.append(f"{contract.FINANCIALS.name}.year")
    if len(as_of):
        with_as_of = set(inputs.clients.loc[as_of.index, "client_id"].astype(str))
        if not with_as_of <= with_history:
            sources.append(f"{contract.CLIENTS.name}.{AS_OF_MONTH}")
    return sources


def spec_verdict(inputs: FeatureInputs, found: SpecFile) -> SpecVerdict:
    """Whether the spec ``found`` can train on ``inputs``: the job's own split is built (no
    fit); its refusal is the reason."""
    spec = found.spec
    reasons: list[str] = []
    periods: dict[str, str] = {}
    try:
        split: Split = (
            credit_risk.build_split(inputs, spec)
            if isinstance(spec, CreditRiskSpec)
            else cross_sell_split.build_split(inputs, spec)
        )
        periods = split.describe()
    except TrainingDataError as refused:
        reasons.append(str(refused))
    except Exception as failed:  # one spec's failure must not hide the others
        # A job that fails on this shape of data without a refusal of its own: the check still
        # answers for every other spec, and says which error the job would raise.
        logger.debug("data check: spec %s failed on the data", spec.name, exc_info=True)
        reasons.append(
            f"the {spec.kind} job fails on this data before fitting "
            f"({type(failed).__name__}: {failed})"
        )
    return SpecVerdict(
        name=spec.name,
        kind=spec.kind,
        path=str(found.path),
        segments=[str(s) for s in spec.segments],
        horizon_months=spec.label.horizon_months,
        can_train=not reasons,
        reasons=reasons,
        periods=periods,
    )


def _month_text(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def _defaults(events: pd.DataFrame | None, segments: pd.Series, ids: pd.Series) -> Defaults:
    if events is None or events.empty:
        return Defaults(0, MonthSpan.of([]), dict.fromkeys(sorted(set(segments)), 0.0), {})
    types = events["event_type"].astype(str)
    defaults = events[types == str(EventType.DEFAULT)]
    defaulted = set(defaults["client_id"].astype(str))
    has_default = ids.astype(str).isin(defaulted)
    rate = has_default.groupby(segments.to_numpy()).mean()
    return Defaults(
        events=len(defaults),
        months=MonthSpan.of(month_index(defaults["month"]) if len(defaults) else []),
        client_rate_by_segment={str(k): round(float(v), 6) for k, v in rate.items()},
        events_by_type=_counts(types),
    )


def _adoptions(inputs: FeatureInputs, first: int | None, last: int | None) -> dict[str, Adoptions]:
    """Per catalog product (and any other product held): starts after the first month of the
    history and not after its last (none without months)."""
    codes: list[str] = []
    if inputs.products is not None and len(inputs.products):
        codes = [str(c) for c in inputs.products["product_code"]]
    holdings = inputs.holdings
    out: dict[str, Adoptions] = {}
    if holdings is not None and len(holdings) and first is not None and last is not None:
        starts = month_index(holdings["start_month"])
        inside = (starts > first) & (starts <= last)
        product = holdings["product_code"].astype(str).to_numpy()
        for code in sorted(set(product[inside])):
            chosen = inside & (product == code)
            out[code] = Adoptions(int(chosen.sum()), MonthSpan.of(starts[chosen]))
    empty = Adoptions(0, MonthSpan.of([]))
    return {
        **{code: out.get(code, empty) for code in codes},
        **{code: found for code, found in out.items() if code not in codes},
    }


def _financials(financials: pd.DataFrame | None, ids: pd.Series) -> Financials:
    if financials is None or financials.empty:
        return Financials(0, 0.0, None, None)
    with_statements = ids.astype(str).isin(set(financials["client_id"].astype(str)))
    years = pd.to_numeric(financials["year"], errors="coerce").dropna()
    return Financials(
        clients=int(with_statements.sum()),
        share_of_clients=round(float(with_statements.mean()), 6) if len(ids) else 0.0,
        first_year=int(years.min()) if len(years) else None,
        last_year=int(years.max()) if len(years) else None,
    )
