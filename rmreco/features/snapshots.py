"""Client feature snapshots: the latest point-in-time features of every client, kept in the DB.

The service answers from these rows (one primary-key read) instead of rebuilding features from
the history on every request; they are refreshed from the stored history after each load, with
the same feature code that training uses and the builder settings the served models were
trained with (:class:`~rmreco.features.config.SnapshotParams`, recorded on every row), so what
is trained is what is served.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.domain import contract
from rmreco.features.bank_columns import CATEGORICAL, bank_features
from rmreco.features.builder import CATEGORICAL_FEATURES, FEATURE_DESCRIPTIONS
from rmreco.features.config import SnapshotParams, snapshot_frame
from rmreco.features.cross_sell import (
    PRODUCT,
    PRODUCT_FEATURES,
    build_cross_sell_panel,
    catalog_codes,
    holdings_feature_names,
)
from rmreco.features.inputs import FeatureInputs
from rmreco.features.observations import observed_inputs

log = logging.getLogger(__name__)
BATCH_ROWS = 2000


def read_inputs(session: Session, client_ids: list[str] | None = None) -> FeatureInputs:
    """The contract's tables as stored in the DB (optionally for some clients only).

    The bank's own columns of ``clients`` and ``financials`` (stored as JSON in their
    ``extras_column``) come back as columns of those frames with the kinds recorded at ingest
    (numeric as float64, categorical as object with None for missing), listed in
    ``FeatureInputs.extra_columns``; a database without any gives ``{}``.
    """
    connection = session.connection()
    kinds: dict[str, dict[str, str]] = {}
    for table_name, column_name, kind in session.execute(
        select(
            schema.ExtraColumn.table_name, schema.ExtraColumn.column_name, schema.ExtraColumn.kind
        ).order_by(schema.ExtraColumn.table_name, schema.ExtraColumn.column_name)
    ):
        kinds.setdefault(table_name, {})[column_name] = kind

    def frame(table: contract.Table) -> pd.DataFrame:
        model = schema.CONTRACT_MODELS[table.name]
        names = list(table.column_names)
        extras = kinds.get(table.name, {}) if table.extras == "features" else {}
        if extras and table.extras_column is not None:
            names.append(table.extras_column)
        query = select(*[getattr(model, c) for c in names])
        if client_ids is not None and "client_id" in table.column_names:
            query = query.where(model.client_id.in_(client_ids))  # type: ignore[attr-defined]
        read = pd.read_sql(query, connection)
        if not extras or table.extras_column is None:
            return read
        stored = [_json_object(v) for v in read.pop(table.extras_column).tolist()]
        for name, kind in extras.items():
            values = [row.get(name) for row in stored]
            if kind == "numeric":
                read[name] = pd.Series(
                    [np.nan if v is None else v for v in values], index=read.index, dtype="float64"
                )
            else:
                read[name] = pd.Series(
                    [None if v is None else str(v) for v in values], index=read.index, dtype=object
                )
        return read

    return FeatureInputs(
        account_months=frame(contract.ACCOUNT_MONTHS),
        clients=frame(contract.CLIENTS),
        holdings=frame(contract.HOLDINGS),
        credit_events=frame(contract.CREDIT_EVENTS),
        financials=frame(contract.FINANCIALS),
        products=frame(contract.PRODUCTS),
        extra_columns={
            name: dict(columns)
            for name, columns in kinds.items()
            if contract.TABLES_BY_NAME[name].extras == "features"
        },
    )


def _json_object(value: Any) -> dict[str, Any]:
    """A stored JSON object (a dict, JSON text on some drivers, or null) as a dict."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value)


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
    inputs = observed_inputs(read_inputs(session), params.financials_lag_months)
    if inputs.account_months.empty:
        session.execute(delete(schema.ClientFeatures))
        return 0
    latest = latest_features(inputs, params)
    bank = bank_features(inputs.extra_columns)
    names = [*FEATURE_DESCRIPTIONS, *bank]
    categorical = {*CATEGORICAL_FEATURES, *(n for n, k in bank.items() if k == CATEGORICAL)}
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
                    if n in categorical
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
    observed = observed_inputs(inputs, params.financials_lag_months)
    last = pd.to_datetime(observed.account_months["month"]).max().date()
    panel = build_cross_sell_panel(
        inputs,
        months=[last],
        cure_months=params.cure_months,
        financials_lag_months=params.financials_lag_months,
    )
    codes = catalog_codes(inputs.products)
    holding_columns = holdings_feature_names(codes)
    out: dict[str, dict[str, Any]] = {}
    # one pass over plain Python rows: a pandas conversion per client costs a minute on a few
    # thousand clients
    columns = ["client_id", PRODUCT, *holding_columns, *PRODUCT_FEATURES]
    names = {c: i for i, c in enumerate(columns)}
    for row in panel[columns].astype(object).itertuples(index=False, name=None):
        client = out.get(str(row[0]))
        if client is None:  # the holdings are the client's, the same on each of its rows
            client = out[str(row[0])] = {
                "holdings": {c: json_ready(row[names[c]]) for c in holding_columns},
                "products": {},
            }
        client["products"][str(row[1])] = {c: json_ready(row[names[c]]) for c in PRODUCT_FEATURES}
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
