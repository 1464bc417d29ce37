"""Client feature snapshots: the latest point-in-time features of every client, kept in the DB.

The service answers from these rows (one primary-key read) instead of rebuilding features from
the history on every request; they are refreshed from the stored history after each load, with
the same feature code that training uses and the builder settings the served models were
trained with (:class:`~rmreco.features.config.SnapshotParams`, recorded on every row), so what
is trained is what is served.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.domain import contract
from rmreco.features.builder import (
    CATEGORICAL_FEATURES,
    FEATURE_DESCRIPTIONS,
    FeatureInputs,
)
from rmreco.features.config import SnapshotParams, snapshot_frame
from rmreco.features.cross_sell import (
    PRODUCT,
    PRODUCT_FEATURES,
    build_cross_sell_panel,
    catalog_codes,
    holdings_feature_names,
)

log = logging.getLogger(__name__)
BATCH_ROWS = 2000


def read_inputs(session: Session, client_ids: list[str] | None = None) -> FeatureInputs:
    """The contract's tables as stored in the DB (optionally for some clients only)."""
    connection = session.connection()

    def frame(table: contract.Table) -> pd.DataFrame:
        model = schema.CONTRACT_MODELS[table.name]
        columns = [getattr(model, c) for c in table.column_names]
        query = select(*columns)
        if client_ids is not None and "client_id" in table.column_names:
            query = query.where(model.client_id.in_(client_ids))  # type: ignore[attr-defined]
        return pd.read_sql(query, connection)

    return FeatureInputs(
        account_months=frame(contract.ACCOUNT_MONTHS),
        clients=frame(contract.CLIENTS),
        holdings=frame(contract.HOLDINGS),
        credit_events=frame(contract.CREDIT_EVENTS),
        financials=frame(contract.FINANCIALS),
        products=frame(contract.PRODUCTS),
    )


def latest_features(inputs: FeatureInputs, params: SnapshotParams) -> pd.DataFrame:
    """Features of every client at its own latest month of history, with ``in_default``."""
    frame = snapshot_frame(inputs, params)
    return frame.sort_values("month").groupby("client_id").tail(1).reset_index(drop=True)


def json_ready(value: Any) -> Any:
    """A value as JSON stores it: numpy scalars as Python ones, missing and NaN as null."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def refresh_client_features(session: Session, params: SnapshotParams) -> int:
    """Recompute every client's snapshot from the stored history with the builder settings
    ``params`` (those of the models served from the snapshots); never commits.

    Returns the number of clients written. The caller owns the transaction, so the table is
    replaced all at once or not at all.
    """
    inputs = read_inputs(session)
    if inputs.account_months.empty:
        session.execute(delete(schema.ClientFeatures))
        return 0
    latest = latest_features(inputs, params)
    names = list(FEATURE_DESCRIPTIONS)
    rows = []
    for record in latest.to_dict(orient="records"):
        rows.append(
            {
                "client_id": str(record["client_id"]),
                "month": pd.Timestamp(record["month"]).date(),
                "in_default": bool(record.get("in_default") or False),
                "params": params.to_dict(),
                "features": {
                    n: (None if pd.isna(record[n]) else str(record[n]))
                    if n in CATEGORICAL_FEATURES
                    else json_ready(record[n])
                    for n in names
                },
            }
        )
    candidates = offer_candidates(inputs, params)
    for row in rows:
        row["offer_candidates"] = candidates.get(str(row["client_id"]))
    session.execute(delete(schema.ClientFeatures))
    for start in range(0, len(rows), BATCH_ROWS):
        session.execute(insert(schema.ClientFeatures), rows[start : start + BATCH_ROWS])
    log.info("refreshed features of %d clients", len(rows))
    return len(rows)


def offer_candidates(inputs: FeatureInputs, params: SnapshotParams) -> dict[str, dict[str, Any]]:
    """Each client's cross-sell rows at the last month of the data (see the schema's
    ``ClientFeatures.offer_candidates``); empty without a catalog."""
    if inputs.products is None or inputs.products.empty:
        return {}
    last = pd.to_datetime(inputs.account_months["month"]).max().date()
    panel = build_cross_sell_panel(
        inputs,
        months=[last],
        cure_months=params.cure_months,
        financials_lag_months=params.financials_lag_months,
    )
    codes = catalog_codes(inputs.products)
    holding_columns = holdings_feature_names(codes)
    out: dict[str, dict[str, Any]] = {}
    for client_id, rows in panel.groupby("client_id", sort=False, observed=True):
        first = rows.iloc[0]
        out[str(client_id)] = {
            "holdings": {c: json_ready(first[c]) for c in holding_columns},
            "products": {
                str(r[PRODUCT]): {c: json_ready(r[c]) for c in PRODUCT_FEATURES}
                for r in rows.to_dict(orient="records")
            },
        }
    return out


def stored_params(rows: list[dict[str, Any] | None]) -> list[SnapshotParams | None]:
    """The builder settings of stored snapshots (see ``repository.snapshot_params``)."""
    return [None if row is None else SnapshotParams.from_dict(row) for row in rows]


def candidate_records(
    features: dict[str, Any], candidates: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The model input of each of a client's cross-sell rows: its features, its holdings and
    the product's own features, with ``product_code``."""
    base, variants = candidate_variants(features, candidates)
    return [{**base, **variant} for variant in variants]


def candidate_variants(
    features: dict[str, Any], candidates: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A client's cross-sell rows as what they share (its features and holdings) and, per
    product, what is the product's own (``product_code`` and the product features)."""
    if not candidates:
        return dict(features), []
    base = {**features, **candidates.get("holdings", {})}
    return base, [
        {PRODUCT: code, **values} for code, values in candidates.get("products", {}).items()
    ]
