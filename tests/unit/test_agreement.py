"""NDCG@k of financing orders against a known truth of take-up."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rmreco.training.agreement import financing_agreement, ndcg_at_k


def test_ndcg_by_hand() -> None:
    assert ndcg_at_k([0.3, 0.2, 0.1]) == pytest.approx(1.0)
    worst = ndcg_at_k([0.0, 0.1, 0.3])
    ideal = 0.3 + 0.1 / math.log2(3)
    assert worst == pytest.approx((0.1 / math.log2(3) + 0.3 / 2) / ideal)
    # only the first k count: a relevant item at rank 4 earns nothing
    assert ndcg_at_k([0.0, 0.0, 0.0, 1.0], k=3) == 0.0
    assert ndcg_at_k([0.0, 0.0]) is None
    assert ndcg_at_k([]) is None


def test_the_served_order_is_judged_beside_the_order_by_profit() -> None:
    month = pd.Timestamp("2026-06-01")
    financing = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b", "b", "c"],
            "as_of": [month.date()] * 6,
            "rank": [1, 2, 3, 1, 2, 1],
            "product_code": ["overdraft", "term_loan", "leasing", "term_loan", "overdraft", "x"],
            # by profit the term loan leads for a, the overdraft for b
            "expected_annual_profit": [100.0, 900.0, 50.0, 10.0, 20.0, 5.0],
        }
    )
    truth = pd.DataFrame(
        {
            "client_id": ["a", "a", "b", "b", "c"],
            "month": [month] * 5,
            "product_code": ["overdraft", "term_loan", "term_loan", "overdraft", "x"],
            "p_3m": [0.2, 0.01, 0.05, 0.0, 0.5],
        }
    )
    result = financing_agreement(financing, truth)
    assert result.clients == 2  # c has one option: nothing to order
    assert result.ranked == pytest.approx(1.0)  # both served orders put the true need first
    a = (0.01 + 0.2 / math.log2(3)) / (0.2 + 0.01 / math.log2(3))
    b = (0.05 / math.log2(3)) / 0.05
    assert result.by_profit == pytest.approx((a + b) / 2)
    assert result.distinct_orders == 2
    with pytest.raises(ValueError, match="no client"):
        financing_agreement(financing[financing["client_id"] == "c"], truth)
