"""This module owns the one credit-aware view of cross-sell offers that batch scoring and the
service share: each offer carries its client's PD and grade from the credit model of the
client's segment, each credit product's offer the policy's decision for that client, and a
credit product is never suggested to a client the policy would decline."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmreco.features.cross_sell import PRODUCT
from rmreco.modeling.decisioning import ClientFacts, Outcome, decide, graded
from rmreco.modeling.policy import CreditPolicy


@dataclass(frozen=True)
class CreditView:
    """A client's credit standing as the offers show it: the PD of a default within
    ``pd_horizon_months`` (its credit model's label horizon), grade and policy decision."""

    pd: float
    pd_horizon_months: int
    grade: str
    decision: Outcome


def credit_view(
    *,
    features: Mapping[str, Any],
    segment: str,
    declared_turnover: float | None,
    in_default: bool,
    pd: float,
    pd_horizon_months: int,
    grade: str,
    policy: CreditPolicy,
) -> CreditView:
    """The PD, grade and policy decision of one client, by the same rules as its financing
    answer (:func:`rmreco.modeling.decisioning.decide`): a client in default is graded D and
    declined whatever the model says."""
    probability, grade = graded(pd, grade, in_default=in_default)
    facts = ClientFacts.from_features(
        features, segment=segment, declared_turnover=declared_turnover, in_default=in_default
    )
    return CreditView(probability, pd_horizon_months, grade, decide(grade, facts, policy).outcome)


def credit_aware(
    ranked: pd.DataFrame,
    views: Mapping[str, CreditView],
    financing: Collection[str],
    *,
    group: Sequence[str] = ("client_id",),
) -> pd.DataFrame:
    """``ranked`` offers (rows with ``client_id``, ``product_code`` and ``rank`` within
    ``group``) joined to their client's credit view, credit products of clients the policy
    declines left out, and ranks renumbered within ``group`` in the order given.

    Every offer of a graded client carries its PD (``pd``) and its horizon in months
    (``pd_horizon_months``) and grade; ``decision`` is set on credit
    products only (the policy decides credit, not services). Offers of ungraded clients (no
    credit model serves their segment) keep null PD, grade and decision; whether their credit
    products are offered at all is the cross-sell model's rule (``ungraded`` in its spec).
    """
    out = ranked.copy()
    clients = out["client_id"].astype(str).to_numpy()
    found = [views.get(c) for c in clients]
    out["pd"] = np.array([np.nan if v is None else v.pd for v in found], dtype=float)
    out["pd_horizon_months"] = pd.Series(
        [None if v is None else v.pd_horizon_months for v in found], index=out.index, dtype="Int64"
    )
    out["grade"] = pd.Series(
        [None if v is None else v.grade for v in found], index=out.index, dtype=object
    )
    is_credit = out[PRODUCT].astype(str).isin(list(financing)).to_numpy()
    decision = np.array([None if v is None else v.decision for v in found], dtype=object)
    decision[~is_credit] = None
    out["decision"] = pd.Series(decision, index=out.index, dtype=object)
    out = out[~(is_credit & (decision == "decline"))]
    if "rank" in out.columns and len(out):
        out["rank"] = out.groupby(list(group), sort=False).cumcount() + 1
    return out.reset_index(drop=True)
