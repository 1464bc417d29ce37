"""This module owns the train / calibrate / test split of snapshot rows that the training jobs
share (among them the stratified hold-out by client, :func:`client_holdout`), and the rules
that refuse data a split cannot be made from (no client of the spec's segments, too few months
with a complete outcome, a window with one outcome only). Each rule is one function, called by
the jobs and by ``rmreco data check`` (:mod:`rmreco.training.feasibility`), and its refusal names
what the data has and which setting would fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rmreco.domain.errors import RmrecoError


class TrainingDataError(RmrecoError):
    """The data cannot support the requested training (too short a history, no defaults...)."""


@dataclass(frozen=True)
class Split:
    fit: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame

    @property
    def fit_rows(self) -> int:
        """The rows of the whole fit set (see :class:`SampledSplit`)."""
        return len(self.fit)

    @property
    def is_fit_sampled(self) -> bool:
        """Whether ``fit`` holds fewer rows than the fit set."""
        return self.fit_rows > len(self.fit)

    def describe(self) -> dict[str, str]:
        """The months each part spans, as YYYY-MM..YYYY-MM."""
        return {
            "fit_period": self._fit_period(),
            "calibration_period": _span(self.calibration),
            "test_period": _span(self.test),
        }

    def _fit_period(self) -> str:
        return _span(self.fit)


@dataclass(frozen=True)
class SampledSplit(Split):
    """A split whose ``fit`` holds a sample (whole clients) of a fit set kept elsewhere (on a
    cluster's workers: ``rmreco.training.distributed``), with the whole set's rows and months
    (YYYY-MM..YYYY-MM)."""

    whole_fit_rows: int = 0
    whole_fit_period: str = ""

    @property
    def fit_rows(self) -> int:
        return self.whole_fit_rows

    def _fit_period(self) -> str:
        return self.whole_fit_period


def _span(frame: pd.DataFrame) -> str:
    return f"{frame['month'].min():%Y-%m}..{frame['month'].max():%Y-%m}"


def enough_history(frame: pd.DataFrame, min_months: int) -> pd.Series:
    """Rows a model may be fitted on by the length of their account history: at least
    ``min_months`` months (``split.min_history_months``), or none at all -- a client observed
    by its statements or attributes only (a statements-only book, an application sample) has no
    account history to be short of."""
    months = frame["history_months"]
    return (months >= min_months) | (months == 0)


def require_segments(clients: pd.DataFrame, segments: Sequence[str]) -> None:
    """Refuse data with no client of the spec's ``segments``, naming what it has.

    Raises:
        TrainingDataError: no client of those segments (the message counts the clients of
            each segment the data has, and names the spec setting to change).
    """
    counts = clients["segment"].astype(str).value_counts()
    require_segment_counts({str(k): int(v) for k, v in counts.items()}, segments)


def require_segment_counts(counts: Mapping[str, int], segments: Sequence[str]) -> None:
    """:func:`require_segments` of the data's clients counted by segment (``counts``, largest
    first: a book on a cluster is counted part by part).

    Raises:
        TrainingDataError: as :func:`require_segments`.
    """
    if any(counts.get(str(segment), 0) > 0 for segment in segments):
        return
    has = ", ".join(f"{segment} {n:,}" for segment, n in counts.items()) or "no clients"
    raise TrainingDataError(
        f"the data has no client of the spec's segments ({', '.join(segments)}); its clients "
        f"are: {has}. Set `segments` in the spec to segments the data has."
    )


def complete_outcome_months(
    month_indices: np.ndarray, horizon_months: int, *, last: int | None = None
) -> list[int]:
    """The distinct months (as month indices, year * 12 + month - 1) of ``month_indices`` whose
    following ``horizon_months`` months the data still covers: their outcome is complete.

    ``last`` is the last month the data observes an outcome in (for credit,
    :func:`rmreco.features.labels.outcome_end`, which may lie after the last account month);
    by default the latest of ``month_indices``."""
    index = np.unique(np.asarray(month_indices, dtype=np.int64))
    if index.size == 0:
        return []
    end = int(index.max()) if last is None else last
    return [int(m) for m in index if m + horizon_months <= end]


def require_outcome_months(
    available: int,
    *,
    horizon_months: int,
    test_months: int,
    calibration_months: int,
    gap_months: int = 0,
    has_both_outcomes: bool = False,
) -> None:
    """Refuse a split that needs more snapshot months with a complete outcome than the data has.

    The split needs ``test_months + calibration_months + gap_months + 1`` such months (the gap
    is an embargo between the fit and calibration windows; at least one month is fitted).
    ``has_both_outcomes``: the complete snapshots hold both outcomes, so a stratified hold-out
    by client (``split.kind: client``) could be made from them; the refusal then proposes it.

    Raises:
        TrainingDataError: ``available`` is below that; the message names the months the data
            has, those the split needs, and the ``split`` / ``label`` settings that would fit.
    """
    need = test_months + calibration_months + gap_months + 1
    if available >= need:
        return
    parts = f"{test_months} test, {calibration_months} calibration"
    if gap_months:
        parts += f", {gap_months} embargo"
    fixes: list[str] = []
    if available - calibration_months - gap_months - 1 >= 1:
        fixes.append(f"set split.test_months <= {available - calibration_months - gap_months - 1}")
    if available - test_months - gap_months - 1 >= 1:
        fixes.append(f"set split.calibration_months <= {available - test_months - gap_months - 1}")
    room = available - gap_months - 1
    if not fixes and room >= 2:
        fixes.append(
            f"set split.test_months: {room // 2} and split.calibration_months: {room - room // 2}"
        )
    if not fixes:
        fixes.append(
            f"set a label.horizon_months shorter than {horizon_months} (more months then have "
            "a complete outcome)"
        )
    fixes.append(f"give the data {need - available} more months of history")
    if has_both_outcomes and available >= 1:
        fixes.append(
            "set split.kind: client (a stratified hold-out by client over the same period, for "
            "data with one outcome window; a weaker test than out-of-time)"
        )
    raise TrainingDataError(
        f"the data has {available} snapshot months with a complete {horizon_months}-month "
        f"outcome; the split needs at least {need} ({parts}, 1 fit): " + ", or ".join(fixes)
    )


def require_both_outcomes(
    windows: Sequence[tuple[str, pd.DataFrame]],
    label: str,
    outcomes: str,
    *,
    otherwise: str = "",
) -> None:
    """Refuse a split whose fit, calibration or test window lacks one of the two outcomes.

    Args:
        windows: (name, rows) of each window, in the split's order.
        label: the 0/1 label column.
        outcomes: what a positive label is, in the plural ("defaults", "adoptions").
        otherwise: another setting that may fit, appended to the refusal ("" for none).

    Raises:
        TrainingDataError: a window has no positive or no negative row; the message names
            the first such window, its rows and positives, and the settings that widen it.
    """
    require_both_outcome_counts(
        [
            (name, len(frame), int(frame[label].sum()) if len(frame) else 0)
            for name, frame in windows
        ],
        outcomes,
        otherwise=otherwise,
    )


def require_both_outcome_counts(
    windows: Sequence[tuple[str, int, int]], outcomes: str, *, otherwise: str = ""
) -> None:
    """:func:`require_both_outcomes` of windows given by their counts: (name, rows, positives)
    of each (a window held on a cluster's workers is counted there).

    Raises:
        TrainingDataError: as :func:`require_both_outcomes`.
    """
    for name, rows, positives in windows:
        if positives == 0 or positives == rows:
            widen = (
                "more months before the calibration and test windows (fewer "
                "split.test_months / split.calibration_months) or a lower "
                "split.min_history_months"
                if name == "fit"
                else f"a longer split.{name}_months"
            )
            raise TrainingDataError(
                f"the {name} period has {rows} rows and {positives} {outcomes}; "
                f"both outcomes are needed: {widen} may give it both"
                + (f", or {otherwise}" if otherwise else "")
            )


#: Where :func:`client_holdout` puts a client.
FIT, CALIBRATION, TEST = "fit", "calibration", "test"
#: The setting a refusal of an out-of-time split proposes when the data holds both outcomes.
CLIENT_SPLIT_HINT = (
    "set split.kind: client (a stratified hold-out by client over the same period; a weaker "
    "test than out-of-time)"
)


def client_holdout(
    client_ids: pd.Series, labels: pd.Series, *, holdout_share: float, seed: int
) -> pd.Series:
    """A stratified hold-out by client: which set (``fit``, ``calibration``, ``test``) each
    client of ``client_ids`` belongs to, indexed by client id (as strings).

    Clients are split in two strata: those with a positive label in any of their rows and the
    others. Within each stratum, clients (sorted by id, then shuffled with ``seed``) go
    ``holdout_share / 2`` to test, as many to calibration, the rest to fit; a stratum of three
    clients or more puts at least one in each set. The same ids, labels and seed give the same
    sets, and a client is in one set only.

    Args:
        client_ids: the client of each row.
        labels: the 0/1 label of each row (aligned with ``client_ids``).
        holdout_share: the share of clients held out of fitting (``0 < share < 1``).
        seed: the random seed (the spec's).
    """
    ever = (
        pd.DataFrame({"client": client_ids.astype(str).to_numpy(), "y": labels.to_numpy()})
        .groupby("client", sort=True)["y"]
        .max()
        .fillna(0)
        .astype(bool)
    )
    rng = np.random.default_rng(seed)
    assignment = pd.Series(FIT, index=ever.index, dtype=object, name="set")
    for positive in (True, False):  # a fixed order: the draws do not depend on the data's order
        members = ever.index[ever.to_numpy() == positive].to_numpy()
        if members.size == 0:
            continue
        shuffled = members[rng.permutation(members.size)]
        per_set = round(members.size * holdout_share / 2)
        if members.size >= 3:
            per_set = max(per_set, 1)
        per_set = min(per_set, (members.size - 1) // 2) if members.size >= 3 else 0
        assignment[shuffled[:per_set]] = TEST
        assignment[shuffled[per_set : 2 * per_set]] = CALIBRATION
    return assignment
