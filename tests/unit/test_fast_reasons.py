"""The vectorised reasons (``build_reasons``, ``reasons_json``) give exactly what the per-row
reading gave: the same reasons in the same order, and the same JSON text, on random
contribution matrices with ties, NaNs and signed zeros; a propensity model explains only the
rows it ranks by its model, and the ranked list explains only the rows it keeps, with the same
text as explaining every row; financing products read once decide as the catalog read per
client."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmreco.features.config import FeatureConfig
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.reasons import Target, is_reason
from rmreco.modeling.boosting import fit_binary_booster
from rmreco.modeling.calibration import Calibrator, sigmoid
from rmreco.modeling.credit_model import (
    MIN_CONTRIBUTION,
    Reason,
    build_reasons,
    make_reason,
    reasons_json,
)
from rmreco.modeling.decisioning import decide_financing, financing_products
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.policy import load_policy
from rmreco.modeling.propensity import POOLED, ProductTerms, PropensityModel, rank_offers

#: Features of every kind the catalogue reads, one it generates (``holds_``), one it does not
#: know, one that is never a reason, and two categories.
FEATURES = (
    "dpd_3m",
    "turnover_log",
    "intl_share_3m",
    "inflow_growth_yoy",
    "balance_trend_6m",
    "history_months",
    "holds_term_loan",
    "bank_score",
    "sector",
    "segment",
)
CATEGORIES = {"sector": ("C", "G", "Z{x}"), "segment": ("corporate", "sme")}


def _value_of(name: str, code: float) -> float | str | None:
    if name in CATEGORIES:
        return None if np.isnan(code) else CATEGORIES[name][int(code)]
    return None if np.isnan(code) else code


def _per_row(
    X: np.ndarray,
    contrib: np.ndarray,
    eligible: np.ndarray,
    top: int,
    *,
    target: Target,
    currency: str | None,
    products: Mapping[str, str] | None,
    descriptions: Mapping[str, str] | None,
    value_of: Callable[[str, float], float | str | None] = _value_of,
    features: Sequence[str] = FEATURES,
) -> list[list[Reason]]:
    """The reasons as the models read them row by row before (the reference)."""
    masked = np.where(eligible, contrib, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :top]
    out: list[list[Reason]] = []
    for i in range(len(X)):
        row: list[Reason] = []
        for j in order[i]:
            c = float(masked[i, j])
            if c <= MIN_CONTRIBUTION:
                break
            name = features[j]
            row.append(
                make_reason(
                    name,
                    value_of(name, float(X[i, j])),
                    c,
                    target=target,
                    currency=currency,
                    products=products,
                    descriptions=descriptions,
                )
            )
        out.append(row)
    return out


def _matrices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoded values and contributions with repeats, ties, NaNs, zeros and signed zeros."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(0, 2, (n, len(FEATURES))), 1)
    X[:, FEATURES.index("dpd_3m")] = rng.choice([0.0, 15.0, 45.0, np.nan], n)
    X[:, FEATURES.index("turnover_log")] = rng.choice([0.0, 12.5, 14.25, np.nan], n)
    X[:, FEATURES.index("holds_term_loan")] = rng.choice([0.0, 1.0, np.nan], n)
    X[:, FEATURES.index("balance_trend_6m")] = rng.choice([0.0, -0.0, 0.0004, -0.05], n)
    X[:, FEATURES.index("bank_score")] = rng.choice([0.0, -0.0, 1.005, np.nan], n)
    X[:, FEATURES.index("sector")] = rng.choice([0.0, 1.0, 2.0, np.nan], n)
    X[:, FEATURES.index("segment")] = rng.choice([0.0, 1.0, np.nan], n)
    # few distinct contributions: ties within rows are common
    contrib = rng.choice([-0.3, -1e-7, 0.0, 5e-7, 1e-6, 2e-6, 0.05, 0.12345, 0.2, 0.2], (n, 10))
    contrib[rng.random((n, 10)) < 0.03] = np.nan
    return X, contrib


@pytest.mark.parametrize("top", [0, 1, 3, 12])
@pytest.mark.parametrize("target", ["pd", "take-up"])
def test_vectorised_reasons_are_the_per_row_reasons(top: int, target: Target) -> None:
    X, contrib = _matrices(3000, seed=top)
    eligible = np.array([is_reason(name) for name in FEATURES])
    assert not eligible.all()  # history_months is never a reason
    currency = "EUR" if target == "pd" else None
    products = {"term_loan": "Term loan {x}"}
    descriptions = {"bank_score": 'the bank\'s "score"'}
    fast = build_reasons(
        X,
        contrib,
        eligible,
        top,
        features=FEATURES,
        value_of=_value_of,
        target=target,
        currency=currency,
        products=products,
        descriptions=descriptions,
    )
    slow = _per_row(
        X,
        contrib,
        eligible,
        top,
        target=target,
        currency=currency,
        products=products,
        descriptions=descriptions,
    )
    # repr: NaN contributions compare by their text, -0.0 is told from 0.0
    assert [[repr(r) for r in row] for row in fast] == [[repr(r) for r in row] for row in slow]
    if top:
        assert any(len(row) == min(top, 3) for row in fast)
        assert any(not row for row in fast)
    assert reasons_json(fast) == [json.dumps([r.to_dict() for r in row]) for row in slow]


def test_reasons_json_is_json_dumps_of_the_reasons() -> None:
    def reason(value: float | str | None, contribution: float, text: str = "t") -> Reason:
        return Reason("C1", "f", value, "EUR", "raises the PD", contribution, text)

    rows = [
        [],
        [reason(0.0, 0.5), reason(-0.0, 0.5)],  # the same text, values written differently
        [reason(1.0, 0.25), reason("1.0", 0.25), reason(None, 0.25)],
        [reason(2.5, float("nan")), reason(2.5, float("inf")), reason(2.5, np.float64(0.123456))],
        [reason(3.0, 0.1, 'sector G — trade, "quoted" {braces} \\ \n')],
        [reason(3.123456789, 1e-5), reason(3.123456789, 0.1 + 0.2)],
        [Reason("C2", "g", 4.0, None, "lowers the take-up", 1, "int contribution")],
    ]
    assert reasons_json(rows) == [json.dumps([r.to_dict() for r in row]) for row in rows]


# --- a propensity model ---------------------------------------------------------------------

CATALOG = {
    "loan": ProductTerms("loan", "Loan", "financing", margin_rate=0.02, limit_turnover_share=0.2),
    "payroll": ProductTerms("payroll", "Payroll", "service", annual_fee=900.0),
    "fx": ProductTerms("fx", "FX", "service", annual_fee=3500.0),
}
XS_FEATURES = ["x1", "x2", "holds_payroll", "history_months", "segment", PRODUCT]


def _offers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i // 3:04d}" for i in range(n)],
            "month": pd.Timestamp("2024-01-01"),
            "x1": np.round(rng.normal(0, 1, n), 1),
            "x2": rng.normal(0, 1, n),
            "holds_payroll": rng.integers(0, 2, n).astype(float),
            "history_months": rng.integers(1, 40, n).astype(float),
            "segment": rng.choice(["sme", "corporate"], n),
            PRODUCT: np.tile(["loan", "payroll", "fx"], n // 3 + 1)[:n],
            "turnover_log": np.log1p(rng.uniform(5e5, 5e6, n)),
        }
    )
    logit = np.where(
        frame[PRODUCT] == "loan",
        -2 + 1.5 * frame["x1"] + 0.05 * frame["history_months"],
        np.where(frame[PRODUCT] == "fx", -2.5 + 1.5 * frame["x2"], -2 - frame["holds_payroll"]),
    )
    return frame, (rng.random(n) < sigmoid(logit)).astype(int)


@pytest.fixture(scope="module")
def model() -> PropensityModel:
    frame, y = _offers(6000, seed=1)
    encoder = FeatureEncoder.fit(frame, XS_FEATURES, categorical=("segment", PRODUCT))
    X = encoder.transform(frame)
    booster = fit_binary_booster(
        X[:4500], y[:4500], X[4500:], y[4500:], encoder=encoder,
        params={"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 40, "num_threads": 1},
        num_boost_round=60, early_stopping_rounds=None, seed=3,
    )  # fmt: skip
    raw = np.asarray(booster.predict(X[4500:], raw_score=True))
    return PropensityModel(
        kind="stacked",
        config=FeatureConfig(
            family="cross_sell",
            horizon_months=3,
            segments=("sme", "corporate"),
            features=tuple(encoder.features),
        ),
        encoder=encoder,
        boosters={POOLED: booster},
        calibrators={POOLED: Calibrator.fit(raw, y[4500:])},
        catalog=CATALOG,
        descriptions={"x1": "need one", "x2": "need two"},
        max_credit_grade="2",
        ungraded="exclude",
        top_reasons=3,
        popularity={"payroll": 0.05},
    )


def _model_per_row(model: PropensityModel, X: np.ndarray) -> list[list[Reason]]:
    """The propensity model's reasons as read before: every row's TreeSHAP, popularity rows
    and unknown products without reasons."""
    contrib = np.nan_to_num(model.contributions(X)[:, :-1], nan=0.0)
    flat = np.isin(model.product_codes(X), list(model.popularity))
    contrib[flat] = 0.0
    eligible = np.array([is_reason(name) for name in model.features])
    return _per_row(
        X,
        contrib,
        eligible,
        model.top_reasons,
        target="take-up",
        currency="EUR",
        products={code: terms.name for code, terms in model.catalog.items()},
        descriptions=model.descriptions,
        value_of=model._value,
        features=model.features,
    )


def test_a_propensity_model_explains_only_the_products_it_ranks(model: PropensityModel) -> None:
    frame, _ = _offers(900, seed=2)
    frame.loc[frame.index[::10], PRODUCT] = "unknown"
    X = model.encoder.transform(frame)
    reasons = model.reasons(X, currency="EUR")
    assert reasons == _model_per_row(model, X)
    codes = frame[PRODUCT].to_numpy()
    assert all(not reasons[i] for i in np.flatnonzero(np.isin(codes, ["payroll", "unknown"])))
    assert any(reasons[i] for i in np.flatnonzero(codes == "loan"))


def test_ranked_offers_explain_the_rows_they_keep_as_every_row_was(
    model: PropensityModel,
) -> None:
    frame, _ = _offers(900, seed=3)
    grades = np.array([["1", "3", None][i % 3] for i in range(len(frame) // 3) for _ in range(3)])
    scale = MasterScale.from_bands([("1", 0.01), ("2", 0.03), ("3", None)])
    ranked = rank_offers(
        model, frame, grades=grades, scale=scale, with_reasons=True, currency="EUR"
    )
    assert len(ranked) < len(frame)  # the credit gate dropped some loans
    every = _model_per_row(model, model.encoder.transform(frame))
    expected = [json.dumps([r.to_dict() for r in every[row]]) for row in ranked["row"]]
    assert list(ranked["reasons"]) == expected
    assert list(ranked["reason_codes"]) == [[r.code for r in every[row]] for row in ranked["row"]]
    # the caller's predictions give the same list
    given = model.predict(frame, with_reasons=False)
    again = rank_offers(
        model,
        frame,
        grades=grades,
        scale=scale,
        with_reasons=True,
        currency="EUR",
        predictions=given,
    )
    pd.testing.assert_frame_equal(again, ranked)
    with pytest.raises(ValueError, match="predictions of 900 rows for a frame of 3 rows"):
        rank_offers(model, frame.head(3), predictions=given)


# --- financing decisions on one catalog ------------------------------------------------------

POLICY = load_policy(Path(__file__).resolve().parents[2] / "models" / "credit_policy.yaml")
FINANCING_CATALOG: list[dict[str, object]] = [
    {"product_code": "term_loan", "name": "Term loan", "kind": "financing", "segments": "sme",
     "lgd": 0.45, "margin_rate": 0.02, "max_tenor_months": 60, "limit_turnover_share": 0.25,
     "min_age_months": 12},
    {"product_code": "overdraft", "name": "Overdraft", "kind": "financing", "segments": "sme",
     "lgd": None, "margin_rate": 0.03, "max_tenor_months": None, "limit_turnover_share": 0.1},
    {"product_code": "payroll", "name": "Payroll", "kind": "service", "annual_fee": 900.0},
]  # fmt: skip


def test_financing_products_read_once_decide_as_the_catalog_read_per_client() -> None:
    products = financing_products(FINANCING_CATALOG, POLICY)
    assert [p.code for p in products] == ["term_loan", "overdraft"]
    assert products[1].assumed == ("lgd", "max_tenor_months", "min_age_months")
    features = {
        "inflow_12m_log": float(np.log1p(4e6)),
        "business_age_months": 40.0,
        "dpd_3m": 0.0,
        "dpd_12m": 0.0,
    }
    decided: list[tuple[str, int]] = []
    for grade, pd_value in (("3", 0.004), ("6", 0.03), ("9", 0.2)):
        answers = [
            decide_financing(
                features=features,
                segment="sme",
                declared_turnover=3e6,
                in_default=False,
                held_products=frozenset({"overdraft"}),
                pd=pd_value,
                pd_horizon_months=12,
                grade=grade,
                reasons=[],
                catalog=FINANCING_CATALOG,
                policy=POLICY,
                propensities={"term_loan": 0.1},
                products=given,
            )
            for given in (None, products)
        ]
        assert answers[0] == answers[1]
        decided.append((answers[0].decision.outcome, len(answers[0].options)))
    assert decided[0] == ("approve", 2)
    assert decided[-1] == ("decline", 0)
