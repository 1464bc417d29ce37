"""The reason catalogue (every feature covered, values with their units, generated entries),
the adverse-action reasons of a decline, and a model's reasons leaving out the features that
describe the extract."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from rmreco.features import feature_names
from rmreco.features.builder import NEVER
from rmreco.features.config import FeatureConfig
from rmreco.features.cross_sell import PRODUCT, PRODUCT_FEATURES, holdings_feature_names
from rmreco.features.reasons import (
    DEFAULT_CODE,
    ENTRIES,
    POLICY_REASONS,
    direction,
    entry_for,
    explain,
    is_reason,
)
from rmreco.features.reasons.doc import END, START, render
from rmreco.modeling.adverse import PolicyReason, adverse_action_reasons
from rmreco.modeling.boosting import fit_binary_booster
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.decisioning import decide_financing
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.policy import load_policy
from rmreco.modeling.propensity_estimator import model_features
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reasons.md"
POLICY = load_policy(ROOT / "models" / "credit_policy.yaml")
TINY_PRODUCTS = ROOT / "tests" / "fixtures" / "tiny_bank" / "products.csv"


def _shipped_spec_features() -> dict[str, list[str]]:
    """Every model feature of every shipped spec (models/*.yaml), by spec file."""
    codes = pd.read_csv(TINY_PRODUCTS)["product_code"].astype(str).tolist()
    out = {}
    for path in sorted((ROOT / "models").glob("*.yaml")):
        kind = (yaml.safe_load(path.read_text()) or {}).get("kind")
        if kind == "credit_risk":
            out[path.name] = load_credit_risk_spec(path).feature_names
        elif kind == "cross_sell":
            out[path.name] = model_features(load_cross_sell_spec(path), codes)
    return out


def test_every_feature_the_builders_and_the_shipped_specs_produce_is_in_the_catalogue() -> None:
    specs = _shipped_spec_features()
    assert any("credit" in name for name in specs)
    assert any("cross_sell" in name for name in specs)
    features = {
        *feature_names(),
        *PRODUCT_FEATURES,
        PRODUCT,
        *holdings_feature_names(["OVERDRAFT", "term-loan 2"]),
        *(f for names in specs.values() for f in names),
    }
    generated = sorted(f for f in features if entry_for(f).is_generated)
    assert not generated, f"features without a catalogue entry: {generated}"


def test_codes_are_unique_and_stable_in_shape() -> None:
    codes = [e.code for e in ENTRIES] + [DEFAULT_CODE, *POLICY_REASONS]
    assert len(codes) == len(set(codes))
    assert len({e.feature for e in ENTRIES}) == len(ENTRIES)
    assert all(code.replace("_", "").isalnum() and code.isupper() for code in codes)
    assert entry_for("holds_term-loan 2").code == "HLD_TERM_LOAN_2"
    assert entry_for("months_held_OVERDRAFT").code == "MHD_OVERDRAFT"


@pytest.mark.parametrize(
    ("feature", "value", "text", "unit"),
    [
        ("dpd_3m", 45.0, "payments 45 days past due in the last 3 months", "days"),
        ("dpd_1m", 1.0, "payments 1 day past due last month", "days"),
        ("dpd_12m", 0.0, "no payment past due in the last 12 months", "days"),
        ("business_age_months", 80.0, "business founded 80 months ago (6.7 years)", "months"),
        ("sector", "I", "sector of activity: I — accommodation and food service", "NACE section"),
        ("segment", "sme", "client segment: SME", "segment"),
        ("overdraft_use_3m", 0.85, "overdraft peak use over the last 3 months: 85% of the limit "
         "on average", "%"),
        ("inflow_growth_yoy", -0.2, "inflows of the last 3 months down 20% on the same months a "
         "year earlier", "%"),
        ("months_since_dpd30", NEVER, "no payment 30+ days late on record", "months"),
        ("months_since_dpd", 4.0, "last late payment 4 months ago", "months"),
        ("overdraft_months_12m", 7.0, "in overdraft in 7 of the last 12 months", "months"),
        ("returned_payments_3m", 3.0, "3 returned payments in the last 3 months", "payments"),
        ("n_products", 1.0, "holds 1 product with the bank", "products"),
        ("employees_log", math.log1p(12), "12 employees", "employees"),
        ("fin_debt_to_ebitda", 4.2, "debt in the latest annual accounts: 4.20 times EBITDA",
         "times EBITDA"),
        ("balance_to_inflow_3m", 0.4, "average balance over the last 3 months: 0.40 months of "
         "inflows", "months of inflows"),
        ("balance_trend_6m", -0.05, "balance falling by 0.05 months of inflows a month over the "
         "last 6 months", "months of inflows a month"),
        ("inflow_trend_6m", 0.00001, "monthly inflows flat over the last 6 months", "% a month"),
        ("restructured_12m", 1.0, "a credit facility restructured in the last 12 months",
         "yes/no"),
        ("prior_default", 0.0, "no earlier default on record", "yes/no"),
    ],
)  # fmt: skip
def test_texts_say_the_value_with_its_unit(
    feature: str, value: float | str, text: str, unit: str
) -> None:
    said = explain(feature, value)
    assert said.text == text
    assert said.unit == unit
    assert said.code == entry_for(feature).code


def test_amounts_are_shown_as_amounts_in_the_data_s_currency() -> None:
    with_currency = explain("inflow_12m_log", math.log1p(1_234_000), currency="EUR")
    assert with_currency.text == "inflows over the last 12 months: 1,234,000 EUR"
    assert with_currency.unit == "EUR"
    assert with_currency.value == pytest.approx(1_234_000)
    without = explain("turnover_log", math.log1p(2_500_000))
    assert without.text == "declared annual turnover: 2,500,000"
    assert without.unit == "amount"


def test_every_entry_says_a_value_and_an_unknown_one() -> None:
    samples: dict[str, Any] = {"category": "C"}
    for entry in ENTRIES:
        value = samples.get(entry.kind, 3.0)
        said = explain(entry.feature, value, currency="EUR")
        assert "{" not in said.text
        assert said.text
        if entry.kind in ("count", "log_count", "decimal", "percent"):
            assert any(ch.isdigit() for ch in said.text), said.text
        if entry.kind == "money":
            assert said.text.endswith(" EUR")
        for unknown in (None, math.nan, np.float64("nan")):
            missing = explain(entry.feature, unknown)
            assert missing.value is None
            assert missing.text
            assert "nan" not in missing.text.lower().split()


def test_a_feature_the_catalogue_does_not_know_gets_a_generated_entry() -> None:
    said = explain("bank_internal_score", 712.0)
    assert said.code == "X_BANK_INTERNAL_SCORE"
    assert said.text == "bank_internal_score: 712.00"
    assert said.is_reason
    assert explain("bank_internal_score", None).text == "bank_internal_score: not known"
    assert explain("rating agency", "BB+").text == "rating agency: BB+"
    assert explain("rating agency", "BB+").code == "X_RATING_AGENCY"
    # the model's own description, and a name with braces, never an error
    assert explain("x1", 0.5, descriptions={"x1": "need one"}).text == "need one: 0.50"
    assert explain("odd{name}", 1.0).text == "odd{name}: 1.00"
    # a catalog product with braces or odd characters in its name and code
    held = explain("holds_{p}", 1.0, products={"{p}": "Card {gold}"})
    assert held.text == "holds Card {gold}"
    assert explain("holds_{p}", 0.0, products={"{p}": "Card {gold}"}).text == (
        "does not hold Card {gold}"
    )
    assert explain("months_held_FX", 14.0, products={"FX": "FX payments"}).text == (
        "has held FX payments for 14 months"
    )


def test_features_that_describe_the_extract_are_never_reasons() -> None:
    assert not is_reason("history_months")
    assert not is_reason("fin_age_months")
    assert not is_reason(PRODUCT)
    assert is_reason("dpd_3m")
    assert is_reason("tenure_months")
    assert is_reason("an_extra_client_column")
    assert direction(0.3, "pd") == "raises the PD"
    assert direction(-0.3, "pd") == "lowers the PD"
    assert direction(0.3, "take-up") == "raises the take-up"


def test_docs_list_the_current_catalogue() -> None:
    text = DOC.read_text()
    generated = text[text.index(START) : text.index(END) + len(END)]
    assert generated == render(), (
        "docs/reasons.md is out of date: python -m rmreco.features.reasons.doc docs/reasons.md"
    )
    for entry in ENTRIES:
        assert f"| `{entry.code}` | `{entry.feature}` |" in text


# --- adverse-action reasons ------------------------------------------------------------------


def _reason(code: str, contribution: float) -> dict[str, Any]:
    return {
        "code": code,
        "feature": code.lower(),
        "value": 1.0,
        "unit": "days",
        "direction": direction(contribution, "pd"),
        "contribution": contribution,
        "text": f"text of {code}",
    }


POLICY_DECLINE = (PolicyReason("POL_GRADE_DECLINE", "risk grade 10 is outside the appetite"),)


def test_adverse_reasons_are_one_to_four_features_that_raised_the_pd_by_contribution() -> None:
    model = [_reason(c, w) for c, w in [("A", 0.2), ("B", -0.5), ("C", 0.9), ("D", 0.0)]]
    model += [_reason(c, w) for c, w in [("E", 0.4), ("F", 0.3), ("G", 0.1)]]
    adverse = adverse_action_reasons(
        in_default=False, model_reasons=model, policy_reasons=POLICY_DECLINE
    )
    assert [r.code for r in adverse] == ["C", "E", "F", "A"]
    assert all(r.contribution is not None and r.contribution > 0 for r in adverse)
    assert all(r.source == "model" and r.text for r in adverse)
    assert adverse[0].to_dict()["code"] == "C"
    one = adverse_action_reasons(
        in_default=False, model_reasons=model[:1], policy_reasons=POLICY_DECLINE
    )
    assert [r.code for r in one] == ["A"]
    two = adverse_action_reasons(
        in_default=False, model_reasons=model, policy_reasons=POLICY_DECLINE, limit=2
    )
    assert len(two) == 2
    with pytest.raises(ValueError, match="1 to 4"):
        adverse_action_reasons(
            in_default=False, model_reasons=model, policy_reasons=POLICY_DECLINE, limit=5
        )


def test_a_client_in_default_gets_the_default_as_its_reason() -> None:
    adverse = adverse_action_reasons(
        in_default=True,
        model_reasons=[_reason("PRD01", 0.7)],
        policy_reasons=(PolicyReason("POL_DEFAULT", "the client is in default"),),
    )
    assert [(r.code, r.source) for r in adverse] == [(DEFAULT_CODE, "default")]
    assert "in default" in adverse[0].text


def test_a_decline_no_feature_explains_states_its_policy_rules() -> None:
    lowering = [_reason("A", -0.2), _reason("B", 0.0)]
    rules = (
        PolicyReason("POL_DPD3M", "payments 45 days past due in the last 3 months"),
        PolicyReason("POL_YOUNG", "the business is 3 months old; the minimum is 6"),
    )
    adverse = adverse_action_reasons(in_default=False, model_reasons=lowering, policy_reasons=rules)
    assert [(r.code, r.source, r.contribution) for r in adverse] == [
        ("POL_DPD3M", "policy", None),
        ("POL_YOUNG", "policy", None),
    ]


FEATURES: dict[str, Any] = {
    "segment": "sme",
    "business_age_months": 80.0,
    "inflow_12m_log": math.log1p(2_000_000),
    "dpd_3m": 0.0,
    "dpd_12m": 0.0,
    "restructured_12m": 0.0,
}


def _decide(**changes: Any) -> Any:
    args: dict[str, Any] = {
        "features": FEATURES,
        "segment": "sme",
        "declared_turnover": 1_800_000.0,
        "in_default": False,
        "held_products": frozenset(),
        "pd": 0.4,
        "pd_horizon_months": 12,
        "grade": "10",
        "reasons": [_reason(c, w) for c, w in [("A", 0.5), ("B", 0.4), ("C", 0.3)]],
        "catalog": [],
        "policy": POLICY,
        "propensities": None,
    }
    return decide_financing(**(args | changes))


def test_financing_decisions_carry_coded_policy_and_adverse_reasons() -> None:
    declined = _decide()
    assert declined.decision.outcome == "decline"
    assert [r.code for r in declined.decision.policy_reasons] == ["POL_GRADE_DECLINE"]
    assert [r.code for r in declined.adverse_action_reasons] == ["A", "B", "C"]
    approved = _decide(grade="3", pd=0.003)
    assert approved.decision.outcome == "approve"
    assert approved.adverse_action_reasons == ()
    in_default = _decide(in_default=True, reasons=[_reason("PRD01", 0.9)])
    assert in_default.grade == "D"
    assert (in_default.pd, in_default.pd_horizon_months) == (1.0, 12)
    assert [r.code for r in in_default.adverse_action_reasons] == [DEFAULT_CODE]
    # the default is its one reason: no feature such as "number of products held"
    assert [r["code"] for r in in_default.reasons] == [DEFAULT_CODE]
    # a hard-rule decline of a low-PD client whose features all lowered the PD
    young = _decide(
        grade="2",
        pd=0.002,
        features=FEATURES | {"business_age_months": 3.0},
        reasons=[_reason("A", -0.1)],
    )
    assert young.decision.outcome == "decline"
    assert [(r.code, r.source) for r in young.adverse_action_reasons] == [("POL_YOUNG", "policy")]


# --- a model's reasons -----------------------------------------------------------------------


def test_a_model_never_gives_history_months_as_a_reason() -> None:
    rng = np.random.default_rng(0)
    n = 6000
    frame = pd.DataFrame(
        {
            "history_months": rng.integers(1, 30, n).astype(float),
            "dpd_3m": rng.choice([0.0, 0.0, 0.0, 15.0, 45.0], n),
            "turnover_log": rng.normal(14, 1, n),
        }
    )
    # default risk driven mostly by a short history: the model leans on it
    logit = -3 + 2.5 * (frame["history_months"] < 6) + 0.03 * frame["dpd_3m"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    features = list(frame.columns)
    encoder = FeatureEncoder.fit(frame, features)
    X = encoder.transform(frame)
    booster = fit_binary_booster(
        X[:4000],
        y[:4000],
        X[4000:],
        y[4000:],
        encoder=encoder,
        params={"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50},
        num_boost_round=60,
        early_stopping_rounds=None,
        seed=1,
    )
    model = CreditRiskModel(
        kind="lightgbm",
        config=FeatureConfig(
            family="credit_risk", horizon_months=12, segments=("sme",), features=tuple(features)
        ),
        encoder=encoder,
        booster=booster,
        calibrator=Calibrator.fit(np.asarray(booster.predict(X[4000:], raw_score=True)), y[4000:]),
        scale=MasterScale.from_bands([("1", 0.01), ("2", 0.05), ("3", None)]),
        top_reasons=3,
    )
    young = frame.assign(history_months=2.0, dpd_3m=45.0).head(50)
    contrib = model.contributions(encoder.transform(young))
    assert (contrib[:, 0] > 0).all()  # history_months did raise these PDs
    result = model.predict(young, currency="EUR")
    assert all(result.reasons)
    for row in result.reasons:
        assert "history_months" not in [r.feature for r in row]
        assert [r.contribution for r in row] == sorted((r.contribution for r in row), reverse=True)
        for reason in row:
            assert reason.contribution > 0
            assert reason.direction == "raises the PD"
            assert reason.code == entry_for(reason.feature).code
    dpd = next(r for r in result.reasons[0] if r.feature == "dpd_3m")
    assert dpd.to_dict() == {
        "code": "DPD03",
        "feature": "dpd_3m",
        "value": 45.0,
        "unit": "days",
        "direction": "raises the PD",
        "contribution": round(dpd.contribution, 4),
        "text": "payments 45 days past due in the last 3 months",
    }
