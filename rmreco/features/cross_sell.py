"""The cross-sell panel: one row per (client, snapshot month t, product p) that could be offered.

Rows. For each snapshot month t, each performing client (an account row at t, not in default at
t, see :func:`rmreco.features.labels.performing_rows`) and each catalog product p that

- the client does not hold at t (a holding spell with start <= t <= end, or no end), and
- the client is eligible for: the catalog's ``segments`` (``'sme|corporate'``) name the client's
  segment, and the business is at least ``min_age_months`` old at t (unknown age: not eligible
  for a product with an age floor).

Label ``adopt_3m``: p has a holding spell starting in t+1 .. t+horizon (3 by default). It is
final only when the data's outcome coverage reaches t+horizon (``label_complete``): the later of
the last account month, the last holding start and the stated extract month
(:func:`rmreco.features.labels.adoption_outcome_end`). Holdings may start after the last account
month (an observation window, then the adoptions of the months after it); they label the
snapshots before them and never reach a feature.

Features, all from months <= t:

- the client's features from the shared builder (:func:`rmreco.features.builder.feature_frame`);
- ``holds_<code>`` (0/1) and ``months_held_<code>`` (months since the current spell started,
  0 when not held) for every catalog product;
- of the row's product: ``product_closed_12m`` (a spell of it ended within the last 12 months)
  and ``product_months_since_held`` (months since it was last held, 99 when never);
- ``product_code``, the product as a category.

Everything is one polars plan (no loop per client); the pandas frame is built at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from rmreco.domain.errors import RmrecoError
from rmreco.features.builder import (
    DEFAULT_FINANCIALS_LAG_MONTHS,
    NEVER,
    feature_frame,
    features_to_pandas,
    month_index,
)
from rmreco.features.inputs import ID, MONTH, FeatureInputs
from rmreco.features.labels import (
    DEFAULT_CURE_MONTHS,
    adoption_outcome_end,
    client_numbers,
    performing_rows,
)
from rmreco.features.observations import observed_inputs

_MI = "_mi"
_CID = "_cid"

PRODUCT = "product_code"
LABEL = "adopt_3m"
WEIGHT = "weight"
DEFAULT_HORIZON_MONTHS = 3
#: Features of the row's product (the candidate), with the sentence of a reason code.
PRODUCT_FEATURES: dict[str, str] = {
    "product_closed_12m": "this product was closed in the last 12 months",
    "product_months_since_held": "months since this product was last held",
}
_OPEN = np.iinfo(np.int64).max // 4


class CatalogError(RmrecoError):
    """The product catalog needed for cross-sell is missing or empty."""


def catalog_codes(products: pd.DataFrame | None) -> list[str]:
    """The catalog's product codes, in catalog order.

    Raises:
        CatalogError: there is no catalog.
    """
    if products is None or products.empty or PRODUCT not in products:
        raise CatalogError("cross-sell needs the products table (the catalog); it is empty")
    return [str(c) for c in products[PRODUCT]]


def holdings_feature_names(codes: Sequence[str]) -> list[str]:
    """``holds_<code>`` and ``months_held_<code>`` of every product, in catalog order."""
    return [f"holds_{c}" for c in codes] + [f"months_held_{c}" for c in codes]


def holdings_descriptions(products: pd.DataFrame) -> dict[str, str]:
    """The sentence of every holdings and product feature, from the catalog's product names."""
    names = dict(zip(products[PRODUCT].astype(str), products["name"].astype(str), strict=True))
    out = {f"holds_{c}": f"holds {n}" for c, n in names.items()}
    out.update({f"months_held_{c}": f"months {n} has been held" for c, n in names.items()})
    out.update(PRODUCT_FEATURES)
    out[PRODUCT] = "product offered"
    return out


def panel_columns(codes: Sequence[str]) -> list[str]:
    """Columns the panel adds to the builder's features (before label and weight)."""
    return [PRODUCT, *holdings_feature_names(codes), *PRODUCT_FEATURES]


def build_cross_sell_panel(
    inputs: FeatureInputs,
    *,
    months: Sequence[date] | None = None,
    horizon_months: int = DEFAULT_HORIZON_MONTHS,
    cure_months: int = DEFAULT_CURE_MONTHS,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
    negative_sample: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """The cross-sell rows of every snapshot month (or of ``months``), with features and labels.

    Args:
        inputs: the tables; ``products`` (the catalog) is required.
        months: snapshot months to return; ``None`` returns every month.
        horizon_months: the label window t+1 .. t+horizon.
        cure_months: months a default keeps a client out (see ``default_status``).
        financials_lag_months: as for :func:`rmreco.features.build_features`.
        negative_sample: share of rows with a complete label of 0 kept (a deterministic hash
            of client, month and product decides); kept rows get ``weight`` 1/share so that
            rates computed from the panel stay unbiased. 1 keeps every row.
        seed: seed of the sampling hash.

    Returns:
        ``client_id``, ``month``, ``observed``, the builder's features, :func:`panel_columns`,
        ``adopt_3m`` (0/1), ``label_complete`` and ``weight``; sorted by client, month, product.

    Raises:
        CatalogError: the catalog is missing.
    """
    if not 0 < negative_sample <= 1:
        raise ValueError("negative_sample must be in (0, 1]")
    codes = catalog_codes(inputs.products)
    inputs = observed_inputs(inputs, financials_lag_months)
    frame = feature_frame(inputs, months=months, financials_lag_months=financials_lag_months)
    out = cross_sell_plan(
        inputs,
        frame,
        months=months,
        horizon_months=horizon_months,
        cure_months=cure_months,
        negative_sample=negative_sample,
        seed=seed,
    )
    extra = [*panel_columns(codes), LABEL, "label_complete", WEIGHT]
    panel = features_to_pandas(out, extra=extra)
    panel[PRODUCT] = pd.Categorical(panel[PRODUCT].astype(str), categories=codes)
    return panel


def cross_sell_plan(
    inputs: FeatureInputs,
    frame: pl.LazyFrame,
    *,
    months: Sequence[date] | None = None,
    horizon_months: int = DEFAULT_HORIZON_MONTHS,
    cure_months: int = DEFAULT_CURE_MONTHS,
    negative_sample: float = 1.0,
    seed: int = 0,
) -> pl.LazyFrame:
    """:func:`build_cross_sell_panel` as a lazy polars plan over the snapshot rows of ``frame``
    (a :func:`~rmreco.features.builder.feature_frame` plan of ``inputs``, which must already be
    :func:`~rmreco.features.observations.observed_inputs`), before the pandas edge.

    One plan for the training panel and the service's stored candidates
    (``rmreco.features.snapshots``): a caller selecting a few columns lets polars drop the
    rest of the work. ``months``, when given, are the only snapshot months ``frame`` holds:
    holdings are then laid out from the first of them on, not over the whole history.
    """
    codes = catalog_codes(inputs.products)
    assert inputs.products is not None  # catalog_codes refused a missing catalog
    performing = performing_rows(frame, inputs, cure_months=cure_months)
    ids = client_numbers(inputs)  # the builder's client numbers (by first appearance)
    account_months = month_index(inputs.account_months[MONTH])
    data_start, data_end = int(account_months.min()), int(account_months.max())
    if months is not None and len(months):
        # a row at t reads holdings at t only: earlier months would be laid out for nothing
        data_start = max(data_start, int(month_index(list(months)).min()))

    base = performing.select(_CID, _MI, "segment", "business_age_months")
    # the panel's order, set once on the narrow candidates and kept by every step after it
    # (a sort of the wide panel at the end cost as much as the rest of the plan)
    candidates = _eligible(base, inputs.products, codes).sort([_CID, _MI, PRODUCT])
    spells = _spells(inputs.holdings, ids, codes)
    held = _held_months(spells, data_start, data_end)
    candidates = candidates.join(
        held.select(_CID, _MI, PRODUCT).lazy(),
        on=[_CID, _MI, PRODUCT],
        how="anti",
        maintain_order="left",
    )
    candidates = _label(candidates, spells, horizon_months)
    candidates = _closed(candidates, spells)
    # the outcome coverage, not the last account month: holdings may start after the history
    # (an observation window, then the adoptions of the months after it)
    covered = adoption_outcome_end(inputs)
    candidates = candidates.with_columns(
        ((pl.col(_MI) + horizon_months) <= covered).alias("label_complete")
    )
    candidates = _sample(candidates, ids, negative_sample, seed)

    wide = _holdings_wide(held, codes)
    return (
        candidates.join(performing, on=[_CID, _MI], how="inner", maintain_order="left")
        .join(wide.lazy(), on=[_CID, _MI], how="left", maintain_order="left")
        .with_columns([pl.col(c).fill_null(0.0) for c in holdings_feature_names(codes)])
    )


# --- parts -----------------------------------------------------------------------------------


def _eligible(base: pl.LazyFrame, products: pd.DataFrame, codes: list[str]) -> pl.LazyFrame:
    """(client, month, product) rows the catalog allows: segment and minimum business age."""
    min_age = (
        pd.to_numeric(products["min_age_months"], errors="coerce").to_numpy(dtype=float)
        if "min_age_months" in products
        else np.full(len(products), np.nan)
    )
    rules = pl.DataFrame(
        {
            PRODUCT: codes,
            "segment": [str(s).split("|") for s in products["segments"]],
            "_min_age": min_age,
        },
        schema={PRODUCT: pl.String, "segment": pl.List(pl.String), "_min_age": pl.Float64},
        nan_to_null=True,
    ).explode("segment")
    rules = rules.with_columns(pl.col("segment").str.strip_chars())
    return (
        base.join(rules.lazy(), on="segment", how="inner")
        .filter(
            pl.col("_min_age").is_null()
            | (pl.col("business_age_months") >= pl.col("_min_age")).fill_null(False)
        )
        .select(_CID, _MI, PRODUCT)
    )


def _spells(holdings: pd.DataFrame | None, ids: pl.DataFrame, codes: list[str]) -> pl.DataFrame:
    """Holding spells of catalog products: ``_cid``, product, ``_start`` and ``_end`` (last
    month held; a large number while held)."""
    schema = {_CID: pl.Int32, PRODUCT: pl.String, "_start": pl.Int64, "_end": pl.Int64}
    if holdings is None or holdings.empty:
        return pl.DataFrame(schema=schema)
    end = pd.to_datetime(holdings["end_month"], errors="coerce")
    end_mi = np.where(
        end.isna(), _OPEN, (end.dt.year * 12 + end.dt.month - 1).fillna(0).astype(np.int64)
    )
    frame = pl.DataFrame(
        {
            ID: holdings[ID].astype(str).to_numpy(),
            PRODUCT: holdings[PRODUCT].astype(str).to_numpy(),
            "_start": month_index(holdings["start_month"]),
            "_end": end_mi.astype(np.int64),
        },
        schema={ID: pl.String, PRODUCT: pl.String, "_start": pl.Int64, "_end": pl.Int64},
    )
    return (
        frame.filter(pl.col(PRODUCT).is_in(codes))
        .join(ids, on=ID, how="inner")
        .select(pl.col(_CID).cast(pl.Int32), PRODUCT, "_start", "_end")
    )


def _held_months(spells: pl.DataFrame, data_start: int, data_end: int) -> pl.DataFrame:
    """One row per (client, month, product) held within the data's months, with the months
    the current spell has lasted. Only spells started by that month count, so nothing later
    than t reaches a row at t."""
    if spells.is_empty():
        return pl.DataFrame(
            schema={_CID: pl.Int32, _MI: pl.Int64, PRODUCT: pl.String, "_months": pl.Float64}
        )
    return (
        spells.with_columns(
            pl.max_horizontal("_start", pl.lit(data_start)).alias("_first"),
            pl.min_horizontal("_end", pl.lit(data_end)).alias("_last"),
        )
        .filter(pl.col("_last") >= pl.col("_first"))
        .with_columns(pl.int_ranges("_first", pl.col("_last") + 1).alias(_MI))
        .explode(_MI)
        .group_by([_CID, _MI, PRODUCT])
        .agg((pl.col(_MI) - pl.col("_start") + 1).max().cast(pl.Float64).alias("_months"))
    )


def _holdings_wide(held: pl.DataFrame, codes: list[str]) -> pl.DataFrame:
    """``holds_<code>`` and ``months_held_<code>`` per (client, month) with any holding."""
    if held.is_empty():
        return pl.DataFrame(
            schema={
                _CID: pl.Int32,
                _MI: pl.Int64,
                **dict.fromkeys(holdings_feature_names(codes), pl.Float64),
            }
        )
    wide = held.pivot(on=PRODUCT, index=[_CID, _MI], values="_months", aggregate_function="max")
    columns = []
    for code in codes:
        months = pl.col(code) if code in wide.columns else pl.lit(None, dtype=pl.Float64)
        columns.append(months.is_not_null().cast(pl.Float64).alias(f"holds_{code}"))
        columns.append(months.fill_null(0.0).cast(pl.Float64).alias(f"months_held_{code}"))
    ordered = [*[f"holds_{c}" for c in codes], *[f"months_held_{c}" for c in codes]]
    return wide.select(_CID, _MI, *columns).select(_CID, _MI, *ordered)


def _label(candidates: pl.LazyFrame, spells: pl.DataFrame, horizon: int) -> pl.LazyFrame:
    """``adopt_3m``: a spell of the product starts in t+1 .. t+horizon."""
    # each start labels the months s-horizon .. s-1 that see it inside their window
    labelled = (
        spells.select(
            _CID,
            PRODUCT,
            pl.int_ranges(pl.col("_start") - horizon, pl.col("_start")).alias(_MI),
        )
        .explode(_MI)
        .unique()
        .with_columns(pl.lit(1, dtype=pl.Int8).alias(LABEL))
    )
    return candidates.join(
        labelled.lazy(), on=[_CID, _MI, PRODUCT], how="left", maintain_order="left"
    ).with_columns(pl.col(LABEL).fill_null(0))


def _closed(candidates: pl.LazyFrame, spells: pl.DataFrame) -> pl.LazyFrame:
    """Months since the product was last held, known from the month after a spell ended."""
    ends = (
        spells.filter(pl.col("_end") < _OPEN)
        .select(
            _CID,
            PRODUCT,
            (pl.col("_end") + 1).alias("_known"),
            pl.col("_end").alias("_last_end"),
        )
        .sort("_known")
        .lazy()
    )
    since = pl.col(_MI) - pl.col("_last_end")
    return (
        candidates.join_asof(
            ends,
            left_on=_MI,
            right_on="_known",
            by=[_CID, PRODUCT],
            strategy="backward",
            # an asof join by client and product needs each one's rows sorted on the key: the
            # candidates are sorted by client, month, product (``ends`` by the key itself)
            check_sortedness=False,
        )
        .with_columns(
            since.cast(pl.Float64).fill_null(NEVER).alias("product_months_since_held"),
            (since <= 12).fill_null(False).cast(pl.Float64).alias("product_closed_12m"),
        )
        .drop("_known", "_last_end")
    )


def _sample(candidates: pl.LazyFrame, ids: pl.DataFrame, share: float, seed: int) -> pl.LazyFrame:
    """The candidates with a ``share`` of the completed non-adoptions kept (each kept one
    weighted ``1 / share``): a row is drawn by a hash of its client's id, month and product, so
    the same row is drawn whatever the order of the data's rows or the part of a partitioned
    book it is in (the client numbers ``_cid`` count from 0 in each)."""
    if share >= 1:
        return candidates.with_columns(pl.lit(1.0).alias(WEIGHT))
    key = pl.struct(pl.col(ID), pl.col(_MI), pl.col(PRODUCT).cast(pl.String))
    draw = (key.hash(seed=seed) % 1_000_003).cast(pl.Float64) / 1_000_003
    is_negative = pl.col("label_complete") & (pl.col(LABEL) == 0)
    return (
        candidates.join(ids.lazy().select(_CID, ID), on=_CID, how="left", maintain_order="left")
        .filter(~is_negative | (draw < share))
        .drop(ID)
        .with_columns(pl.when(is_negative).then(1.0 / share).otherwise(1.0).alias(WEIGHT))
    )
