"""The statement of a decline: at most four adverse-action reasons in all, the knock-out rules
that declined the client first (they are why), then, when the grade declined it, the features
that raised its PD, none of them repeating a fact a stated rule gives.

Before, the knock-out rules stayed apart in ``decision_reasons`` and the adverse reasons were up
to four features: a decline by grade and recent arrears stated five reasons (the rule and four
features), and a knock-out decline of an accepted grade stated features that did not decline it.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from rmreco.features.reasons import POL_DPD3M, POL_GRADE_DECLINE, POL_YOUNG, direction
from rmreco.modeling.adverse import MAX_ADVERSE_REASONS
from rmreco.modeling.decisioning import FinancingDecision, decide_financing
from rmreco.modeling.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "models" / "credit_policy.yaml")
FEATURES: dict[str, Any] = {
    "segment": "sme",
    "business_age_months": 80.0,
    "inflow_12m_log": math.log1p(2_000_000),
    "dpd_3m": 0.0,
    "dpd_12m": 0.0,
    "restructured_12m": 0.0,
}


def _reason(code: str, contribution: float, feature: str | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "feature": feature or code.lower(),
        "value": 1.0,
        "unit": "days",
        "direction": direction(contribution, "pd"),
        "contribution": contribution,
        "text": f"text of {code}",
    }


def _decide(
    grade: str, reasons: list[dict[str, Any]], **features: float | None
) -> FinancingDecision:
    return decide_financing(
        features=FEATURES | features,
        segment="sme",
        declared_turnover=1_800_000.0,
        in_default=False,
        held_products=frozenset(),
        pd=0.4,
        pd_horizon_months=12,
        grade=grade,
        reasons=reasons,
        catalog=[],
        policy=POLICY,
        propensities=None,
    )


FOUR_RAISING = [_reason(c, w) for c, w in [("A", 0.5), ("B", 0.4), ("C", 0.3), ("D", 0.2)]]


def test_a_grade_and_arrears_decline_states_four_reasons_the_rule_first() -> None:
    # the case that stated five: the arrears rule and the four features that raised the PD
    declined = _decide("10", FOUR_RAISING, dpd_3m=95.0)
    assert declined.decision.outcome == "decline"
    assert [r.code for r in declined.decision.policy_reasons] == [POL_GRADE_DECLINE, POL_DPD3M]
    assert [(r.code, r.source) for r in declined.adverse_action_reasons] == [
        (POL_DPD3M, "policy"),
        ("A", "model"),
        ("B", "model"),
        ("C", "model"),
    ]


def test_a_knock_out_decline_of_an_accepted_grade_states_the_rule_not_the_features() -> None:
    young = _decide("3", FOUR_RAISING, business_age_months=3.0)
    assert young.decision.outcome == "decline"
    assert [(r.code, r.source) for r in young.adverse_action_reasons] == [(POL_YOUNG, "policy")]
    both = _decide("8", FOUR_RAISING, business_age_months=3.0, dpd_3m=45.0)
    assert [r.code for r in both.adverse_action_reasons] == [POL_DPD3M, POL_YOUNG]


def test_a_fact_a_stated_rule_gives_is_not_repeated_as_a_feature() -> None:
    reasons = [_reason("DPD03", 0.9, feature="dpd_3m"), *FOUR_RAISING]
    declined = _decide("10", reasons, dpd_3m=45.0)
    assert [r.code for r in declined.adverse_action_reasons] == [POL_DPD3M, "A", "B", "C"]


def test_no_decline_states_more_than_four_reasons_and_every_knock_out_rule_comes_first() -> None:
    features = [f"F{i}" for i in range(10)]  # a spec may ask for up to ten reasons per PD
    for grade, dpd, age, n in itertools.product(
        ("3", "7", "9", "10"), (0.0, 45.0), (80.0, 3.0), range(len(features) + 1)
    ):
        reasons = [_reason(code, 1.0 - k / 20) for k, code in enumerate(features[:n])]
        answer = _decide(grade, reasons, dpd_3m=dpd, business_age_months=age)
        if answer.decision.outcome != "decline":
            assert answer.adverse_action_reasons == ()
            continue
        stated = [r.code for r in answer.adverse_action_reasons]
        rules = [r.code for r in answer.decision.policy_reasons if r.knock_out]
        case = (grade, dpd, age, n, stated)
        assert 1 <= len(stated) <= MAX_ADVERSE_REASONS, case
        assert stated[: len(rules)] == rules, case
        assert len(set(stated)) == len(stated), case
