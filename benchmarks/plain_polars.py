"""The plain polars reference the feature benchmarks measure rmreco against: the builder's own
account-feature expressions (``rmreco.features.builder.account_feature_expressions``) applied
directly to an ``account_months`` Parquet file, with the few grid columns they read. No monthly
grid (every row is an account row), no joins of the other tables, no labels, no database and no
pandas at either edge: what the same aggregates cost in polars alone.

Imported by ``bench_features.py`` and ``bench_refresh.py`` (run as scripts from this folder).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rmreco.features.builder import account_feature_expressions


def _grid_columns() -> list[pl.Expr]:
    """The columns the expressions read besides the account columns, on a file sorted by
    client, then month."""
    year, month = pl.col("month").dt.year().cast(pl.Int64), pl.col("month").dt.month()
    return [
        (year * 12 + month - 1).alias("_mi"),
        pl.int_range(pl.len()).over("client_id").alias("_pos"),
        pl.lit(True).alias("observed"),
        pl.lit(True).alias("_account"),  # every row is an account row
        pl.col("client_id").alias("_cid"),  # the builder's partition column
    ]


def account_features(path: Path, *, lazy: bool = False) -> pl.DataFrame:
    """The account features of every row of the ``account_months`` file at ``path``: eagerly
    (``DataFrame.with_columns``), or as one lazy query (``lazy``: polars' own engine picks the
    plan; faster, and holding about twice the memory)."""
    if lazy:
        return (
            pl.scan_parquet(path)
            .sort(["client_id", "month"])
            .with_columns(_grid_columns())
            .with_columns(account_feature_expressions())
            .collect()
        )
    frame = pl.read_parquet(path).sort(["client_id", "month"]).with_columns(_grid_columns())
    return frame.with_columns(account_feature_expressions())
