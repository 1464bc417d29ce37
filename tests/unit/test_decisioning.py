"""Decisioning: the IRB risk weight against published values and a by-hand computation, prices,
limits, the policy decision and the ranked options on hand-made clients."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from scipy.stats import norm

from rmreco.domain.errors import ConfigurationError, PolicyCurrencyError
from rmreco.modeling.decisioning import ClientFacts, Product, Request, decide, financing_options
from rmreco.modeling.policy import load_policy
from rmreco.modeling.pricing import annuity_principal, irb_capital, price

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "models" / "credit_policy.yaml")


# Risk weights of the Basel II IRB corporate function, LGD 45%, M 2.5 years, as tabulated in the
# BCBS "Explanatory Note on the Basel II IRB Risk Weight Functions" (2005).
@pytest.mark.parametrize(
    ("pd_value", "risk_weight"),
    [
        (0.0003, 14.44),
        (0.001, 29.65),
        (0.0025, 49.47),
        (0.01, 92.32),
        (0.02, 114.86),
        (0.05, 149.86),
        (0.1, 193.09),
        (0.2, 238.23),
    ],
)
def test_corporate_risk_weight_matches_the_published_table(
    pd_value: float, risk_weight: float
) -> None:
    k = irb_capital(pd_value, 0.45, 2.5, None, pd_floor=0.0003)
    assert k * 12.5 * 100 == pytest.approx(risk_weight, abs=0.02)


def _by_hand(pd_value: float, lgd: float, m: float, s: float) -> float:
    """The published formula written out once more, with scipy's normal distribution."""
    w = (1 - math.exp(-50 * pd_value)) / (1 - math.exp(-50))
    r = 0.12 * w + 0.24 * (1 - w) - 0.04 * (1 - (min(max(s, 5), 50) - 5) / 45)
    b = (0.11852 - 0.05478 * math.log(pd_value)) ** 2
    n = norm.cdf(norm.ppf(pd_value) / math.sqrt(1 - r) + math.sqrt(r / (1 - r)) * norm.ppf(0.999))
    return (lgd * n - pd_value * lgd) / (1 - 1.5 * b) * (1 + (m - 2.5) * b)


@pytest.mark.parametrize(
    ("pd_value", "lgd", "m", "s"),
    [(0.01, 0.45, 2.5, 5), (0.03, 0.35, 1.0, 20), (0.002, 0.6, 5.0, 49), (0.15, 0.45, 3.0, 2)],
)
def test_sme_firm_size_adjustment_by_hand(pd_value: float, lgd: float, m: float, s: float) -> None:
    assert irb_capital(pd_value, lgd, m, s) == pytest.approx(
        _by_hand(pd_value, lgd, m, s), rel=1e-9
    )
    # smaller firms carry less capital than large corporates at the same PD
    assert irb_capital(pd_value, lgd, m, s) < irb_capital(pd_value, lgd, m, None)


def test_capital_rises_with_pd_lgd_and_maturity() -> None:
    assert irb_capital(0.02, 0.45, 2.5) > irb_capital(0.01, 0.45, 2.5)
    assert irb_capital(0.01, 0.6, 2.5) > irb_capital(0.01, 0.45, 2.5)
    assert irb_capital(0.01, 0.45, 5.0) > irb_capital(0.01, 0.45, 1.0)
    assert irb_capital(0.0, 0.45, 2.5) == irb_capital(0.0005, 0.45, 2.5)  # PD floor


def test_price_build_up() -> None:
    p = price(0.02, 0.4, 0.015, 3.0, 10.0, POLICY.pricing)
    assert p.expected_loss == pytest.approx(0.008)
    assert p.capital == pytest.approx(irb_capital(0.02, 0.4, 3.0, 10.0))
    assert p.capital_charge == pytest.approx(p.capital * POLICY.pricing.hurdle_rate)
    assert p.rate == pytest.approx(POLICY.pricing.funding_cost + 0.008 + p.capital_charge + 0.015)
    assert price(0.05, 0.4, 0.015, 3.0, 10.0, POLICY.pricing).rate > p.rate


def test_annuity_principal() -> None:
    # 10,000 a year for 5 years at 5%: 43,294.77
    assert annuity_principal(10_000, 0.05, 5) == pytest.approx(43_294.77, abs=0.01)
    assert annuity_principal(10_000, 0.0, 5) == 50_000
    assert annuity_principal(-1, 0.05, 5) == 0


FACTS = ClientFacts(
    segment="sme",
    business_age_months=80,
    annual_inflows=2_000_000,
    declared_turnover=1_800_000,
    ebitda=None,
    dpd_3m=0,
    dpd_12m=0,
    restructured_12m=False,
    in_default=False,
)
TERM_LOAN = Product(
    "term_loan",
    "Term loan",
    frozenset({"sme", "corporate"}),
    lgd=0.45,
    margin_rate=0.02,
    max_tenor_months=60,
    limit_turnover_share=0.5,
    min_age_months=24,
)
OVERDRAFT = Product(
    "overdraft",
    "Overdraft",
    frozenset({"sme"}),
    lgd=0.5,
    margin_rate=0.03,
    max_tenor_months=12,
    limit_turnover_share=0.1,
)
MORTGAGE = Product(
    "commercial_mortgage",
    "Commercial mortgage",
    frozenset({"corporate"}),
    lgd=0.25,
    margin_rate=0.012,
    max_tenor_months=240,
    limit_turnover_share=2.0,
)


def test_decisions_by_grade_and_hard_rules() -> None:
    assert decide("3", FACTS, POLICY).outcome == "approve"
    refer = decide("7", FACTS, POLICY)
    assert refer.outcome == "refer"
    assert "grade 7" in refer.reasons[0]
    assert refer.policy_reasons[0].code == "POL_GRADE_REFER"
    assert decide("9", FACTS, POLICY).outcome == "decline"
    late = decide("2", replace(FACTS, dpd_3m=45), POLICY)
    assert late.outcome == "decline"
    assert "45 days past due" in late.reasons[0]
    assert [r.code for r in late.policy_reasons] == ["POL_DPD3M"]
    assert decide("2", replace(FACTS, dpd_12m=75), POLICY).outcome == "refer"
    assert decide("2", replace(FACTS, restructured_12m=True), POLICY).outcome == "refer"
    young = decide("2", replace(FACTS, business_age_months=3), POLICY)
    assert young.outcome == "decline"
    assert "3 months old" in young.reasons[0]
    assert [r.code for r in young.policy_reasons] == ["POL_YOUNG"]
    default = decide("4", replace(FACTS, in_default=True), POLICY)
    assert default.outcome == "decline"
    assert default.reasons == ("the client is in default",)
    assert [r.code for r in default.policy_reasons] == ["POL_DEFAULT"]
    # a decline always says why, each reason with its rule's code
    for grade in ("9", "10", "D"):
        assert decide(grade, FACTS, POLICY).reasons
        assert all(r.code.startswith("POL_") for r in decide(grade, FACTS, POLICY).policy_reasons)


def test_limits_and_prices_on_a_hand_made_client() -> None:
    options = financing_options(FACTS, 0.01, "3", [TERM_LOAN, OVERDRAFT, MORTGAGE], POLICY)
    by_code = {o.product_code: o for o in options}
    assert set(by_code) == {"term_loan", "overdraft"}  # the mortgage is for corporates
    cash_flow = 2_000_000 * POLICY.limits.cash_flow_margin
    capacity = cash_flow / POLICY.limits.min_dscr
    loan = by_code["term_loan"]
    expected = min(0.5 * 2_000_000, annuity_principal(capacity, loan.price.rate, 5.0))
    assert loan.limit == pytest.approx(expected * POLICY.limits.grade_scale["3"])
    assert loan.tenor_months == 60
    assert "debt-service capacity" in loan.reasons[0]
    od = by_code["overdraft"]
    assert od.limit == pytest.approx(0.1 * 2_000_000)  # turnover caps the line
    assert od.exposure == pytest.approx(od.limit * POLICY.limits.utilisation["overdraft"])
    assert od.expected_annual_profit == pytest.approx(od.exposure * 0.03)
    # no cross-sell model: no propensity is made up, and the order is by expected profit
    assert all(o.propensity is None and o.score is None for o in options)
    assert all("no cross-sell model is served" in " ".join(o.notes) for o in options)
    profits = [o.expected_annual_profit for o in options]
    assert profits == sorted(profits, reverse=True)


def test_grade_scales_limits_and_declined_grades_get_nothing() -> None:
    good = financing_options(FACTS, 0.002, "2", [OVERDRAFT], POLICY)[0]
    weaker = financing_options(FACTS, 0.05, "7", [OVERDRAFT], POLICY)[0]
    assert weaker.limit < good.limit
    assert weaker.price.rate > good.price.rate
    assert financing_options(FACTS, 0.4, "10", [OVERDRAFT], POLICY) == []
    assert financing_options(replace(FACTS, in_default=True), 0.01, "3", [OVERDRAFT], POLICY) == []


def test_too_young_for_the_product() -> None:
    young = replace(FACTS, business_age_months=12)
    codes = [
        o.product_code for o in financing_options(young, 0.01, "3", [TERM_LOAN, OVERDRAFT], POLICY)
    ]
    assert codes == ["overdraft"]


def test_request_above_capacity_is_answered_with_the_largest_that_fits() -> None:
    sized = financing_options(FACTS, 0.01, "3", [TERM_LOAN], POLICY)[0]
    asked = financing_options(
        FACTS, 0.01, "3", [TERM_LOAN], POLICY, request=Request(amount=10_000_000, tenor_months=120)
    )[0]
    assert asked.tenor_months == 60
    assert asked.limit == pytest.approx(sized.limit)
    assert not asked.fits_request
    assert any("60 months" in n for n in asked.shortfalls)
    assert any("largest amount" in n for n in asked.shortfalls)
    assert asked.to_dict()["notes"][: len(asked.shortfalls)] == list(asked.shortfalls)
    small = financing_options(
        FACTS,
        0.01,
        "3",
        [TERM_LOAN],
        POLICY,
        propensities={"term_loan": 0.1},
        request=Request(amount=50_000, tenor_months=36),
    )[0]
    assert small.limit == 50_000
    assert small.tenor_months == 36
    assert not small.notes  # nothing to say: the request fits and the propensity is known
    assert small.fits_request
    assert "50,000 asked" in small.reasons[0]  # the limit given is the amount asked, said so


def test_an_unknown_propensity_is_said_and_ranked_after_the_known_ones() -> None:
    plain = financing_options(FACTS, 0.01, "3", [TERM_LOAN, OVERDRAFT], POLICY)
    known, unknown = plain[1].product_code, plain[0].product_code
    options = financing_options(
        FACTS, 0.01, "3", [TERM_LOAN, OVERDRAFT], POLICY, propensities={known: 0.02}
    )
    assert [o.product_code for o in options] == [known, unknown]
    first, last = options
    assert first.propensity == 0.02
    assert first.score == pytest.approx(first.expected_annual_profit * 0.02)
    assert any("x take-up propensity 2.0%" in r for r in first.reasons)
    assert last.propensity is None
    assert last.score is None
    assert any("does not score it for this client" in n for n in last.notes)


def test_propensity_weights_the_ranking() -> None:
    plain = financing_options(FACTS, 0.01, "3", [TERM_LOAN, OVERDRAFT], POLICY)
    flipped = financing_options(
        FACTS,
        0.01,
        "3",
        [TERM_LOAN, OVERDRAFT],
        POLICY,
        propensities={plain[0].product_code: 0.001, plain[1].product_code: 0.5},
    )
    assert flipped[0].product_code == plain[1].product_code


def test_policy_errors_name_the_field(tmp_path: Path) -> None:
    text = (ROOT / "models" / "credit_policy.yaml").read_text()
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace('refer: ["7", "8"]', 'refer: ["6", "8"]'))
    with pytest.raises(ConfigurationError, match="more than one decision band"):
        load_policy(bad)
    bad.write_text(text.replace("funding_cost: 0.035", "funding_cost: -1"))
    with pytest.raises(ConfigurationError, match=r"pricing\.funding_cost"):
        load_policy(bad)


PLN = {"min_limit": 21500, "sme_turnover_floor_millions": 21.5, "sme_turnover_cap_millions": 215}


def _policy_with(tmp_path: Path, edit: str) -> Path:
    text = (ROOT / "models" / "credit_policy.yaml").read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace("currency: EUR\n", edit, 1))
    return path


def test_the_policy_states_its_currency_and_refuses_another(tmp_path: Path) -> None:
    assert POLICY.currency == "EUR"
    assert POLICY.in_currency("EUR") is POLICY
    with pytest.raises(PolicyCurrencyError) as refused:
        POLICY.in_currency("PLN")
    message = str(refused.value)
    assert "the data's money is in PLN" in message
    assert str(ROOT / "models" / "credit_policy.yaml") in message
    assert "add other_currencies.PLN" in message
    assert "min_limit, sme_turnover_floor_millions, sme_turnover_cap_millions in PLN" in message
    assert isinstance(refused.value, ConfigurationError)  # the CLI's exit 4
    assert (refused.value.currency, refused.value.key) == ("PLN", "other_currencies.PLN")
    with pytest.raises(ConfigurationError, match=r"currency is missing.*e\.g\. currency: EUR"):
        load_policy(_policy_with(tmp_path, ""))
    with pytest.raises(ConfigurationError, match=r"currency: String should match"):
        load_policy(_policy_with(tmp_path, "currency: euro\n"))
    with pytest.raises(ConfigurationError, match=r"other_currencies\.EUR repeats"):
        load_policy(_policy_with(tmp_path, f"currency: EUR\nother_currencies: {{EUR: {PLN}}}\n"))
    with pytest.raises(ConfigurationError, match=r"\['pln'\] are not ISO 4217"):
        load_policy(_policy_with(tmp_path, f"currency: EUR\nother_currencies: {{pln: {PLN}}}\n"))
    bounds = {**PLN, "sme_turnover_floor_millions": 300}
    with pytest.raises(ConfigurationError, match="must be below sme_turnover_cap_millions"):
        load_policy(_policy_with(tmp_path, f"currency: EUR\nother_currencies: {{PLN: {bounds}}}\n"))


def test_amounts_for_another_currency_size_and_price_in_it(tmp_path: Path) -> None:
    policy = load_policy(
        _policy_with(tmp_path, f"currency: EUR\nother_currencies: {{PLN: {PLN}}}\n")
    )
    assert policy.in_currency("EUR") == policy
    pln = policy.in_currency("PLN")
    assert pln.currency == "PLN"
    assert pln.amounts.model_dump() == PLN
    assert pln.limits.min_limit == 21500
    assert pln.in_currency("EUR").amounts == policy.amounts  # and back
    assert pln.source == str(tmp_path / "policy.yaml")
    # the SME adjustment follows the bounds: a firm of 43 million PLN (4.3 to the euro) carries
    # the capital of a firm of 10 million EUR, not that of a 43 million one
    eur_firm = price(0.02, 0.4, 0.015, 3.0, 10.0, policy.pricing)
    pln_firm = price(0.02, 0.4, 0.015, 3.0, 43.0, pln.pricing)
    assert pln_firm.capital == pytest.approx(eur_firm.capital, rel=1e-12)
    assert pln_firm.capital < price(0.02, 0.4, 0.015, 3.0, 43.0, policy.pricing).capital
    # the smallest limit worth offering is the PLN one: an option the EUR minimum keeps is
    # dropped below 21,500 PLN
    small = replace(FACTS, annual_inflows=120_000.0, declared_turnover=120_000.0, ebitda=None)
    eur_options = financing_options(small, 0.01, "3", [OVERDRAFT], policy)
    assert eur_options
    assert 5_000 <= eur_options[0].limit < 21_500
    assert financing_options(small, 0.01, "3", [OVERDRAFT], pln) == []


def test_a_product_already_held_is_flagged_not_hidden() -> None:
    held = replace(FACTS, held_products=frozenset({"overdraft"}))
    options = {
        o.product_code: o
        for o in financing_options(held, 0.01, "3", [TERM_LOAN, OVERDRAFT], POLICY)
    }
    assert any("already holds Overdraft" in n for n in options["overdraft"].notes)
    assert not any("already holds" in n for n in options["term_loan"].notes)


def test_catalog_terms_left_empty_take_the_policy_defaults_and_say_so() -> None:
    row = {
        "product_code": "overdraft",
        "name": "Overdraft",
        "segments": "sme",
        "lgd": None,
        "margin_rate": 0.03,
        "max_tenor_months": float("nan"),
        "limit_turnover_share": 0.1,
    }
    product = Product.from_catalog(row, POLICY.catalog_defaults)
    assert product.lgd == POLICY.catalog_defaults.lgd
    assert product.max_tenor_months == POLICY.catalog_defaults.max_tenor_months
    assert product.margin_rate == 0.03
    assert product.assumed == ("lgd", "max_tenor_months", "min_age_months")
    (option,) = financing_options(FACTS, 0.01, "3", [product], POLICY)
    assert any("no lgd, max_tenor_months, min_age_months for Overdraft" in n for n in option.notes)
    # a complete catalog row assumes nothing and notes nothing of the kind
    (complete,) = financing_options(FACTS, 0.01, "3", [OVERDRAFT], POLICY)
    assert not any("catalog gives no" in n for n in complete.notes)
