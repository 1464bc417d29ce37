"""This module owns the credit-risk job's split of panel rows into fit, calibration and test
sets: out of time (the default), or a stratified hold-out by client for data with one outcome
window (``split.kind: client``).

Each split is made of pieces that need only small figures of the whole book (the list of months
whose outcome is complete, each client's set), and rules applied row by row: the single process
applies them to the whole panel (:func:`split_credit_panel`), a Dask cluster to each part of a
client-partitioned book (:mod:`rmreco.training.distributed`), so both select the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmreco.features import FeatureInputs
from rmreco.features.labels import LABEL
from rmreco.modeling.credit_estimator import credit_feature_config
from rmreco.modeling.spec import CreditRiskSpec
from rmreco.training.splits import (
    CALIBRATION,
    CLIENT_SPLIT_HINT,
    FIT,
    TEST,
    Split,
    TrainingDataError,
    client_holdout,
    enough_history,
    require_both_outcome_counts,
    require_outcome_months,
    require_segments,
)

#: The three sets' rows of a panel, as boolean masks aligned with it.
Masks = tuple[pd.Series, pd.Series, pd.Series]


def holdout_clients(client_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for the clients kept out of fitting: a stable hash of the id, the same every run."""
    keys = client_ids.astype(str) + f"|{seed}"
    hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)
    return np.asarray(hashes / float(2**64) < share)


@dataclass(frozen=True)
class OutOfTimeMonths:
    """The snapshot months of each set of an out-of-time split."""

    fit: list[Any]
    calibration: list[Any]
    test: list[Any]


def out_of_time_months(
    months: Sequence[Any], spec: CreditRiskSpec, *, has_both_outcomes: bool
) -> OutOfTimeMonths:
    """Test on the latest ``split.test_months`` of ``months`` (the book's months whose outcome
    is complete, sorted), calibrate on the ``split.calibration_months`` before, fit on the rest.

    Raises:
        TrainingDataError: too few months (the refusal proposes ``split.kind: client`` when
            ``has_both_outcomes``).
    """
    need = spec.split.test_months + spec.split.calibration_months + 1
    require_outcome_months(
        len(months),
        horizon_months=spec.label.horizon_months,
        test_months=spec.split.test_months,
        calibration_months=spec.split.calibration_months,
        has_both_outcomes=has_both_outcomes,
    )
    months = list(months)
    return OutOfTimeMonths(
        fit=months[: -need + 1],
        calibration=months[-need + 1 : -spec.split.test_months],
        test=months[-spec.split.test_months :],
    )


def out_of_time_masks(
    complete: pd.DataFrame, months: OutOfTimeMonths, spec: CreditRiskSpec
) -> Masks:
    """The rows of each set among ``complete`` (snapshots whose outcome is complete): fit rows
    are early snapshots of the clients not held out (``split.holdout_share``, by a hash of the
    id) with enough history; calibration and test rows the later ones of the held-out clients."""
    held_out = holdout_clients(complete["client_id"], spec.split.holdout_share, spec.seed)
    fit = (
        complete["month"].isin(months.fit)
        & ~held_out
        & enough_history(complete, spec.split.min_history_months)
    )
    return (
        fit,
        complete["month"].isin(months.calibration) & held_out,
        complete["month"].isin(months.test) & held_out,
    )


def client_masks(complete: pd.DataFrame, sets: pd.Series, spec: CreditRiskSpec) -> Masks:
    """The rows of each set among ``complete`` by the set of their client (``sets``: see
    :func:`rmreco.training.splits.client_holdout`); fit rows need enough history."""
    where = complete["client_id"].astype(str).map(sets)
    return (
        (where == FIT) & enough_history(complete, spec.split.min_history_months),
        where == CALIBRATION,
        where == TEST,
    )


def check_sets(
    counts: Sequence[tuple[str, int, int]], spec: CreditRiskSpec, *, has_both: bool
) -> None:
    """Refuse a split whose set (name, rows, defaulters) lacks an outcome; ``has_both``: the
    complete snapshots hold both outcomes (a refusal of an out-of-time split then proposes a
    split by client).

    Raises:
        TrainingDataError: a set without defaulters, or of defaulters only.
    """
    if spec.split.kind == "client":
        otherwise = "a larger split.holdout_share or more clients that defaulted"
    else:
        otherwise = CLIENT_SPLIT_HINT if has_both else ""
    require_both_outcome_counts(counts, "defaults", otherwise=otherwise)


def _counts(split: Split) -> list[tuple[str, int, int]]:
    return [
        (name, len(frame), int(frame[LABEL].sum()) if len(frame) else 0)
        for name, frame in (
            ("fit", split.fit),
            ("calibration", split.calibration),
            ("test", split.test),
        )
    ]


def split_out_of_time(panel: pd.DataFrame, spec: CreditRiskSpec) -> Split:
    """Fit on early snapshots of some clients; calibrate on the next period and test on the
    latest complete one, both on the other clients (``split.holdout_share``).

    Raises:
        TrainingDataError: too few labelled months, or a period without defaulters.
    """
    complete = panel[panel["label_complete"]]
    has_both = complete[LABEL].nunique() == 2
    months = out_of_time_months(
        sorted(complete["month"].unique()), spec, has_both_outcomes=has_both
    )
    fit, calibration, test = out_of_time_masks(complete, months, spec)
    split = Split(fit=complete[fit], calibration=complete[calibration], test=complete[test])
    check_sets(_counts(split), spec, has_both=has_both)
    return split


def no_complete_outcome(spec: CreditRiskSpec) -> TrainingDataError:
    """The refusal of data without a snapshot whose outcome is complete."""
    return TrainingDataError(
        f"the data has no snapshot with a complete {spec.label.horizon_months}-month "
        "outcome: set a shorter label.horizon_months, or give the data the outcomes after "
        "its last account month (credit events dated up to the end of the outcome window)"
    )


def split_by_client(panel: pd.DataFrame, spec: CreditRiskSpec) -> Split:
    """A stratified hold-out by client (``split.kind: client``): every snapshot whose outcome
    is complete; calibration and test rows are those of held-out clients (see
    :func:`rmreco.training.splits.client_holdout`), fit rows those of the other clients with
    ``split.min_history_months`` of history. All three span the same period.

    Raises:
        TrainingDataError: no snapshot with a complete outcome, or a set without defaulters.
    """
    complete = panel[panel["label_complete"]]
    if complete.empty:
        raise no_complete_outcome(spec)
    sets = client_holdout(
        complete["client_id"],
        complete[LABEL],
        holdout_share=spec.split.holdout_share,
        seed=spec.seed,
    )
    fit, calibration, test = client_masks(complete, sets, spec)
    split = Split(fit=complete[fit], calibration=complete[calibration], test=complete[test])
    check_sets(_counts(split), spec, has_both=True)
    return split


def split_credit_panel(panel: pd.DataFrame, spec: CreditRiskSpec) -> Split:
    """The split ``spec.split.kind`` names: :func:`split_out_of_time` or
    :func:`split_by_client`.

    Raises:
        TrainingDataError: as those do.
    """
    if spec.split.kind == "client":
        return split_by_client(panel, spec)
    return split_out_of_time(panel, spec)


def build_split(inputs: FeatureInputs, spec: CreditRiskSpec) -> Split:
    """The split of the credit panel of ``spec`` (see :func:`split_credit_panel`).

    Raises:
        TrainingDataError: no client of the spec's segments, too few labelled months, or a
            period (or, split by client, a set) without defaulters.
    """
    require_segments(inputs.clients, [str(s) for s in spec.segments])
    return split_credit_panel(credit_feature_config(spec).credit_panel(inputs), spec)
