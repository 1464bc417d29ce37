"""This module owns training on a Dask cluster over a client-partitioned bank (``rmreco train
credit-risk --dask``): the panel built part by part on the workers, the split made there by the
single process's rules, and LightGBM fitted with ``lightgbm.dask`` on fit rows that never leave
the workers. Nothing here computes a feature, a label or a split rule of its own.

What runs where:

- on the workers, one task per part (``rmreco.data.partitions``: a block of whole clients):
  reading and validating the part, its panel (``credit_feature_config(spec).credit_panel``, as
  the single process builds it for the whole book), the split's rules applied to its rows, and
  the part's share of the LightGBM fit;
- on the driver: small figures of every part (its outcome coverage, the months whose outcome is
  complete, each client's worst outcome for a split by client, row counts, text levels), the
  calibration and test rows (the held-out clients, a minority), and the fit rows when there are
  at most :data:`SAMPLE_ROWS` of them, else a sample of whole clients of at most that many rows
  (the clients with the smallest hash of their id), which the WoE scorecard, the choice of
  features and the validation's stability read.

Labels need the whole book's outcome coverage (a part sees its own only): each part's coverage
(:func:`rmreco.features.labels.outcome_end`) is computed on the workers, the latest is given to
every part as its ``outcome_end``, so a part's labels are the whole book's.

LightGBM's early stopping on the calibration set is
:class:`rmreco.modeling.boosting.ValidationStopping`, sent to every worker with the whole
calibration set (``lightgbm.dask`` would measure its validation sets on each worker's share only):
the same rule as the single process, measured by every worker alike.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd

from rmreco.data.tables import folder_fingerprint
from rmreco.features import FeatureInputs
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import LABEL, outcome_end
from rmreco.features.observations import observed_inputs
from rmreco.modeling.boosting import (
    HeldFitSet,
    ValidationStopping,
    booster_params,
    stops_early,
)
from rmreco.modeling.credit_estimator import credit_feature_config
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.spec import CreditRiskSpec
from rmreco.training.credit_split import (
    Masks,
    OutOfTimeMonths,
    check_sets,
    client_masks,
    no_complete_outcome,
    out_of_time_masks,
    out_of_time_months,
)
from rmreco.training.partitioned import partition_count
from rmreco.training.splits import SampledSplit, client_holdout, require_segment_counts

if TYPE_CHECKING:
    from distributed import Client, Future

#: The most fit rows the driver holds: a larger fit set is represented on the driver (for the
#: WoE scorecard, the choice of features, the validation's stability) by the whole clients with
#: the smallest hash of their id whose rows add up to no more than this; LightGBM sees every row.
SAMPLE_ROWS = 200_000
#: LightGBM's data-parallel learner supports this monotone-constraints method only (it falls
#: back to it from ``intermediate`` or ``advanced``): set it so, and the run logs it
CLUSTER_MONOTONE_METHOD = "basic"
#: Minutes a worker's LightGBM waits on the others' sockets before it fails (LightGBM's
#: ``time_out``; its default of 120 lets a network set-up that went wrong hang for two hours)
NETWORK_TIMEOUT_MINUTES = 20


def month_date(index: int) -> date:
    """The first day of month ``index`` (year * 12 + month - 1)."""
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class _Part:
    """One part as read on a worker: its feature inputs and the currency of its clients table."""

    inputs: FeatureInputs
    currency: str | None


def _read_part(part: int, *, data: Path) -> _Part:
    inputs, validated = read_feature_inputs(data, part=part)
    return _Part(inputs, validated.currency)


def _part_segments(read: _Part) -> dict[str, int]:
    return {
        str(k): int(v) for k, v in read.inputs.clients["segment"].astype(str).value_counts().items()
    }


def _contract(read: _Part) -> tuple[dict[str, dict[str, str]], str | None]:
    """The bank's own columns (by table) and the currency of a part's tables."""
    extra = {table: dict(kinds) for table, kinds in read.inputs.extra_columns.items()}
    return extra, read.currency


def _part_outcome_end(read: _Part, *, financials_lag_months: int) -> int:
    """The part's outcome coverage as the panel computes it (on the observed inputs)."""
    return outcome_end(observed_inputs(read.inputs, financials_lag_months))


def _credit_panel(read: _Part, *, spec: CreditRiskSpec, covered: date) -> pd.DataFrame:
    """The part's credit panel, labelled with the whole book's outcome coverage ``covered``."""
    inputs = replace(read.inputs, outcome_end=covered)
    return credit_feature_config(spec).credit_panel(inputs)


@dataclass(frozen=True)
class ClusterData:
    """A partitioned bank read on the cluster: each part's panel stays on the workers."""

    data: Path
    parts: int
    #: each part's credit panel (futures, in part order)
    panels: list[Future]
    #: the whole book's outcome coverage, as a month index
    outcome_end: int
    #: the bank's own columns and the currency, as the first part's tables give them
    extra_columns: dict[str, dict[str, str]]
    currency: str | None
    #: the content fingerprint of the whole folder, as the single process computes it
    fingerprint: str


def credit_panels(client: Client, data: Path, spec: CreditRiskSpec) -> ClusterData:
    """Read every part of ``data`` on the cluster and build its credit panel there.

    Raises:
        DataContractError: ``data`` is not partitioned, or a part breaks the contract.
        TrainingDataError: no client of the spec's segments (they are counted over every
            part).
    """
    from distributed import wait

    parts = partition_count(data)
    # part k read on worker k mod n, and every step after it where its data lie: the same
    # cluster gives LightGBM the same rows on the same worker, hence the same model, every run
    workers = sorted(client.scheduler_info()["workers"])
    reads = [
        client.submit(_read_part, k, data=data, workers=[workers[k % len(workers)]], pure=False)
        for k in range(parts)
    ]
    segments: dict[str, int] = {}
    for counts in client.gather(client.map(_part_segments, reads)):
        for segment, n in counts.items():
            segments[segment] = segments.get(segment, 0) + n
    require_segment_counts(
        dict(sorted(segments.items(), key=lambda item: -item[1])), [str(s) for s in spec.segments]
    )
    ends = client.gather(
        client.map(_part_outcome_end, reads, financials_lag_months=spec.financials_lag_months)
    )
    covered = max(int(e) for e in ends)
    panels = client.map(_credit_panel, reads, spec=spec, covered=month_date(covered))
    extra, currency = client.submit(_contract, reads[0]).result()
    wait(panels)  # built: the parts' inputs can go
    del reads
    return ClusterData(
        data=data,
        parts=parts,
        panels=panels,
        outcome_end=covered,
        extra_columns=extra,
        currency=currency,
        fingerprint=folder_fingerprint(data),
    )


# --- the split ---------------------------------------------------------------------------------


def _complete(panel: pd.DataFrame) -> pd.DataFrame:
    return panel[panel["label_complete"]]


def _month_labels(panel: pd.DataFrame) -> tuple[list[Any], list[int]]:
    """The months of the part's complete snapshots, and the labels they hold."""
    complete = _complete(panel)
    return list(complete["month"].unique()), [int(v) for v in complete[LABEL].unique()]


def _worst_outcomes(panel: pd.DataFrame) -> pd.DataFrame:
    """Each client's worst outcome over its complete snapshots (what the split by client
    stratifies on)."""
    complete = _complete(panel)
    return (
        pd.DataFrame(
            {
                "client_id": complete["client_id"].astype(str).to_numpy(),
                LABEL: complete[LABEL].to_numpy(),
            }
        )
        .groupby("client_id", sort=False)[LABEL]
        .max()
        .reset_index()
    )


@dataclass(frozen=True)
class _Rule:
    """What a part needs to select its rows: the months of an out-of-time split, or each
    client's set of a split by client."""

    spec: CreditRiskSpec
    months: OutOfTimeMonths | None = None
    sets: pd.Series | None = None

    def masks(self, complete: pd.DataFrame) -> Masks:
        if self.months is not None:
            return out_of_time_masks(complete, self.months, self.spec)
        assert self.sets is not None
        return client_masks(complete, self.sets, self.spec)


def _fit_rows(panel: pd.DataFrame, rule: _Rule) -> pd.DataFrame:
    complete = _complete(panel)
    return complete[rule.masks(complete)[0]]


def _held_rows(panel: pd.DataFrame, rule: _Rule) -> tuple[pd.DataFrame, pd.DataFrame]:
    complete = _complete(panel)
    _, calibration, test = rule.masks(complete)
    return complete[calibration], complete[test]


@dataclass(frozen=True)
class _FitFigures:
    """What the driver reads of a part's fit rows."""

    rows: int
    positives: int
    first: Any
    last: Any
    #: the sorted text levels of every column an encoder may take as categorical
    levels: dict[str, list[str]]
    #: each client's sampling key and rows
    clients: pd.DataFrame


def sampling_keys(client_ids: pd.Series) -> np.ndarray:
    """The order in which clients enter the driver's sample: a stable hash of the id."""
    keys = client_ids.astype(str) + "|sample"
    return pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        name
        for name in frame.columns
        if name not in ("client_id", "month")
        and not pd.api.types.is_numeric_dtype(frame[name].dtype)
        and not pd.api.types.is_datetime64_any_dtype(frame[name].dtype)
        and not pd.api.types.is_bool_dtype(frame[name].dtype)
    ]


def _fit_figures(fit: pd.DataFrame) -> _FitFigures:
    ids = fit["client_id"].astype(str)
    counts = ids.value_counts(sort=False)
    return _FitFigures(
        rows=len(fit),
        positives=int(fit[LABEL].sum()),
        first=fit["month"].min() if len(fit) else None,
        last=fit["month"].max() if len(fit) else None,
        levels={
            name: sorted(fit[name].dropna().astype(str).unique()) for name in _text_columns(fit)
        },
        clients=pd.DataFrame(
            {
                "client_id": counts.index.to_numpy(),
                "key": sampling_keys(pd.Series(counts.index)),
                "rows": counts.to_numpy(),
            }
        ),
    )


def _sample_rows(fit: pd.DataFrame, clients: set[str] | None) -> pd.DataFrame:
    return fit if clients is None else fit[fit["client_id"].astype(str).isin(clients)]


def sample_clients(figures: pd.DataFrame, limit: int) -> set[str] | None:
    """The clients (``client_id``, ``key``, ``rows``) of the driver's sample: those with the
    smallest keys whose rows add up to no more than ``limit``; None when all fit."""
    if int(figures["rows"].sum()) <= limit:
        return None
    ordered = figures.sort_values(["key", "client_id"], kind="stable")
    kept = ordered[ordered["rows"].cumsum().to_numpy() <= limit]
    return set(kept["client_id"].astype(str))


@dataclass(frozen=True)
class ClusterSplit:
    """A split whose fit rows stay on the workers: ``split.fit`` is the driver's sample of them
    (all of them when at most :data:`SAMPLE_ROWS`), its calibration and test sets whole."""

    split: SampledSplit
    #: each part's fit rows (futures, in part order) and their counts
    fit_parts: list[Future]
    part_rows: list[int]
    events: int
    levels: dict[str, tuple[str, ...]]
    workers: int
    parts: int

    def trained_on(self) -> str:
        """Where the run was trained, for its params."""
        return f"dask, {self.workers} workers, {self.parts} parts"


def credit_split(client: Client, book: ClusterData, spec: CreditRiskSpec) -> ClusterSplit:
    """The split of the panels of ``book`` that
    :func:`rmreco.training.credit_split.split_credit_panel` makes of the whole book's panel: the
    same fit, calibration and test rows.

    Raises:
        TrainingDataError: as the single process's split.
    """
    if spec.split.kind == "client":
        worst = pd.concat(
            client.gather(client.map(_worst_outcomes, book.panels)), ignore_index=True
        )
        if worst.empty:
            raise no_complete_outcome(spec)
        sets = client_holdout(
            worst["client_id"], worst[LABEL], holdout_share=spec.split.holdout_share, seed=spec.seed
        )
        rule = _Rule(spec, sets=sets)
        has_both = True
    else:
        months: set[Any] = set()
        labels: set[int] = set()
        for part_months, part_labels in client.gather(client.map(_month_labels, book.panels)):
            months.update(part_months)
            labels.update(part_labels)
        has_both = len(labels) == 2
        rule = _Rule(
            spec, months=out_of_time_months(sorted(months), spec, has_both_outcomes=has_both)
        )
    [shared] = client.scatter([rule], broadcast=True)
    fit_parts = client.map(_fit_rows, book.panels, rule=shared)
    held = client.gather(client.map(_held_rows, book.panels, rule=shared))
    calibration = pd.concat([c for c, _ in held], ignore_index=True)
    test = pd.concat([t for _, t in held], ignore_index=True)
    figures: list[_FitFigures] = client.gather(client.map(_fit_figures, fit_parts))
    rows = sum(f.rows for f in figures)
    positives = sum(f.positives for f in figures)
    check_sets(
        [
            ("fit", rows, positives),
            ("calibration", len(calibration), int(calibration[LABEL].sum())),
            ("test", len(test), int(test[LABEL].sum())),
        ],
        spec,
        has_both=has_both,
    )
    chosen = sample_clients(pd.concat([f.clients for f in figures], ignore_index=True), SAMPLE_ROWS)
    sample = pd.concat(
        client.gather(client.map(_sample_rows, fit_parts, clients=chosen)), ignore_index=True
    )
    levels: dict[str, set[str]] = {}
    for f in figures:
        for name, values in f.levels.items():
            levels.setdefault(name, set()).update(values)
    months_seen = [m for f in figures for m in (f.first, f.last) if m is not None]
    return ClusterSplit(
        split=SampledSplit(
            fit=sample,
            calibration=calibration,
            test=test,
            whole_fit_rows=rows,
            whole_fit_period=f"{min(months_seen):%Y-%m}..{max(months_seen):%Y-%m}",
        ),
        fit_parts=fit_parts,
        part_rows=[f.rows for f in figures],
        events=int(min(positives, rows - positives)),
        levels={name: tuple(sorted(values)) for name, values in levels.items()},
        workers=len(client.scheduler_info()["workers"]),
        parts=book.parts,
    )


# --- LightGBM on the workers -------------------------------------------------------------------


def _encode(*fits: pd.DataFrame, encoder: FeatureEncoder) -> np.ndarray:
    return np.concatenate([encoder.transform(fit) for fit in fits])


def _labels(*fits: pd.DataFrame) -> np.ndarray:
    return np.concatenate([fit[LABEL].to_numpy(dtype=np.int32) for fit in fits])


class _RankedClient:
    """The Dask client as ``lightgbm.dask`` sees it, but for ``who_has``, which answers in the
    order of the futures asked about: ``lightgbm.dask`` ranks the workers (LightGBM's machine
    ranks) in the order ``who_has`` lists its blocks, and ``distributed`` lists them through a
    set, in no fixed order. A worker's rank decides which features' histogram bins it finds
    from its rows, so a fixed rank per block gives the same model every run."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def who_has(self, futures: Sequence[Future], **kwargs: Any) -> dict[Any, Any]:
        found = self._client.who_has(futures, **kwargs)
        return {f.key: found[f.key] for f in futures}


@dataclass(frozen=True)
class DaskBoosterFitter:
    """Fits LightGBM with ``lightgbm.dask`` on fit rows kept on the workers (a
    :class:`rmreco.modeling.boosting.BoosterFitter`): the parameters of
    :func:`~rmreco.modeling.boosting.booster_params`, the categorical features by index from the
    encoder, each worker's threads (one on a LocalCluster), stopped early on the validation set
    the estimator passes by :class:`~rmreco.modeling.boosting.ValidationStopping`. Gives a plain
    ``lgb.Booster`` holding the trees up to its best round, as the single process's fit does."""

    client: Client
    fit_parts: Sequence[Future]
    part_rows: Sequence[int]

    def __call__(
        self,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        encoder: FeatureEncoder,
        params: dict[str, Any],
        num_boost_round: int,
        early_stopping_rounds: int | None,
        seed: int,
        monotone: Sequence[int] | None = None,
    ) -> lgb.Booster:
        import dask
        import dask.array as da
        from lightgbm.dask import DaskLGBMClassifier

        # one block of rows per worker, its parts stacked in part order where they lie: each
        # worker's rows, their order and the workers' order (LightGBM's ranks) are then the
        # same every run, and so is the model
        holders = self.client.who_has(list(self.fit_parts))
        by_worker: dict[str, list[tuple[Future, int]]] = {}
        for future, rows in zip(self.fit_parts, self.part_rows, strict=True):
            if rows:
                by_worker.setdefault(sorted(holders[future.key])[0], []).append((future, rows))
        X_blocks, y_blocks = [], []
        for worker in sorted(by_worker):
            futures = [f for f, _ in by_worker[worker]]
            rows = sum(n for _, n in by_worker[worker])
            pinned = {"workers": [worker], "allow_other_workers": False, "pure": False}
            x = self.client.submit(_encode, *futures, encoder=encoder, **pinned)
            labels = self.client.submit(_labels, *futures, **pinned)
            X_blocks.append(
                da.from_delayed(
                    dask.delayed(x), shape=(rows, len(encoder.features)), dtype=np.float64
                )
            )
            y_blocks.append(da.from_delayed(dask.delayed(labels), shape=(rows,), dtype=np.int32))
        X, y = da.concatenate(X_blocks), da.concatenate(y_blocks)
        full = booster_params(
            {
                **params,
                "monotone_constraints_method": CLUSTER_MONOTONE_METHOD,
                "time_out": NETWORK_TIMEOUT_MINUTES,
            },
            seed=seed,
            monotone=monotone,
        )
        callbacks = []
        if early_stopping_rounds and stops_early(y_val, early_stopping_rounds):
            callbacks.append(
                ValidationStopping.for_params(X_val, y_val, early_stopping_rounds, full)
            )
        # LightGBM's messages (its network's set-up on every worker, the ports it looks for
        # here) through logging, not printed: the command's output stays the command's
        lgb.register_logger(logging.getLogger("lightgbm"))
        quiet = [
            self.client.submit(_quiet_lightgbm, workers=[w], allow_other_workers=False, pure=False)
            for w in self.client.scheduler_info()["workers"]
        ]
        self.client.gather(quiet)
        # LightGBM uses each worker's threads (one on a LocalCluster: rmreco.training.cluster)
        # the client's view with ranked blocks, where lightgbm.dask takes a Client
        ranked = cast("Client", _RankedClient(self.client))
        model = DaskLGBMClassifier(client=ranked, n_estimators=num_boost_round, **full)
        with warnings.catch_warnings():
            # the warning that the wrapper's own thread setting (n_jobs) gives way to the above
            warnings.filterwarnings("ignore", message="Parameter (n_jobs|num_threads) will be")
            model.fit(
                X,
                y,
                feature_name=list(encoder.features),
                categorical_feature=encoder.categorical_indices,
                callbacks=callbacks,
            )
        fitted = model.booster_
        booster = lgb.Booster(model_str=fitted.model_to_string())
        booster.best_iteration = fitted.best_iteration
        return booster


def _quiet_lightgbm() -> None:
    """A task on each worker: LightGBM's messages to a logger that keeps errors only (its
    network's set-up says every port it binds and every retry of a connection, printed to the
    worker's output, which a LocalCluster shares with the command). The library keeps its
    message callback per thread, so this runs as a task, on the thread the worker's tasks run
    on (one, on a LocalCluster: ``rmreco.training.cluster``)."""
    from lightgbm import basic

    logger = logging.getLogger("lightgbm.worker")
    logger.setLevel(logging.ERROR)
    lgb.register_logger(logger)
    basic._LIB.LGBM_RegisterLogCallback(basic._LIB.callback)


def held_fit_set(client: Client, split: ClusterSplit) -> HeldFitSet:
    """The estimator's view of the fit set on the workers (see
    :class:`rmreco.modeling.boosting.HeldFitSet`)."""
    return HeldFitSet(
        rows=split.split.fit_rows,
        events=split.events,
        levels=split.levels,
        fit_booster=DaskBoosterFitter(client, split.fit_parts, split.part_rows),
    )
