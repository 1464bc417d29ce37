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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd

from rmreco.data.tables import folder_fingerprint
from rmreco.features import FeatureInputs
from rmreco.features.builder import month_start
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import LABEL, outcome_end
from rmreco.features.observations import observed_inputs
from rmreco.modeling.boosting import (
    FitRows,
    GroupCount,
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


@dataclass(frozen=True)
class PartRead:
    """One part as read on a worker: its feature inputs and the currency of its clients table."""

    inputs: FeatureInputs
    currency: str | None


def _read_part(part: int, *, data: Path) -> PartRead:
    inputs, validated = read_feature_inputs(data, part=part)
    return PartRead(inputs, validated.currency)


def _part_segments(read: PartRead) -> dict[str, int]:
    return {
        str(k): int(v) for k, v in read.inputs.clients["segment"].astype(str).value_counts().items()
    }


def contract(read: PartRead) -> tuple[dict[str, dict[str, str]], str | None]:
    """The bank's own columns (by table) and the currency of a part's tables."""
    extra = {table: dict(kinds) for table, kinds in read.inputs.extra_columns.items()}
    return extra, read.currency


def _part_outcome_end(read: PartRead, *, financials_lag_months: int) -> int:
    """The part's outcome coverage as the panel computes it (on the observed inputs)."""
    return outcome_end(observed_inputs(read.inputs, financials_lag_months))


def _credit_panel(read: PartRead, *, spec: CreditRiskSpec, covered: date) -> pd.DataFrame:
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


def read_parts(client: Client, data: Path, segments: Sequence[str]) -> list[Future]:
    """Read and validate every part of ``data`` on the cluster (futures of each part's feature
    inputs, in part order), after counting the clients of ``segments`` over every part.

    Raises:
        DataContractError: ``data`` is not partitioned, or a part breaks the contract.
        TrainingDataError: no client of ``segments`` in any part.
    """
    parts = partition_count(data)
    # part k read on worker k mod n, and every step after it where its data lie: the same
    # cluster gives LightGBM the same rows on the same worker, hence the same model, every run
    workers = sorted(client.scheduler_info()["workers"])
    reads = [
        client.submit(_read_part, k, data=data, workers=[workers[k % len(workers)]], pure=False)
        for k in range(parts)
    ]
    counts: dict[str, int] = {}
    for part in client.gather(client.map(_part_segments, reads)):
        for segment, n in part.items():
            counts[segment] = counts.get(segment, 0) + n
    require_segment_counts(
        dict(sorted(counts.items(), key=lambda item: -item[1])), [str(s) for s in segments]
    )
    return reads


def credit_panels(client: Client, data: Path, spec: CreditRiskSpec) -> ClusterData:
    """Read every part of ``data`` on the cluster and build its credit panel there.

    Raises:
        DataContractError: ``data`` is not partitioned, or a part breaks the contract.
        TrainingDataError: no client of the spec's segments (they are counted over every
            part).
    """
    from distributed import wait

    reads = read_parts(client, data, [str(s) for s in spec.segments])
    ends = client.gather(
        client.map(_part_outcome_end, reads, financials_lag_months=spec.financials_lag_months)
    )
    covered = max(int(e) for e in ends)
    panels = client.map(_credit_panel, reads, spec=spec, covered=month_start(covered))
    extra, currency = client.submit(contract, reads[0]).result()
    wait(panels)  # built: the parts' inputs can go
    del reads
    return ClusterData(
        data=data,
        parts=len(panels),
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
    #: rows and positive labels by the value of the grouping column, if any
    groups: dict[str, GroupCount]


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


def _fit_figures(fit: pd.DataFrame, *, label: str, group: str | None) -> _FitFigures:
    ids = fit["client_id"].astype(str)
    counts = ids.value_counts(sort=False)
    groups: dict[str, GroupCount] = {}
    if group is not None:
        by = fit.groupby(fit[group].astype(str), sort=True, observed=True)[label]
        groups = {
            str(value): GroupCount(rows=int(n), positives=int(p))
            for value, n, p in zip(by.size().index, by.size(), by.sum(), strict=True)
        }
    return _FitFigures(
        rows=len(fit),
        positives=int(fit[label].sum()),
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
        groups=groups,
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
    #: rows and positive labels of the whole fit set by the value of its grouping column
    groups: dict[str, GroupCount] = field(default_factory=dict)

    def trained_on(self) -> str:
        """Where the run was trained, for its params."""
        return f"dask, {self.workers} workers, {self.parts} parts"


#: Refuses a split from each set's (name, rows, positives): the job's own check of its sets
SetCheck = Callable[[list[tuple[str, int, int]]], None]


def gather_split(
    client: Client,
    fit_parts: list[Future],
    held: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    label: str,
    check: SetCheck,
    group: str | None = None,
) -> ClusterSplit:
    """The split whose fit rows are ``fit_parts`` (left on the workers) and whose calibration
    and test rows are ``held`` (each part's, in part order): the sets' counts checked by
    ``check``, the driver's sample of the fit rows (whole clients, :data:`SAMPLE_ROWS` at most),
    the fit set's text levels and, with ``group``, its rows and positives by that column.

    Raises:
        TrainingDataError: as ``check`` raises.
    """
    calibration = pd.concat([c for c, _ in held], ignore_index=True)
    test = pd.concat([t for _, t in held], ignore_index=True)
    figures: list[_FitFigures] = client.gather(
        client.map(_fit_figures, fit_parts, label=label, group=group)
    )
    rows = sum(f.rows for f in figures)
    positives = sum(f.positives for f in figures)
    check(
        [
            ("fit", rows, positives),
            ("calibration", len(calibration), int(calibration[label].sum())),
            ("test", len(test), int(test[label].sum())),
        ]
    )
    chosen = sample_clients(pd.concat([f.clients for f in figures], ignore_index=True), SAMPLE_ROWS)
    # sent once to every worker, as data: given to map as it is, a set of some thousands of ids
    # makes distributed 2026.8's scheduler fail an assertion on a task named after the argument
    [shared] = client.scatter([chosen], broadcast=True)
    sample = pd.concat(
        client.gather(client.map(_sample_rows, fit_parts, clients=shared)), ignore_index=True
    )
    levels: dict[str, set[str]] = {}
    groups: dict[str, GroupCount] = {}
    for f in figures:
        for name, values in f.levels.items():
            levels.setdefault(name, set()).update(values)
        for value, count in f.groups.items():
            seen = groups.get(value, GroupCount(0, 0))
            groups[value] = GroupCount(seen.rows + count.rows, seen.positives + count.positives)
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
        parts=len(fit_parts),
        groups=dict(sorted(groups.items())),
    )


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
    return gather_split(
        client,
        fit_parts,
        held,
        label=LABEL,
        check=lambda counts: check_sets(counts, spec, has_both=has_both),
    )


# --- LightGBM on the workers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """A worker's rows of a fit: its model matrix, labels and weights (None: unweighted)."""

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray | None


def _block(
    *fits: pd.DataFrame,
    encoder: FeatureEncoder,
    label: str,
    weight: str | None,
    rows: FitRows | None,
) -> _Block:
    """The rows of ``fits`` that ``rows`` selects, stacked in order, as LightGBM reads them."""
    if rows is not None:
        values = set(rows.values)
        fits = tuple(fit[fit[rows.column].astype(str).isin(values)] for fit in fits)
    return _Block(
        X=np.concatenate([encoder.transform(fit) for fit in fits]),
        y=np.concatenate([fit[label].to_numpy(dtype=np.int32) for fit in fits]),
        w=(
            None
            if weight is None
            else np.concatenate([fit[weight].to_numpy(dtype=np.float64) for fit in fits])
        ),
    )


def _block_part(block: _Block, name: str) -> np.ndarray | None:
    return cast("np.ndarray | None", getattr(block, name))


def _block_rows(block: _Block) -> int:
    return len(block.y)


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
    #: the fit frames' label column, and the column weighing each row (None: unweighted)
    label: str = LABEL
    weight: str | None = None

    def _blocks(
        self, encoder: FeatureEncoder, rows: FitRows | None
    ) -> list[tuple[str, Future, int]]:
        """One block of rows per worker, its parts stacked in part order where they lie: each
        worker's rows, their order and the workers' order (LightGBM's ranks) are then the same
        every run, and so is the model. Each worker, its block and the block's rows, in worker
        order; a worker without a selected row holds none."""
        holders = self.client.who_has(list(self.fit_parts))
        by_worker: dict[str, list[Future]] = {}
        for future, n in zip(self.fit_parts, self.part_rows, strict=True):
            if n:
                by_worker.setdefault(sorted(holders[future.key])[0], []).append(future)
        blocks = [
            self.client.submit(
                _block,
                *by_worker[worker],
                encoder=encoder,
                label=self.label,
                weight=self.weight,
                rows=rows,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for worker in sorted(by_worker)
        ]
        counts = self.client.gather(self.client.map(_block_rows, blocks))
        return [
            (worker, block, int(n))
            for worker, block, n in zip(sorted(by_worker), blocks, counts, strict=True)
            if n
        ]

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
        rows: FitRows | None = None,
    ) -> lgb.Booster:
        import dask
        import dask.array as da
        from lightgbm.dask import DaskLGBMClassifier

        blocks = self._blocks(encoder, rows)
        if not blocks:
            raise ValueError("no fit row to fit LightGBM on")

        def stacked(name: str, shape: tuple[int, ...], dtype: Any) -> Any:
            # each block's piece stays where the block lies (see _blocks)
            pieces = [
                self.client.submit(
                    _block_part, block, name, workers=[worker], allow_other_workers=False
                )
                for worker, block, _ in blocks
            ]
            return da.concatenate(
                [
                    da.from_delayed(dask.delayed(piece), shape=(n, *shape), dtype=dtype)
                    for piece, (_, _, n) in zip(pieces, blocks, strict=True)
                ]
            )

        X = stacked("X", (len(encoder.features),), np.float64)
        y = stacked("y", (), np.int32)
        w = None if self.weight is None else stacked("w", (), np.float64)
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
            # the early-stopping callback carries the whole validation set to every worker in
            # the graph, as it must (see ValidationStopping)
            warnings.filterwarnings("ignore", message="Sending large graph")
            model.fit(
                X,
                y,
                sample_weight=w,
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


def held_fit_set(
    client: Client, split: ClusterSplit, *, label: str = LABEL, weight: str | None = None
) -> HeldFitSet:
    """The estimator's view of the fit set on the workers (see
    :class:`rmreco.modeling.boosting.HeldFitSet`): its rows labelled by ``label``, weighted by
    the column ``weight`` (None: unweighted)."""
    return HeldFitSet(
        rows=split.split.fit_rows,
        events=split.events,
        levels=split.levels,
        fit_booster=DaskBoosterFitter(
            client, split.fit_parts, split.part_rows, label=label, weight=weight
        ),
        groups=split.groups,
    )
