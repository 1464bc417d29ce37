"""The contact policy, the request's purpose, amount and tenor in the order of financing options,
the words that say why an option ranks where it does, and the credit-aware view of offers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from rmreco.modeling.contact import ContactPolicy, suppressions
from rmreco.modeling.decisioning import (
    ClientFacts,
    Product,
    Request,
    financing_options,
    purpose_products,
)
from rmreco.modeling.offers import CreditView, credit_aware
from rmreco.modeling.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "models" / "credit_policy.yaml")
CONTACT = ContactPolicy(cool_off_days=90, max_contacts=2, window_days=180)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    client_id: str
    product_code: str
    outcome: str
    at: datetime
    recommendation_id: str


def _event(outcome: str, days_ago: float, rec: str = "r1", product: str = "term_loan") -> Event:
    return Event("c1", product, outcome, NOW - timedelta(days=days_ago), rec)


def test_a_decline_suppresses_the_product_until_the_cool_off_ends() -> None:
    (found,) = suppressions([_event("declined", 10)], CONTACT, NOW).items()
    assert found[0] == ("c1", "term_loan")
    assert found[1].until == NOW - timedelta(days=10) + timedelta(days=90)
    assert "declined it on 2026-11-21" in found[1].reasons[0]
    assert "90-day cool-off" in found[1].reasons[0]
    # not interested is a refusal too; a decline older than the cool-off suppresses nothing
    assert suppressions([_event("not_interested", 89)], CONTACT, NOW)
    assert not suppressions([_event("declined", 91)], CONTACT, NOW)
    # an offer or an acceptance is no refusal
    assert not suppressions([_event("offered", 1), _event("accepted", 1)], CONTACT, NOW)


def test_naive_times_read_as_utc() -> None:
    naive = replace(_event("declined", 10), at=(NOW - timedelta(days=10)).replace(tzinfo=None))
    (found,) = suppressions([naive], CONTACT, NOW).values()
    assert found.until == NOW + timedelta(days=80)


def test_the_contact_limit_counts_recommendations_not_reports() -> None:
    # one recommendation reported offered and then accepted is one contact
    assert not suppressions([_event("offered", 30), _event("accepted", 29)], CONTACT, NOW)
    two = [_event("offered", 30, "r1"), _event("offered", 100, "r2")]
    (found,) = suppressions(two, CONTACT, NOW).values()
    # free again once the older of the two leaves the 180-day window
    assert found.until == NOW - timedelta(days=100) + timedelta(days=180)
    assert "offered 2 times in the last 180 days (the limit is 2)" in found.reasons[0]
    # contacts outside the window do not count
    assert not suppressions(
        [_event("offered", 30, "r1"), _event("offered", 200, "r2")], CONTACT, NOW
    )
    # another product or client is another pair
    mixed = [_event("offered", 30, "r1"), _event("offered", 40, "r2", product="overdraft")]
    assert not suppressions(mixed, CONTACT, NOW)


def test_both_rules_give_the_later_day_and_both_reasons() -> None:
    events = [_event("offered", 170, "r1"), _event("declined", 20, "r2")]
    (found,) = suppressions(events, CONTACT, NOW).values()
    assert found.until == NOW + timedelta(days=70)  # the cool-off ends after the window frees
    assert len(found.reasons) == 2


FACTS = ClientFacts(
    segment="sme",
    business_age_months=120,
    annual_inflows=2_000_000,
    declared_turnover=2_000_000,
    ebitda=None,
    dpd_3m=0,
    dpd_12m=0,
    restructured_12m=False,
    in_default=False,
)


def _product(code: str, tenor: int, share: float = 0.3) -> Product:
    return Product(
        code=code,
        name=code.replace("_", " ").title(),
        segments=frozenset({"sme"}),
        lgd=0.45,
        margin_rate=0.02,
        max_tenor_months=tenor,
        limit_turnover_share=share,
    )


PRODUCTS = [
    _product("overdraft", 12, 0.1),
    _product("term_loan", 60),
    _product("commercial_mortgage", 240, 1.0),
    _product("invoice_finance", 12, 0.15),
]


def test_a_purpose_offers_only_the_products_that_serve_it() -> None:
    wanted = set(POLICY.purposes["working_capital"])
    options = financing_options(
        FACTS, 0.01, "3", PRODUCTS, POLICY, request=Request(purpose="working_capital")
    )
    assert options
    assert {o.product_code for o in options} <= wanted
    assert "commercial_mortgage" not in {o.product_code for o in options}
    with pytest.raises(ValueError, match=r"unknown purpose 'yacht'.*working_capital"):
        purpose_products(POLICY, "yacht")
    with pytest.raises(ValueError, match="unknown purpose"):
        financing_options(FACTS, 0.01, "3", PRODUCTS, POLICY, request=Request(purpose="yacht"))


def test_options_that_meet_the_request_come_first_and_say_why() -> None:
    # the term loan would win on score, but it cannot reach the tenor asked while the mortgage can
    propensities = {"term_loan": 0.5, "commercial_mortgage": 0.01, "overdraft": 0.01}
    options = financing_options(
        FACTS,
        0.01,
        "3",
        PRODUCTS[:3],
        POLICY,
        propensities=propensities,
        request=Request(tenor_months=120),
    )
    order = [o.product_code for o in options]
    assert order[0] == "commercial_mortgage"
    assert options[0].fits_request
    assert not options[1].fits_request
    assert "ranked first of 3" in options[0].rank_reason
    assert "after the options that meet the request" in options[1].rank_reason
    assert "longest tenor" in options[1].rank_reason


def test_rank_reasons_compare_each_option_with_the_one_ahead() -> None:
    options = financing_options(
        FACTS,
        0.01,
        "3",
        PRODUCTS[:2],
        POLICY,
        propensities={"term_loan": 0.2, "overdraft": 0.01},
    )
    first, second = options
    assert first.score is not None
    assert second.score is not None
    assert first.score >= second.score
    assert f"below {first.name}'s" in second.rank_reason
    assert f"{second.score:,.0f}" in second.rank_reason
    # unknown propensities come after the known ones, and say so
    partial = financing_options(
        FACTS, 0.01, "3", PRODUCTS[:2], POLICY, propensities={"overdraft": 0.01}
    )
    assert partial[-1].propensity is None
    assert "propensity is unknown" in partial[-1].rank_reason


def test_a_suppressed_option_is_marked_with_its_return_day_and_ranked_last() -> None:
    (suppression,) = suppressions([_event("declined", 10)], CONTACT, NOW).values()
    options = financing_options(
        FACTS,
        0.01,
        "3",
        PRODUCTS[:2],
        POLICY,
        propensities={"term_loan": 0.9, "overdraft": 0.01},
        suppressed={"term_loan": suppression},
    )
    assert [o.product_code for o in options] == ["overdraft", "term_loan"]
    marked = options[-1].to_dict()
    assert marked["suppressed"] == {"until": "2027-02-19", "reasons": list(suppression.reasons)}
    assert "not to be offered before 2027-02-19" in options[-1].rank_reason
    assert options[0].to_dict()["suppressed"] is None


def test_credit_aware_offers_drop_declined_credit_products_and_renumber() -> None:
    ranked = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b", "b", "c"],
            "product_code": ["term_loan", "payroll", "overdraft", "term_loan", "payroll", "fx"],
            "rank": [1, 2, 3, 1, 2, 1],
        }
    )
    views = {
        "a": CreditView(0.4, 12, "10", "decline"),
        "b": CreditView(0.01, 12, "3", "approve"),
    }
    out = credit_aware(ranked, views, {"term_loan", "overdraft"})
    rows = list(zip(out["client_id"], out["product_code"], out["rank"], strict=True))
    assert rows == [("a", "payroll", 1), ("b", "term_loan", 1), ("b", "payroll", 2), ("c", "fx", 1)]
    assert out["decision"].tolist() == [None, "approve", None, None]
    assert out["grade"].tolist() == ["10", "3", "3", None]
    assert out["pd"].iloc[0] == 0.4
    assert out["pd_horizon_months"].iloc[0] == 12
    assert pd.isna(out["pd"].iloc[3])
    assert pd.isna(out["pd_horizon_months"].iloc[3])
