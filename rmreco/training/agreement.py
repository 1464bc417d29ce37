"""This module owns how well an order of financing options agrees with a known truth of what
each client is likely to take (the synthetic bank's exact take-up probabilities, or any
observed take-up a bank holds): NDCG@k of the options' order, beside the order by expected
profit alone (margin x limit), the order the options had before they weighed the client's
propensity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from rmreco.config import Settings
from rmreco.data.partitions import part_path
from rmreco.domain.contract import TRUTH_CROSS_SELL, TRUTH_DIR
from rmreco.features import FeatureInputs
from rmreco.features.cross_sell import PRODUCT
from rmreco.modeling.policy import load_policy
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.spec import credit_specs
from rmreco.training.registry import RegistryError
from rmreco.training.scoring import (
    client_propensities,
    financing_decisions,
    load_credit_models,
    scored_clients,
)


def ndcg_at_k(relevance_in_order: Sequence[float], k: int = 3) -> float | None:
    """Normalised discounted cumulative gain of the first ``k`` items of an order, given each
    item's relevance in that order (graded relevance, gain = relevance, discount log2(rank+1)).
    None when no item is relevant (the order cannot be judged)."""
    rel = np.asarray(relevance_in_order, dtype=float)
    if rel.size == 0 or not np.any(rel > 0):
        return None
    discounts = 1.0 / np.log2(np.arange(2, min(k, rel.size) + 2))
    dcg = float(np.sum(rel[:k] * discounts))
    ideal = float(np.sum(np.sort(rel)[::-1][:k] * discounts))
    return dcg / ideal


@dataclass(frozen=True)
class Agreement:
    """NDCG@k of two orders of the same clients' options against the truth."""

    k: int
    clients: int
    #: the options' order (expected profit x propensity, as served)
    ranked: float
    #: the options ordered by expected annual profit alone (margin x limit)
    by_profit: float
    #: distinct orders among the clients judged (every client the same order: 1)
    distinct_orders: int

    def lines(self) -> list[str]:
        return [
            f"clients judged (two or more options, some true take-up): {self.clients:,}",
            f"NDCG@{self.k} of the served order (profit x propensity): {self.ranked:.3f}",
            f"NDCG@{self.k} of the order by expected profit (margin x limit): {self.by_profit:.3f}",
            f"distinct orders among these clients: {self.distinct_orders:,}",
        ]


def financing_agreement(financing: pd.DataFrame, truth: pd.DataFrame, k: int = 3) -> Agreement:
    """NDCG@``k`` of each client's financing options against ``truth``, in the served order
    (``rank``) and by ``expected_annual_profit``, averaged over clients with two or more
    options of which some has a true take-up above zero.

    ``financing`` holds the rows of batch scoring's ``financing.parquet`` (``client_id``,
    ``as_of``, ``rank``, ``product_code``, ``expected_annual_profit``); ``truth`` holds
    ``client_id``, ``month``, ``product_code`` and ``p_3m`` (the probability the client takes
    the product in the next three months).

    Raises:
        ValueError: no client can be judged.
    """
    options = financing.dropna(subset=[PRODUCT]).copy()
    options["month"] = pd.to_datetime(options["as_of"])
    truth = truth.assign(
        client_id=truth["client_id"].astype(str),
        month=pd.to_datetime(truth["month"]),
        **{PRODUCT: truth[PRODUCT].astype(str)},
    )
    options["client_id"] = options["client_id"].astype(str)
    joined = options.merge(
        truth[["client_id", "month", PRODUCT, "p_3m"]],
        on=["client_id", "month", PRODUCT],
        how="left",
    )
    joined["p_3m"] = joined["p_3m"].fillna(0.0)
    ranked, by_profit, orders = [], [], set()
    for _, group in joined.groupby("client_id", sort=False):
        if len(group) < 2:
            continue
        served = group.sort_values("rank")
        a = ndcg_at_k(served["p_3m"].tolist(), k)
        if a is None:
            continue
        profit = group.sort_values(
            ["expected_annual_profit", PRODUCT], ascending=[False, True], kind="stable"
        )
        b = ndcg_at_k(profit["p_3m"].tolist(), k)
        assert b is not None  # the same relevances
        ranked.append(a)
        by_profit.append(b)
        orders.add(tuple(served[PRODUCT]))
    if not ranked:
        raise ValueError("no client has two or more options with some true take-up to judge")
    return Agreement(
        k=k,
        clients=len(ranked),
        ranked=float(np.mean(ranked)),
        by_profit=float(np.mean(by_profit)),
        distinct_orders=len(orders),
    )


def agreement_on_truth(
    data: Path,
    inputs: FeatureInputs,
    model: PropensityModel,
    month: date,
    *,
    settings: Settings,
    tracking_uri: str | None,
    part: int | None = None,
) -> tuple[Agreement | None, str]:
    """The financing order's agreement (:func:`financing_agreement`) at ``month`` when ``data``
    carries a truth of take-up (a synthetic bank's ``truth/cross_sell``): each client of
    ``inputs`` in a credit champion's segments decided by batch scoring's own function, the
    options weighted by ``model``'s propensities. With ``part``, ``inputs`` are that part of a
    client-partitioned ``data``, judged against the truth of that part. None and why when it
    cannot be measured (no truth, no credit champion for the model's segments, no client to
    judge)."""
    path = (
        data / TRUTH_DIR / f"{TRUTH_CROSS_SELL}.parquet"
        if part is None
        else part_path(data, f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}", part)
    )
    if not path.exists():
        return None, "the data holds no truth of take-up (only a synthetic bank does)"
    names = [
        s.name
        for s in credit_specs(settings.resolved_models_dir)
        if set(s.segments) & set(model.config.segments)
    ]
    try:
        credit = load_credit_models(names, settings=settings, tracking_uri=tracking_uri)
    except RegistryError as exc:
        return None, f"the credit champions could not be loaded: {exc}"
    if not credit:
        return None, "no credit champion grades this model's segments yet"
    scored = scored_clients(credit, inputs, [month], with_reasons=False)
    panel = model.config.cross_sell_panel(inputs, months=[month])
    financing = financing_decisions(
        scored, inputs, month, load_policy(settings.policy_path), client_propensities(model, panel)
    )
    truth = pd.read_parquet(path, columns=["client_id", "month", PRODUCT, "p_3m"])
    try:
        found = financing_agreement(financing, truth)
    except ValueError as exc:
        return None, str(exc)
    names_used = ", ".join(f"{c.name} v{c.version}" for c in credit)
    where = (
        "" if part is None else f" (the clients of part {part}: the model was trained on a cluster)"
    )
    return found, f"at {month:%Y-%m}, clients graded by {names_used}{where}"
