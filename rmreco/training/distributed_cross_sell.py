"""This module owns the cross-sell job's panels and split on a Dask cluster over a
client-partitioned bank (``rmreco train cross-sell --dask``). Nothing here computes a feature,
a label or a split rule of its own: each part runs the single process's functions
(:mod:`rmreco.training.cross_sell_split`) on its own clients, with the whole book's figures.

What runs where:

- on the workers, one task per part: reading and validating the part, its observed months and
  outcome coverage, its panels (the cross-sell panel of the split's months, non-adopters of the
  fit window sampled by a hash of client, month and product, as in one process), and the
  split's rules applied to its rows; the fit rows stay there, and LightGBM is fitted on them
  with ``lightgbm.dask`` (:class:`rmreco.training.distributed.DaskBoosterFitter`, once for the
  stacked model and once per product);
- on the driver: small figures of every part (its months, its adoption coverage, the months
  its holdings start, for a split by client each client's adoption, row counts by product),
  the calibration and test windows, and the fit rows when there are at most
  :data:`rmreco.training.distributed.SAMPLE_ROWS` of them, else a sample of whole clients, on
  which the baselines (popularity, logistic regression), the choice of features and the
  stability profile are fitted.

Labels need the whole book's adoption coverage (a part sees its own only): each part's
(:func:`rmreco.features.labels.adoption_outcome_end`) is computed on the workers and the latest
given to every part as its ``outcome_end``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rmreco.data.tables import folder_fingerprint
from rmreco.features import FeatureInputs
from rmreco.features.builder import month_index, month_start
from rmreco.features.cross_sell import LABEL, PRODUCT, WEIGHT
from rmreco.features.labels import adoption_outcome_end
from rmreco.features.observations import observed_inputs
from rmreco.modeling.boosting import HeldFitSet
from rmreco.modeling.propensity_estimator import cross_sell_feature_config
from rmreco.modeling.spec import CrossSellSpec
from rmreco.training.cross_sell_split import (
    CLIENT_HOLDOUT_HINT,
    adoptions_within,
    client_panels,
    holding_starts,
    no_complete_outcome,
    out_of_time_hint,
    out_of_time_panels,
    split_months,
)
from rmreco.training.distributed import (
    ClusterSplit,
    PartRead,
    contract,
    gather_split,
    held_fit_set,
    read_parts,
)
from rmreco.training.splits import (
    Split,
    client_holdout,
    complete_outcome_months,
    require_both_outcome_counts,
)

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class _Months:
    """What the driver reads of a part to find the book's snapshot months."""

    #: the distinct months (month indices) the part's clients are observed in
    observed: np.ndarray
    #: the part's adoption coverage (a month index)
    covered: int
    #: the distinct months its holdings start in
    starts: np.ndarray


def _observed(read: PartRead, *, lag: int) -> FeatureInputs:
    return observed_inputs(read.inputs, lag)


def _months(inputs: FeatureInputs) -> _Months:
    return _Months(
        observed=np.unique(np.asarray(month_index(inputs.account_months["month"]), np.int64)),
        covered=adoption_outcome_end(inputs),
        starts=holding_starts(inputs),
    )


def _covering(inputs: FeatureInputs, *, covered: date) -> FeatureInputs:
    """The part's inputs with the whole book's adoption coverage."""
    return replace(inputs, outcome_end=covered)


def _products(read: PartRead) -> pd.DataFrame | None:
    return read.inputs.products


def _fit(split: Split) -> pd.DataFrame:
    return split.fit


def _held(split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split.calibration, split.test


def _client_panel(
    inputs: FeatureInputs, *, spec: CrossSellSpec, months: list[date]
) -> pd.DataFrame:
    return cross_sell_feature_config(spec).cross_sell_panel(inputs, months=months)


def _adopters(panel: pd.DataFrame) -> pd.DataFrame:
    """Whether each client of a part's panel adopted in any of its rows (what the split by
    client stratifies on)."""
    return (
        pd.DataFrame({"client_id": panel["client_id"].astype(str).to_numpy(), LABEL: panel[LABEL]})
        .groupby("client_id", sort=False)[LABEL]
        .max()
        .reset_index()
    )


def _client_split(
    inputs: FeatureInputs,
    panel: pd.DataFrame,
    *,
    spec: CrossSellSpec,
    sets: pd.Series,
    months: list[date],
) -> Split:
    return client_panels(inputs, spec, panel, sets, months)


@dataclass(frozen=True)
class CrossSellCluster:
    """A partitioned bank split for cross-sell on a cluster: the fit window on the workers."""

    split: ClusterSplit
    #: the catalog, the bank's own columns and the currency, as the first part gives them
    products: pd.DataFrame
    extra_columns: dict[str, dict[str, str]]
    currency: str | None
    #: the content fingerprint of the whole folder, as the single process computes it
    fingerprint: str

    def held(self, client: Client) -> HeldFitSet:
        """The estimator's view of the fit window on the workers, grouped by product."""
        return held_fit_set(client, self.split, label=LABEL, weight=WEIGHT)


def cross_sell_split(client: Client, data: Path, spec: CrossSellSpec) -> CrossSellCluster:
    """The split of the partitioned bank ``data`` that
    :func:`rmreco.training.cross_sell_split.build_split` makes of the whole book: the same fit,
    calibration and test rows, the fit rows left on the workers.

    Raises:
        DataContractError: ``data`` is not partitioned, or a part breaks the contract (or
            lacks the catalog, ``products``).
        TrainingDataError: as the single process's split.
    """
    reads = read_parts(client, data, [str(s) for s in spec.segments])
    products = client.submit(_products, reads[0]).result()
    extra, currency = client.submit(contract, reads[0]).result()
    observed = client.map(_observed, reads, lag=spec.financials_lag_months)
    figures: list[_Months] = client.gather(client.map(_months, observed))
    del reads
    horizon = spec.label.horizon_months
    covered = max(f.covered for f in figures)
    complete = complete_outcome_months(
        np.concatenate([f.observed for f in figures]), horizon, last=covered
    )
    observed = client.map(_covering, observed, covered=month_start(covered))
    if spec.split.kind == "client":
        if not complete:
            raise no_complete_outcome(horizon)
        months = [month_start(m) for m in complete]
        panels = client.map(_client_panel, observed, spec=spec, months=months)
        adopters = pd.concat(client.gather(client.map(_adopters, panels)), ignore_index=True)
        sets = client_holdout(
            adopters["client_id"],
            adopters[LABEL],
            holdout_share=spec.split.holdout_share,
            seed=spec.seed,
        )
        [shared] = client.scatter([sets], broadcast=True)
        splits = client.map(_client_split, observed, panels, spec=spec, sets=shared, months=months)
        del panels
        otherwise = CLIENT_HOLDOUT_HINT
    else:
        starts = np.unique(np.concatenate([f.starts for f in figures]))
        windows = split_months(
            complete,
            horizon,
            spec.split.test_months,
            spec.split.calibration_months,
            has_both_outcomes=adoptions_within(starts, complete, horizon),
        )
        splits = client.map(out_of_time_panels, observed, spec=spec, months=windows)
        otherwise = ""
    fit_parts = client.map(_fit, splits)
    held = client.gather(client.map(_held, splits))
    del splits, observed

    def check(counts: list[tuple[str, int, int]]) -> None:
        hint = otherwise or out_of_time_hint(sum(positives for _, _, positives in counts))
        require_both_outcome_counts(counts, "adoptions", otherwise=hint)

    assert products is not None  # the panels refused a bank without a catalog
    return CrossSellCluster(
        split=gather_split(client, fit_parts, held, label=LABEL, check=check, group=PRODUCT),
        products=products,
        extra_columns=extra,
        currency=currency,
        fingerprint=folder_fingerprint(data),
    )
