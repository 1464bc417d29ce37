"""Factories of tiny contract frames for unit tests of features and models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from rmreco.features import FeatureInputs

START = date(2022, 1, 1)


def months(n: int, start: date = START) -> list[date]:
    """``n`` consecutive first-of-month dates from ``start``."""
    return [
        date(start.year + (start.month - 1 + k) // 12, (start.month - 1 + k) % 12 + 1, 1)
        for k in range(n)
    ]


def random_bank(n_clients: int = 30, n_months: int = 30, seed: int = 0) -> FeatureInputs:
    """A small random bank in the contract's shape, with gaps, short histories and events."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:03d}" for i in range(n_clients)]
    rows = []
    for i, cid in enumerate(ids):
        first = int(rng.integers(0, n_months // 3)) if i % 4 == 0 else 0
        for k, m in enumerate(months(n_months)):
            if k < first or (i % 7 == 3 and k == n_months // 2):  # late starts and a gap
                continue
            inflow = float(rng.lognormal(11, 0.3))
            limit = 20000.0 if i % 2 else 0.0
            rows.append(
                {
                    "client_id": cid,
                    "month": m,
                    "balance_avg": float(rng.normal(30000, 15000)),
                    "balance_min": float(rng.normal(5000, 10000)),
                    "balance_max": float(rng.normal(60000, 10000)),
                    "credit_turnover": inflow,
                    "debit_turnover": inflow * float(rng.uniform(0.8, 1.2)),
                    "n_credit_tx": int(rng.integers(5, 80)),
                    "n_debit_tx": int(rng.integers(5, 80)),
                    "overdraft_limit": limit,
                    "overdraft_peak_use": float(rng.uniform(0, limit)),
                    "days_in_overdraft": int(rng.integers(0, 10)) if limit else 0,
                    "dpd_max": int(rng.choice([0, 0, 0, 0, 5, 35, 95])) if i % 5 == 1 else 0,
                    "returned_payments": int(rng.poisson(0.3)),
                    "intl_payments": float(rng.exponential(2000)),
                    "payroll_outflow": inflow * 0.2,
                    "card_spend": float(rng.exponential(500)),
                    "acquiring_inflow": 0.0,
                }
            )
    account_months = pd.DataFrame(rows)
    clients = pd.DataFrame(
        {
            "client_id": ids,
            "segment": ["sme" if i % 5 else "corporate" for i in range(n_clients)],
            "sector": [["C", "F", "G", "I"][i % 4] for i in range(n_clients)],
            "region": ["North", "South"] * (n_clients // 2) + ["North"] * (n_clients % 2),
            "founded": [date(2010 + i % 12, 1 + i % 12, 1) for i in range(n_clients)],
            "employees": rng.integers(1, 200, n_clients),
            "turnover": rng.lognormal(14, 0.5, n_clients),
            "rm_id": ["RM1"] * n_clients,
        }
    )
    products = pd.DataFrame(
        {
            "product_code": ["overdraft", "term_loan", "payroll"],
            "name": ["Overdraft", "Term loan", "Payroll"],
            "kind": ["financing", "financing", "service"],
            "segments": ["sme|corporate"] * 3,
        }
    )
    all_months = months(n_months)
    holdings = pd.DataFrame(
        {
            "client_id": [ids[0], ids[0], ids[1], ids[2]],
            "product_code": ["overdraft", "payroll", "term_loan", "payroll"],
            "start_month": [date(2019, 1, 1), all_months[3], all_months[5], all_months[0]],
            "end_month": [None, all_months[10], None, None],
        }
    )
    credit_events = pd.DataFrame(
        {
            "client_id": [ids[6], ids[6], ids[11]],
            "month": [all_months[14], all_months[20], all_months[25]],
            "event_type": ["default", "write_off", "default"],
        }
    )
    financials = pd.DataFrame(
        {
            "client_id": [ids[0], ids[0], ids[1]],
            "year": [2021, 2022, 2022],
            "revenue": [1.0e6, 1.2e6, 5.0e5],
            "ebitda": [1.0e5, 1.5e5, -2.0e4],
            "total_assets": [8.0e5, 9.0e5, 4.0e5],
            "total_debt": [3.0e5, 2.5e5, 3.5e5],
            "equity": [3.0e5, 4.0e5, -1.0e4],
            "current_assets": [2.0e5, 2.2e5, 1.0e5],
            "current_liabilities": [1.0e5, 1.1e5, 1.5e5],
        }
    )
    return FeatureInputs(
        account_months=account_months,
        clients=clients,
        holdings=holdings,
        credit_events=credit_events,
        financials=financials,
        products=products,
    )


@pytest.fixture
def bank_factory() -> Callable[..., FeatureInputs]:
    return random_bank
