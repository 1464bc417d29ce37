"""This module owns the example values of the API's request and response models: the
examples that ``/docs`` and ``/redoc`` show and "Try it out" starts from. Each is a whole,
realistic value of its model (figures and texts as the service gives them for a trained
synthetic bank), composed from the examples of the models it holds. The tests read every one
back through its model, so an example that drifts from its model fails them. Only the OpenAPI
document reads this module."""

from __future__ import annotations

from typing import Any

ERROR_BODY: dict[str, Any] = {
    "code": "segment_not_served",
    "message": "no credit model serves the client's segment 'personal'; the credit models in "
    "use serve: sme, corporate",
    "field": "client_id",
    "details": {"segment": "personal", "segments_served": ["sme", "corporate"]},
}


ERROR_RESPONSE: dict[str, Any] = {
    "error": {
        "code": "invalid",
        "message": "amount: Input should be greater than 0",
        "field": "amount",
    }
}


FINANCING_REQUEST: dict[str, Any] = {
    "amount": 250000,
    "tenor_months": 36,
    "purpose": "working_capital",
}


REASON: dict[str, Any] = {
    "code": "IVL12",
    "feature": "inflow_volatility_12m",
    "value": 12.9038,
    "unit": "%",
    "direction": "raises the PD",
    "contribution": 0.6651,
    "text": "monthly inflows varying by 13% of their average over the last 12 months",
}
REASON_2: dict[str, Any] = {
    "code": "TRX03",
    "feature": "tx_count_3m_log",
    "value": 48.0,
    "unit": "transactions a month",
    "direction": "raises the PD",
    "contribution": 0.4013,
    "text": "48 transactions a month over the last 3 months",
}


POLICY_REASON: dict[str, Any] = {
    "code": "POL_GRADE_REFER",
    "text": "risk grade 7 needs a credit officer's review",
}


ADVERSE_ACTION_REASON: dict[str, Any] = {
    "code": "DPD03",
    "feature": "dpd_3m",
    "value": 45.0,
    "unit": "days",
    "direction": "raises the PD",
    "contribution": 0.8123,
    "text": "payments 45 days past due in the last 3 months",
    "source": "model",
}


PRICING: dict[str, Any] = {
    "rate": 0.067553,
    "funding_cost": 0.035,
    "expected_loss": 0.005862,
    "capital_charge": 0.004691,
    "operating_margin": 0.022,
    "capital": 0.039091,
}


SUPPRESSION: dict[str, Any] = {
    "until": "2027-01-15",
    "reasons": ["the client declined it on 2026-10-17 (90-day cool-off)"],
}


FINANCING_OPTION: dict[str, Any] = {
    "recommendation_id": "01a23481-dd5c-769d-aa88-ff5516f06b98",
    "rank": 1,
    "product_code": "invoice_finance",
    "name": "Invoice finance (factoring)",
    "limit": 242065.48,
    "tenor_months": 12,
    "indicative_rate": 0.067553,
    "pricing": PRICING,
    "exposure": 169445.84,
    "expected_annual_profit": 3727.81,
    "propensity": 0.014880,
    "score": 55.4694,
    "fits_request": False,
    "suppressed": None,
    "rank_reason": "ranked first of 2: the highest expected annual profit x take-up propensity "
    "(55) among options short of the request",
    "reasons": [
        "limit sized by turnover and grade 6 (65% of the sized amount)",
        "rate 6.76%: funding 3.50%, expected loss 0.59%, capital 0.47%, margin 2.20%",
        "expected annual profit 3,728 x take-up propensity 1.5% = 55",
    ],
    "notes": [
        "the longest tenor of Invoice finance (factoring) is 12 months; 36 were asked",
        "250,000 asked; 242,065 is the largest amount the client's cash flows carry at grade 6",
    ],
}
FINANCING_OPTION_2: dict[str, Any] = {
    "recommendation_id": "01a23481-dd5c-797f-9341-e59bb6c200dc",
    "rank": 2,
    "product_code": "revolving_credit",
    "name": "Revolving credit facility",
    "limit": 242065.48,
    "tenor_months": 36,
    "indicative_rate": 0.068748,
    "pricing": {
        "rate": 0.068748,
        "funding_cost": 0.035,
        "expected_loss": 0.007816,
        "capital_charge": 0.007932,
        "operating_margin": 0.018,
        "capital": 0.066097,
    },
    "exposure": 145239.29,
    "expected_annual_profit": 2614.31,
    "propensity": 0.010027,
    "score": 26.213,
    "fits_request": False,
    "suppressed": SUPPRESSION,
    "rank_reason": "ranked 2 of 2: the contact policy keeps it from the client until 2027-01-15",
    "reasons": [
        "limit sized by turnover and grade 6 (65% of the sized amount)",
        "rate 6.87%: funding 3.50%, expected loss 0.78%, capital 0.79%, margin 1.80%",
        "expected annual profit 2,614 x take-up propensity 1.0% = 26",
    ],
    "notes": [
        "250,000 asked; 242,065 is the largest amount the client's cash flows carry at grade 6"
    ],
}


FINANCING_ANSWER: dict[str, Any] = {
    "client_id": "C0000001",
    "as_of": "2026-10-01",
    "pd": 0.019540,
    "pd_horizon_months": 12,
    "grade": "6",
    "decision": "approve",
    "decision_reasons": [],
    "adverse_action_reasons": [],
    "reasons": [REASON, REASON_2],
    "options": [FINANCING_OPTION, FINANCING_OPTION_2],
    "decision_id": "01a23481-dd5c-786f-ac4f-04735bb1e1eb",
    "model_versions": {"rmreco-sme-pd-12m": "3", "rmreco-sme-corporate-cross-sell-3m": "2"},
    "policy_version": "2026.11-1",
    "currency": "EUR",
}


FEEDBACK_REQUEST: dict[str, Any] = {
    "outcome": "accepted",
    "reason": "facility agreement signed at the branch",
    "amount": 200000,
}


FEEDBACK_ANSWER: dict[str, Any] = {
    "feedback_id": 1874,
    "recommendation_id": "01a23481-dd5c-769d-aa88-ff5516f06b98",
    "outcome": "accepted",
    "amount": 200000.0,
    "is_repeat": False,
}


FEEDBACK_ITEM: dict[str, Any] = {
    "feedback_id": 1874,
    "recommendation_id": "01a23481-dd5c-769d-aa88-ff5516f06b98",
    "kind": "financing",
    "client_id": "C0000001",
    "product_code": "invoice_finance",
    "outcome": "accepted",
    "reason": "facility agreement signed at the branch",
    "amount": 200000.0,
    "created_at": "2026-10-21T09:42:17Z",
    "user": "demo-brm",
}
FEEDBACK_ITEM_2: dict[str, Any] = {
    "feedback_id": 1861,
    "recommendation_id": "01a2347f-0b1e-7c52-8f3d-2a9e6b4c1d07",
    "kind": "cross_sell",
    "client_id": "C0000017",
    "product_code": "fx_hedging",
    "outcome": "declined",
    "reason": "hedges through its parent company's bank",
    "amount": None,
    "created_at": "2026-10-17T15:05:48Z",
    "user": "demo-brm",
}


FEEDBACK_PAGE: dict[str, Any] = {
    "rm_id": "RM0005",
    "client_id": None,
    "total": 2,
    "offset": 0,
    "limit": 50,
    "items": [FEEDBACK_ITEM, FEEDBACK_ITEM_2],
}


PRODUCT_KPI: dict[str, Any] = {
    "product_code": "invoice_finance",
    "recommended": 38,
    "offered": 6,
    "accepted": 3,
    "declined": 2,
    "not_interested": 1,
    "acceptance_rate": 0.5,
    "new_business_volume": 410000.0,
}


RETENTION_KPI: dict[str, Any] = {
    "start_month": "2026-07-01",
    "end_month": "2026-09-01",
    "clients_at_start": 149,
    "retained": 145,
    "retention_rate": 0.973154,
    "note": None,
}


PRODUCT_HOLDINGS_KPI: dict[str, Any] = {
    "product_code": "term_loan",
    "started": 3,
    "with_amount": 3,
    "amount": 1009000.0,
}


NEW_HOLDINGS_KPI: dict[str, Any] = {
    "months_from": "2026-07-01",
    "months_to": "2026-09-01",
    "started": 11,
    "by_product": [
        {"product_code": "business_card", "started": 3, "with_amount": 0, "amount": 0.0},
        {"product_code": "invoice_finance", "started": 5, "with_amount": 5, "amount": 418000.0},
        PRODUCT_HOLDINGS_KPI,
    ],
    "note": None,
}


#: One RM's figures over the third quarter of 2026: the KPI answer and a row of the team's.
KPI_FIGURES: dict[str, Any] = {
    "recommendations": 154,
    "offered": 12,
    "accepted": 5,
    "declined": 4,
    "not_interested": 2,
    "pipeline_conversion_rate": 0.416667,
    "new_business_volume": 610000.0,
    "accepted_without_amount": 1,
    "new_holdings": NEW_HOLDINGS_KPI,
    "retention": RETENTION_KPI,
    "by_product": [
        PRODUCT_KPI,
        {
            "product_code": "term_loan",
            "recommended": 12,
            "offered": 6,
            "accepted": 2,
            "declined": 2,
            "not_interested": 1,
            "acceptance_rate": 0.333333,
            "new_business_volume": 200000.0,
        },
    ],
}


KPI_ANSWER: dict[str, Any] = {
    **KPI_FIGURES,
    "rm_id": "RM0005",
    "period_start": "2026-07-01",
    "period_end": "2026-09-30",
    "currency": "EUR",
}


RM_KPI_ROW: dict[str, Any] = {
    **KPI_FIGURES,
    "rm_id": "RM0005",
    "name": "Victor Nowak",
    "role": "brm",
    "team": "Capital Business Banking 1",
}


#: A team of one RM in the period: its total is that RM's figures.
TEAM_KPI_ANSWER: dict[str, Any] = {
    "team": "Capital Business Banking 1",
    "period_start": "2026-07-01",
    "period_end": "2026-09-30",
    "total": KPI_FIGURES,
    "rms": [RM_KPI_ROW],
    "currency": "EUR",
}


SERVED_MODEL: dict[str, Any] = {
    "name": "rmreco-sme-pd-12m",
    "version": "3",
    "source": "registry",
    "metrics": {"oot_auc": 0.7152, "oot_gini": 0.4304, "oot_brier": 0.0303},
}


MODELS_ANSWER: dict[str, Any] = {
    "models": [
        SERVED_MODEL,
        {
            "name": "rmreco-sme-corporate-cross-sell-3m",
            "version": "2",
            "source": "registry",
            "metrics": {"oot_map_at_5": 0.4644},
        },
    ],
    "registry": "ok",
    "errors": {"rmreco-corporate-pd-12m": "no champion alias in the registry"},
}


#: What an admin or data_scientist key is told (other callers get models and errors null).
READY_ANSWER: dict[str, Any] = {
    "ready": True,
    "database": "ok",
    "registry": "ok",
    "refresh_owed": False,
    "models": {"rmreco-sme-pd-12m": "3", "rmreco-sme-corporate-cross-sell-3m": "2"},
    "errors": {"rmreco-corporate-pd-12m": "no champion alias in the registry"},
}


CROSS_SELL_ITEM: dict[str, Any] = {
    "recommendation_id": "01a23482-e3be-7ac0-8bdc-62cc4e85db50",
    "rank": 1,
    "client_id": "C0000328",
    "segment": "sme",
    "product_code": "term_loan",
    "propensity": 0.0514,
    "expected_value": 5606.56,
    "pd": 0.023806,
    "pd_horizon_months": 12,
    "grade": "6",
    "decision": "approve",
    "reasons": [
        {
            "code": "PRD03",
            "feature": "products_opened_12m",
            "value": 2.0,
            "unit": "products",
            "direction": "raises the take-up",
            "contribution": 0.2214,
            "text": "2 products opened in the last 12 months",
        }
    ],
}
CROSS_SELL_ITEM_2: dict[str, Any] = {
    "recommendation_id": "01a23482-e3be-7b11-9d0e-3f6c2a81b7d4",
    "rank": 2,
    "client_id": "C0000243",
    "segment": "sme",
    "product_code": "payroll",
    "propensity": 0.0412,
    "expected_value": 494.4,
    "pd": 0.012113,
    "pd_horizon_months": 12,
    "grade": "5",
    "decision": None,
    "reasons": [
        {
            "code": "MHD_CASH_MANAGEMENT",
            "feature": "months_held_cash_management",
            "value": 131.0,
            "unit": "months",
            "direction": "raises the take-up",
            "contribution": 0.0996,
            "text": "has held Cash management and liquidity pooling for 131 months",
        }
    ],
}


CROSS_SELL_PAGE: dict[str, Any] = {
    "rm_id": "RM0005",
    "client_id": None,
    "total": 1722,
    "offset": 0,
    "limit": 2,
    "items": [CROSS_SELL_ITEM, CROSS_SELL_ITEM_2],
    "model_versions": {"rmreco-sme-pd-12m": "3", "rmreco-sme-corporate-cross-sell-3m": "2"},
    "currency": "EUR",
}
