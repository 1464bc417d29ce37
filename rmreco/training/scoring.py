"""Batch scoring: every performing client at one month, with the champion models.

Each model reads features built with its own feature configuration (the one it was trained
with), and scores the population it was trained for: each client is graded by the credit-risk
champion of its segment.

Writes ``OUTDIR/credit.parquet`` (client_id, as_of, pd_{h}m, grade, reasons, reason_codes,
segment, model_name, model_version), ``OUTDIR/financing.parquet`` (each client's policy
decision with its coded reasons and adverse-action reasons, and ranked financing options, by
the same function as the service's financing answer) and
``OUTDIR/cross_sell.parquet`` (client_id, as_of, product_code, propensity, expected_value, rank,
pd_{h}m, grade, decision, reasons, reason_codes, model_name, model_version): each client's
eligible products it does not hold, by the cross-sell champion of its segment, ranked by
expected value (rank 1 the highest), credit-aware as the service's lists are (PD and grade on
every offer of a graded client, the policy's decision on credit products, none the policy
declines). Without a cross-sell champion the credit file is still written and the summary
says cross-sell was skipped. Every output is written to a temporary file first, and the files
are renamed into place together once all are written, so a failed or killed run leaves no
partial file, nor some files of this run beside the others of an earlier one.

The PD column is named by the credit model's label horizon: ``pd_12m`` for a 12-month model,
``pd_1m`` for a 1-month one (:func:`rmreco.modeling.credit_model.pd_column`). When the credit
champions of a book have different horizons (a 12-month SME model beside a 1-month personal
one), each file has one PD column per horizon, in increasing order where the PD stands, and a
row's PD is in its own model's column (the others null): a PD never changes meaning with the
row, and one run still scores the whole book. In memory (the frames of :func:`score_table`,
:func:`financing_decisions` and :func:`cross_sell_offers`) a row holds ``pd`` and
``pd_horizon_months``; :func:`horizon_columns` spreads them when a file is written.

The credit policy is read in the data's currency before anything is scored
(:meth:`rmreco.modeling.policy.CreditPolicy.in_currency`): a currency the policy states no
amounts for is refused before any file is written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from rmreco.config import Settings
from rmreco.domain.errors import RmrecoError
from rmreco.features import FeatureInputs
from rmreco.features.config import snapshot_frame
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.observations import observation_months
from rmreco.modeling.credit_model import (
    CreditPredictions,
    CreditRiskModel,
    Reason,
    pd_column,
    reasons_json,
)
from rmreco.modeling.decisioning import Outcome, decide_financing, financing_products
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.offers import CreditView, credit_aware
from rmreco.modeling.policy import CreditPolicy, load_policy
from rmreco.modeling.propensity import PropensityModel, PropensityPredictions, rank_offers
from rmreco.training.registry import RegistryError
from rmreco.training.run import Progress, load_champions

CREDIT_FILE = "credit.parquet"
FINANCING_FILE = "financing.parquet"
CROSS_SELL_FILE = "cross_sell.parquet"


class ScoringError(RmrecoError):
    """Batch scoring cannot run (no champion, a month outside the data...)."""


@dataclass(frozen=True)
class ScoringSummary:
    as_of: date
    files: dict[str, int]  # file -> rows
    model_versions: dict[str, str]
    #: outputs not written, with the reason
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreditChampion:
    """A credit-risk champion in use: its registered name, version and model."""

    name: str
    version: str
    model: CreditRiskModel


def load_credit_models(
    names: Sequence[str], *, settings: Settings, tracking_uri: str | None
) -> list[CreditChampion]:
    """The champions of the named credit-risk models; names without a champion are left out.

    Raises:
        RegistryError: a champion's files could not be loaded, or are not a credit model.
    """
    out = []
    for name, (model, version) in load_champions(
        names, settings=settings, tracking_uri=tracking_uri
    ).items():
        if not isinstance(model, CreditRiskModel):
            raise RegistryError(f"model {name!r} is not a credit-risk model")
        out.append(CreditChampion(name, version, model))
    return out


@dataclass(frozen=True)
class ScoredClients:
    """The clients one credit champion scores at some months: their features and scores."""

    champion: CreditChampion
    frame: pd.DataFrame
    result: CreditPredictions


def scored_clients(
    credit: Sequence[CreditChampion],
    inputs: FeatureInputs,
    months: Sequence[date],
    *,
    with_reasons: bool = True,
    currency: str | None = None,
) -> list[ScoredClients]:
    """Each champion's clients at ``months`` (those of its segments, performing), from features
    built with that model's own configuration, and its scores of them (``currency``, the
    data's, is named after the amounts of the reasons)."""
    out = []
    for champion in credit:
        config = champion.model.config
        frame = snapshot_frame(inputs, config.snapshot, months=months)
        frame = frame[config.scored(frame)].reset_index(drop=True)
        result = champion.model.predict(frame, with_reasons=with_reasons, currency=currency)
        out.append(ScoredClients(champion, frame, result))
    return out


def score_table(scored: Sequence[ScoredClients]) -> pd.DataFrame:
    """The scores of :func:`scored_clients` as one table.

    Returns ``client_id``, ``month``, ``segment``, ``pd``, ``pd_horizon_months`` (the months
    the PD covers: its model's label horizon), ``grade``, ``reasons`` (JSON), ``reason_codes``
    (their catalogue codes, strongest first), ``model_name`` and ``model_version``.
    """
    parts = [
        pd.DataFrame(
            {
                "client_id": part.frame["client_id"].astype(str).to_numpy(),
                "month": pd.to_datetime(part.frame["month"]).to_numpy(),
                "segment": part.frame["segment"].astype(str).to_numpy(),
                "pd": part.result.pd,
                "pd_horizon_months": part.result.horizon_months,
                "grade": part.result.grade.astype(str),
                "reasons": reasons_json(part.result.reasons),
                "reason_codes": [[r.code for r in row] for row in part.result.reasons],
                "model_name": part.champion.name,
                "model_version": part.champion.version,
            }
        )
        for part in scored
    ]
    if not parts:
        return pd.DataFrame(columns=[*SCORE_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def _reason_dicts(row: Sequence[Reason]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in row]


def financing_decisions(
    scored: Sequence[ScoredClients],
    inputs: FeatureInputs,
    as_of: date,
    policy: CreditPolicy,
    propensities: Mapping[str, dict[str, float]] | None,
) -> pd.DataFrame:
    """Every scored client's financing decision and ranked options at ``as_of``, by the same
    function the service's financing answer calls (:func:`decide_financing`, no request
    terms): one row per option, and one row without a product for a client offered none.
    ``propensities`` maps client ids to their take-up propensity by product (None when no
    cross-sell model is served)."""
    catalog = _catalog_rows(inputs.products)
    products = financing_products(catalog, policy)  # read once, not once a client
    held = _held_at(inputs.holdings, as_of)
    turnover = _declared_turnover(inputs.clients)
    rows: list[dict[str, Any]] = []
    for part in scored:
        records = cast(list[dict[str, Any]], part.frame.to_dict(orient="records"))
        for i, record in enumerate(records):
            client_id = str(record["client_id"])
            answer = decide_financing(
                features=record,
                segment=str(record["segment"]),
                declared_turnover=turnover.get(client_id),
                in_default=False,
                held_products=held.get(client_id, frozenset()),
                pd=float(part.result.pd[i]),
                pd_horizon_months=part.result.horizon_months,
                grade=str(part.result.grade[i]),
                reasons=_reason_dicts(part.result.reasons[i]),
                catalog=catalog,
                policy=policy,
                propensities=None if propensities is None else propensities.get(client_id, {}),
                products=products,
            )
            shared = {
                "client_id": client_id,
                "as_of": as_of,
                "pd": answer.pd,
                "pd_horizon_months": answer.pd_horizon_months,
                "grade": answer.grade,
                "decision": answer.decision.outcome,
                "decision_reasons": json.dumps(
                    [r.to_dict() for r in answer.decision.policy_reasons]
                ),
                "decision_reason_codes": [r.code for r in answer.decision.policy_reasons],
                "adverse_action_reasons": json.dumps(
                    [r.to_dict() for r in answer.adverse_action_reasons]
                ),
                "adverse_reason_codes": [r.code for r in answer.adverse_action_reasons],
                "model_name": part.champion.name,
                "model_version": part.champion.version,
                "policy_version": policy.version,
            }
            if not answer.options:
                rows.append({**shared, **_NO_OPTION})
            for rank, option in enumerate(answer.options, start=1):
                rows.append(
                    {
                        **shared,
                        "rank": rank,
                        PRODUCT: option.product_code,
                        "limit": option.limit,
                        "tenor_months": option.tenor_months,
                        "indicative_rate": option.price.rate,
                        "expected_annual_profit": option.expected_annual_profit,
                        "propensity": option.propensity,
                    }
                )
    return pd.DataFrame(rows, columns=[*FINANCING_COLUMNS])


_NO_OPTION: dict[str, Any] = {
    "rank": None,
    PRODUCT: None,
    "limit": None,
    "tenor_months": None,
    "indicative_rate": None,
    "expected_annual_profit": None,
    "propensity": None,
}
FINANCING_COLUMNS = (
    "client_id",
    "as_of",
    "pd",
    "pd_horizon_months",
    "grade",
    "decision",
    "decision_reasons",
    "decision_reason_codes",
    "adverse_action_reasons",
    "adverse_reason_codes",
    *_NO_OPTION,
    "model_name",
    "model_version",
    "policy_version",
)


def _catalog_rows(products: pd.DataFrame | None) -> list[dict[str, Any]]:
    if products is None:
        return []
    clean = products.astype(object).where(products.notna(), None)
    return cast(list[dict[str, Any]], clean.to_dict(orient="records"))


def _held_at(holdings: pd.DataFrame | None, as_of: date) -> dict[str, frozenset[str]]:
    """Products each client holds at month ``as_of`` (started by then, not ended before)."""
    if holdings is None or holdings.empty:
        return {}
    month = pd.Timestamp(as_of)
    start = pd.to_datetime(holdings["start_month"])
    end = pd.to_datetime(holdings["end_month"])
    open_ = holdings[(start <= month) & (end.isna() | (end >= month))]
    held: dict[str, set[str]] = {}
    for client, product in zip(
        open_["client_id"].astype(str), open_[PRODUCT].astype(str), strict=True
    ):
        held.setdefault(client, set()).add(product)
    return {client: frozenset(products) for client, products in held.items()}


def _declared_turnover(clients: pd.DataFrame) -> dict[str, float]:
    if "turnover" not in clients.columns:
        return {}
    known = clients[clients["turnover"].notna()]
    return dict(zip(known["client_id"].astype(str), known["turnover"].astype(float), strict=True))


#: Columns of ``credit.parquet`` (``pd`` and ``pd_horizon_months`` spread by
#: :func:`horizon_columns`)
CREDIT_COLUMNS = (
    "client_id",
    "as_of",
    "pd",
    "pd_horizon_months",
    "grade",
    "reasons",
    "reason_codes",
    "segment",
    "model_name",
    "model_version",
)
SCORE_COLUMNS = (
    "client_id",
    "month",
    "segment",
    "pd",
    "pd_horizon_months",
    "grade",
    "reasons",
    "reason_codes",
    "model_name",
    "model_version",
)


def horizon_columns(frame: pd.DataFrame, horizons: Iterable[int]) -> pd.DataFrame:
    """``frame`` as a file holds it: its ``pd`` and ``pd_horizon_months`` columns replaced, where
    ``pd`` stands, by one column per horizon of ``horizons`` in increasing order (``pd_12m``,
    see :func:`pd_column`): each row's PD in the column of its own model's horizon, null in the
    others (and in all of them for a row without a PD).

    Raises:
        ValueError: a row's horizon is not one of ``horizons``.
    """
    spans = pd.to_numeric(frame["pd_horizon_months"], errors="coerce").to_numpy(dtype=float)
    wanted = sorted({int(h) for h in horizons})
    stray = sorted({int(h) for h in spans[~np.isnan(spans)]} - set(wanted))
    if stray:
        raise ValueError(
            f"rows with a PD over {stray} months, but the credit models' horizons are {wanted}"
        )
    values = frame["pd"].to_numpy(dtype=float)
    at = list(frame.columns).index("pd")
    out = frame.drop(columns=["pd", "pd_horizon_months"])
    for k, horizon in enumerate(wanted):
        out.insert(at + k, pd_column(horizon), np.where(spans == horizon, values, np.nan))
    return out


def credit_grades(
    credit: Sequence[CreditChampion], inputs: FeatureInputs, frame: pd.DataFrame
) -> np.ndarray:
    """The credit grade of each row's client and month (rows of a cross-sell panel), by the
    champion of the client's segment; None where no credit model scores the client."""
    months = [pd.Timestamp(m).date() for m in pd.unique(pd.to_datetime(frame["month"]))]
    scored = score_table(scored_clients(credit, inputs, months, with_reasons=False))
    keys = pd.DataFrame(
        {
            "client_id": frame["client_id"].astype(str).to_numpy(),
            "month": pd.to_datetime(frame["month"]).to_numpy(),
        }
    )
    joined = keys.merge(
        scored[["client_id", "month", "grade"]], on=["client_id", "month"], how="left"
    )
    grades = joined["grade"].astype(object)
    return grades.where(grades.notna(), None).to_numpy(dtype=object)


@dataclass(frozen=True)
class Champions:
    """The champions a batch scores with: the credit models (at least one), the cross-sell
    models and versions by name, and why any named cross-sell model is not among them."""

    credit: list[CreditChampion]
    cross_sell: dict[str, tuple[PropensityModel, str]]
    cross_sell_missing: list[str]

    @property
    def versions(self) -> dict[str, str]:
        """Every scoring model's version, by name."""
        out = {c.name: c.version for c in self.credit}
        out.update({name: version for name, (_, version) in self.cross_sell.items()})
        return out

    def skipped(self) -> dict[str, str]:
        """The outputs left out or partly written, with why (see ``ScoringSummary.skipped``)."""
        reasons = "; ".join(self.cross_sell_missing)
        if not self.cross_sell:
            return {CROSS_SELL_FILE: "cross-sell skipped: " + reasons}
        if self.cross_sell_missing:
            return {f"{CROSS_SELL_FILE} (partly)": "cross-sell partly skipped: " + reasons}
        return {}


def load_scoring_champions(
    *,
    settings: Settings,
    credit_models: Sequence[str],
    cross_sell_models: Sequence[str],
    tracking_uri: str | None = None,
) -> Champions:
    """The champions of the named models.

    Raises:
        ScoringError: no credit champion is registered, or one could not be loaded.
    """
    try:
        credit = load_credit_models(credit_models, settings=settings, tracking_uri=tracking_uri)
    except RegistryError as exc:
        raise ScoringError(str(exc)) from None
    if not credit:
        raise ScoringError(f"no champion of {', '.join(map(repr, credit_models))} is registered")
    cross_sell, missing = _cross_sell_champions(cross_sell_models, settings, tracking_uri)
    return Champions(credit, cross_sell, missing)


def observed_span(inputs: FeatureInputs, champions: Champions) -> tuple[date, date] | None:
    """The first and last month the data observes its clients in (account months; statements
    or as-of months where a book has no account history), with the statements' lag of each
    credit model; None when it observes none."""
    months = pd.to_datetime(
        pd.concat(
            [
                observation_months(inputs, lag)["month"]
                for lag in {c.model.config.snapshot.financials_lag_months for c in champions.credit}
            ]
        )
    )
    if months.empty:
        return None
    return months.min().date(), months.max().date()


def as_of_problem(span: tuple[date, date] | None, as_of: date) -> str | None:
    """Why ``as_of`` cannot be scored in data observing ``span``, or None."""
    if span is not None and span[0] <= as_of <= span[1]:
        return None
    observed = "no month" if span is None else f"{span[0]:%Y-%m}..{span[1]:%Y-%m}"
    return f"as-of month {as_of:%Y-%m} is outside the data: it observes its clients in {observed}"


def score_clients(
    inputs: FeatureInputs,
    *,
    as_of: date,
    champions: Champions,
    policy: CreditPolicy,
    currency: str,
    explained_offers: int | None,
    on_step: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """The batch's output frames of the clients of ``inputs`` at ``as_of`` (by file name; the
    cross-sell file only with a cross-sell champion), in the columns the files have; the first
    ``explained_offers`` offers of each client with their reasons (None: every offer).

    Every client is scored on its own: the clients of a partition are scored as they are in
    the whole book (``rmreco.training.partitioned``).
    """
    step = on_step or (lambda message: None)
    credit = champions.credit
    horizons = sorted({c.model.horizon_months for c in credit})
    step(f"scoring the clients of {as_of:%Y-%m} (PD, grade, reasons)")
    scored = scored_clients(credit, inputs, [as_of], currency=currency)
    scores = score_table(scored)
    credit_frame = scores.assign(as_of=pd.Series([as_of] * len(scores), dtype="object"))[
        list(CREDIT_COLUMNS)
    ]
    staged = {CREDIT_FILE: horizon_columns(credit_frame, horizons)}
    if not champions.cross_sell:
        step("deciding and ranking the financing options")
        financing = financing_decisions(scored, inputs, as_of, policy, None)
    else:
        # one panel per model gives the financing options' propensities and the cross-sell list
        step("building the cross-sell features")
        panels = {
            name: model.config.cross_sell_panel(inputs, months=[as_of])
            for name, (model, _) in champions.cross_sell.items()
        }
        # each panel's propensities once: the financing options' and the offers'
        predicted = {
            name: model.predict(panels[name], with_reasons=False)
            for name, (model, _) in champions.cross_sell.items()
        }
        propensities: dict[str, dict[str, float]] = {}
        for name, (model, _) in champions.cross_sell.items():
            propensities.update(
                client_propensities(model, panels[name], predictions=predicted[name])
            )
        step("deciding and ranking the financing options")
        financing = financing_decisions(scored, inputs, as_of, policy, propensities)
        views = credit_views(financing)
        parts = []
        for name, (model, xs_version) in champions.cross_sell.items():
            step(f"ranking the cross-sell offers of {name}")
            offers = cross_sell_offers(
                panels[name],
                model,
                as_of,
                views,
                credit[0].model.scale,
                currency=currency,
                predictions=predicted[name],
                explained=explained_offers,
            )
            offers["model_name"] = name
            offers["model_version"] = xs_version
            parts.append(offers)
        staged[CROSS_SELL_FILE] = horizon_columns(pd.concat(parts, ignore_index=True), horizons)
    staged[FINANCING_FILE] = horizon_columns(financing, horizons)
    return staged


def score_batch(
    data: Path,
    *,
    as_of: date,
    out: Path,
    settings: Settings,
    credit_models: Sequence[str],
    cross_sell_models: Sequence[str],
    policy_path: Path,
    tracking_uri: str | None = None,
    on_step: Progress | None = None,
) -> ScoringSummary:
    """Score every performing client of ``data`` at month ``as_of`` with the champions: each
    client by the credit model of its segment, each with the features of its model's own
    configuration; the first ``settings.explained_offers`` cross-sell offers of each client
    with their reasons. ``on_step`` is told each step as it starts.

    Raises:
        DataContractError: the data folder breaks the contract.
        ScoringError: no credit champion is registered, or ``as_of`` is outside the data.
        PolicyCurrencyError: the credit policy states no amounts in the data's currency
            (nothing is written).
    """
    step = on_step or (lambda message: None)
    step(f"reading and validating {data}")
    inputs, validated = read_feature_inputs(data)
    # the load's own currency, else the setting: as ingest decides it for the service
    currency = validated.currency or settings.currency
    # the policy's amounts in that currency, or a refusal before anything is written
    policy = load_policy(policy_path).in_currency(currency)
    step("loading the champions")
    champions = load_scoring_champions(
        settings=settings,
        credit_models=credit_models,
        cross_sell_models=cross_sell_models,
        tracking_uri=tracking_uri,
    )
    problem = as_of_problem(observed_span(inputs, champions), as_of)
    if problem is not None:
        raise ScoringError(problem)
    staged = score_clients(
        inputs,
        as_of=as_of,
        champions=champions,
        policy=policy,
        currency=currency,
        on_step=step,
        explained_offers=settings.resolved_explained_offers,
    )
    out.mkdir(parents=True, exist_ok=True)
    step(f"writing {', '.join(staged)} to {out}")
    _write_atomically(staged, out)
    return ScoringSummary(
        as_of=as_of,
        files={name: len(frame) for name, frame in staged.items()},
        model_versions=champions.versions,
        skipped=champions.skipped(),
    )


def _cross_sell_champions(
    names: Sequence[str], settings: Settings, tracking_uri: str | None
) -> tuple[dict[str, tuple[PropensityModel, str]], list[str]]:
    """The cross-sell champions and their versions, by name, and why any named one is not
    among them."""
    if not names:
        return {}, ["no cross-sell model is named"]
    try:
        loaded = load_champions(list(names), settings=settings, tracking_uri=tracking_uri)
    except RegistryError as exc:
        return {}, [f"the cross-sell champions could not be loaded: {exc}"]
    found: dict[str, tuple[PropensityModel, str]] = {}
    missing: list[str] = []
    for name in names:
        if name not in loaded:
            missing.append(f"no champion of {name!r} is registered")
            continue
        model, version = loaded[name]
        if not isinstance(model, PropensityModel):
            missing.append(f"{name!r} is not a cross-sell model")
            continue
        found[name] = (model, version)
    return found, missing


def credit_views(financing: pd.DataFrame) -> dict[str, CreditView]:
    """Each client's PD (and its horizon), grade and policy decision, read from its financing
    decision (the rows of :func:`financing_decisions`): the credit-aware view the offers
    carry."""
    first = financing.drop_duplicates("client_id")
    return {
        str(c): CreditView(float(p), int(h), str(g), cast(Outcome, d))
        for c, p, h, g, d in zip(
            first["client_id"],
            first["pd"],
            first["pd_horizon_months"],
            first["grade"],
            first["decision"],
            strict=True,
        )
    }


def client_propensities(
    model: PropensityModel,
    panel: pd.DataFrame,
    *,
    predictions: PropensityPredictions | None = None,
) -> dict[str, dict[str, float]]:
    """Each client's propensity by product over a cross-sell panel (the rows the model scores:
    eligible products the client does not hold); ``predictions``: the model's of the panel, when
    the caller has them."""
    if predictions is None:
        predictions = model.predict(panel, with_reasons=False)
    propensity = predictions.propensity
    out: dict[str, dict[str, float]] = {}
    for client, product, p in zip(
        panel["client_id"].astype(str), panel[PRODUCT].astype(str), propensity, strict=True
    ):
        if not np.isnan(p):
            out.setdefault(client, {})[product] = float(p)
    return out


def cross_sell_offers(
    panel: pd.DataFrame,
    model: PropensityModel,
    as_of: date,
    views: Mapping[str, CreditView],
    scale: MasterScale,
    *,
    currency: str | None = None,
    predictions: PropensityPredictions | None = None,
    explained: int | None = None,
) -> pd.DataFrame:
    """The ranked offers of every client of ``panel`` (the model's cross-sell panel at
    ``as_of``, built with its own configuration; see the module docstring), credit-aware: each
    offer carries its client's PD, grade and (credit products) policy decision from ``views``
    (ungraded clients absent), and credit products the policy declines are left out
    (:func:`rmreco.modeling.offers.credit_aware`, as in the service's lists). ``predictions``:
    the model's of the panel, when the caller has them (see :func:`rank_offers`).

    The first ``explained`` offers of each client (every offer: None) carry their reasons as
    JSON and their codes; the others carry null in both (not explained, where ``"[]"`` says an
    offer was explained and nothing raised it: a product ranked by popularity)."""
    if explained is not None and explained < 0:
        raise ValueError(f"explained offers must be 0 or more, got {explained}")
    mapped = panel["client_id"].map({c: v.grade for c, v in views.items()}).astype(object)
    row_grades = mapped.where(mapped.notna(), None).to_numpy(dtype=object)
    ranked = rank_offers(
        model,
        panel,
        grades=row_grades,
        scale=scale,
        with_reasons=False,
        group=("client_id",),
        currency=currency,
        predictions=predictions,
    )
    ranked = credit_aware(ranked, views, model.financing_products)
    # explained after the policy's cut and the final ranks: the rows written, and the first of
    # each list only (each row's contributions are its own)
    chosen = np.flatnonzero(
        np.ones(len(ranked), dtype=bool)
        if explained is None
        else ranked["rank"].to_numpy() <= explained
    )
    texts = np.full(len(ranked), None, dtype=object)
    codes = np.full(len(ranked), None, dtype=object)
    if len(chosen):
        rows = ranked["row"].to_numpy()[chosen]
        found = model.reasons(model.encoder.transform(panel.loc[rows]), currency=currency)
        for i, text, reasons_of in zip(chosen.tolist(), reasons_json(found), found, strict=True):
            texts[i] = text
            codes[i] = [r.code for r in reasons_of]
    return pd.DataFrame(
        {
            "client_id": ranked["client_id"].to_numpy(),
            "as_of": pd.Series([as_of] * len(ranked), dtype="object"),
            PRODUCT: ranked[PRODUCT].to_numpy(),
            "propensity": ranked["propensity"].to_numpy(),
            "expected_value": ranked["expected_value"].to_numpy(),
            "rank": ranked["rank"].to_numpy(dtype=np.int64),
            "pd": ranked["pd"].to_numpy(dtype=float),
            "pd_horizon_months": pd.Series(ranked["pd_horizon_months"].to_numpy(), dtype="Int64"),
            "grade": pd.Series(ranked["grade"].to_numpy(dtype=object), dtype=object),
            "decision": pd.Series(ranked["decision"].to_numpy(dtype=object), dtype=object),
            "reasons": texts,
            "reason_codes": codes,
        }
    )


def _write_atomically(frames: Mapping[str, pd.DataFrame], folder: Path) -> None:
    """Write each frame to a temporary file in ``folder``, then rename them all into place (the
    renames, not the writes, are what a kill can fall between)."""
    staged: list[tuple[Path, Path]] = []
    try:
        for name, frame in frames.items():
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.close(handle)
            staged.append((Path(temporary), folder / name))
            frame.to_parquet(temporary, index=False)
        for written, path in staged:
            os.replace(written, path)
    except BaseException:
        for written, _ in staged:
            written.unlink(missing_ok=True)
        raise
