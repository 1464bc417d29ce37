"""This module owns running the batch jobs over a client-partitioned bank on a Dask cluster: each
part of the folder (``rmreco.data.partitions``: one block of clients, every table's rows of those
clients) is read, validated and computed by one task, with the same functions the single-process
jobs call on the whole book; nothing here computes a feature or a score of its own.

Batch scoring (:func:`score_batch_partitioned`) writes one file per part and output
(``OUT/credit/part-00003.parquet``, ``OUT/financing/...``, ``OUT/cross_sell/...``), each written
to a temporary name and renamed into place, and first ``OUT/_scoring.json``, the run's identity
(as-of, champions' versions, parts). A run killed part-way and started again with the same
arguments scores only the parts whose files are not all there: no client is lost and none is
written twice. A folder holding another run's scores is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rmreco.config import Settings
from rmreco.data.partitions import is_partitioned, part_path, read_partitions
from rmreco.domain.errors import DataContractError, Problem
from rmreco.features.config import SnapshotParams, snapshot_frame
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.policy import CreditPolicy, load_policy
from rmreco.training.scoring import (
    CREDIT_FILE,
    CROSS_SELL_FILE,
    FINANCING_FILE,
    Champions,
    ScoringError,
    ScoringSummary,
    as_of_problem,
    load_scoring_champions,
    observed_span,
    score_clients,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

#: The run's identity, written first into the output folder.
RUN_FILE = "_scoring.json"
#: Told each finished part: (parts done, parts in all).
PartProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class PartScored:
    """What one part's task wrote: rows per output, or why it wrote nothing."""

    part: int
    rows: dict[str, int]
    #: why the part was not scored (the as-of is outside the months it observes), or None
    outside: str | None = None


def partition_count(folder: Path) -> int:
    """The parts of a partitioned bank folder.

    Raises:
        DataContractError: the folder is not partitioned, or its manifest is broken.
    """
    if not is_partitioned(folder):
        raise DataContractError(
            [
                Problem(
                    file=str(folder),
                    message="is not a client-partitioned folder (no _partitions.json): write "
                    "one with `rmreco generate --partitions N`, or run without --dask",
                )
            ]
        )
    partitions, problems = read_partitions(folder)
    if partitions is None:
        raise DataContractError(problems)
    return len(partitions.parts)


def snapshot_frames(
    data: Path, params: SnapshotParams, *, months: list[date] | None = None
) -> dd.DataFrame:
    """``snapshot_frame`` of every part of ``data`` as one Dask frame, a partition per part:
    the same function the single process runs on the whole book, run on each part by the
    cluster that computes the frame (a client's features read its own rows only, and a part
    holds all of them)."""
    import dask.dataframe as dd

    return dd.from_map(
        _part_snapshots, range(partition_count(data)), data=data, params=params, months=months
    )


def _part_snapshots(
    part: int, *, data: Path, params: SnapshotParams, months: list[date] | None
) -> pd.DataFrame:
    inputs, _ = read_feature_inputs(data, part=part)
    return snapshot_frame(inputs, params, months=months)


def _outputs(champions: Champions) -> list[str]:
    names = [CREDIT_FILE, FINANCING_FILE]
    return [*names, CROSS_SELL_FILE] if champions.cross_sell else names


def _output_path(out: Path, name: str, part: int) -> Path:
    return part_path(out, Path(name).stem, part)


def _run_identity(
    data: Path, as_of: date, champions: Champions, parts: int, explained_offers: int | None
) -> dict[str, Any]:
    return {
        "data": str(data.resolve()),
        "as_of": f"{as_of:%Y-%m}",
        "models": dict(sorted(champions.versions.items())),
        "parts": parts,
        "outputs": _outputs(champions),
        "explained_offers": "all" if explained_offers is None else explained_offers,
    }


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Write the run's identity into ``out``, or check that the one there is this run's.

    Raises:
        ScoringError: ``out`` holds (part of) another run's scores.
    """
    path = out / RUN_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != identity:
            changed = sorted(k for k in identity if recorded.get(k) != identity[k])
            raise ScoringError(
                f"{out} holds the scores of another run (its {', '.join(changed)} differ): "
                "score into an empty folder, or run again with that run's arguments to finish it"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_text_atomically(path, json.dumps(identity, indent=2, sort_keys=True))


def _write_text_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _write_part(frames: Mapping[str, pd.DataFrame], out: Path, part: int) -> None:
    """Each output of one part to a temporary file beside its place, then renamed into place;
    the part counts as done only when all of them are there (:func:`_done`)."""
    for name, frame in frames.items():
        path = _output_path(out, name, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        os.close(handle)
        try:
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _done(out: Path, outputs: list[str], part: int) -> bool:
    return all(_output_path(out, name, part).is_file() for name in outputs)


def _score_part(
    data: Path,
    part: int,
    *,
    as_of: date,
    out: Path,
    champions: Champions,
    policy: CreditPolicy,
    currency: str,
    explained_offers: int | None,
) -> PartScored:
    """One task: read and validate part ``part`` of ``data``, score its clients as the single
    process scores the book, write its files."""
    inputs, _ = read_feature_inputs(data, part=part)
    problem = as_of_problem(observed_span(inputs, champions), as_of)
    if problem is not None:
        return PartScored(part, {}, problem)
    frames = score_clients(
        inputs,
        as_of=as_of,
        champions=champions,
        policy=policy,
        currency=currency,
        explained_offers=explained_offers,
    )
    _write_part(frames, out, part)
    return PartScored(part, {name: len(frame) for name, frame in frames.items()})


def score_batch_partitioned(
    data: Path,
    *,
    client: Client,
    as_of: date,
    out: Path,
    settings: Settings,
    credit_models: list[str],
    cross_sell_models: list[str],
    policy_path: Path,
    tracking_uri: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ScoringSummary:
    """``rmreco score-batch`` over the parts of a partitioned ``data`` folder on the Dask cluster
    of ``client``: one task per part not yet written (see the module's docstring). The
    champions are loaded here, once, and sent to the workers with the tasks, so workers need
    no access to the registry; every worker reads its parts from ``data`` (a path every worker
    sees: a shared file system).

    Raises:
        DataContractError: ``data`` is not a partitioned folder, or a part breaks the contract.
        ScoringError: no credit champion, ``as_of`` outside every part's months, or ``out``
            holding another run's scores.
        PolicyCurrencyError: the policy states no amounts in the data's currency.
    """
    from distributed import as_completed

    step = on_step or (lambda message: None)
    parts = partition_count(data)
    step("loading the champions")
    champions = load_scoring_champions(
        settings=settings,
        credit_models=credit_models,
        cross_sell_models=cross_sell_models,
        tracking_uri=tracking_uri,
    )
    # the currency is the clients table's (as for the whole folder), read from the first part
    _, validated = read_feature_inputs(data, part=0)
    currency = validated.currency or settings.currency
    policy = load_policy(policy_path).in_currency(currency)
    explained_offers = settings.resolved_explained_offers
    identity = _run_identity(data, as_of, champions, parts, explained_offers)
    _claim(out, identity)
    outputs = _outputs(champions)
    for name in outputs:  # what a killed run left half-written (never a part's file itself)
        for stale in (out / Path(name).stem).glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    todo = [k for k in range(parts) if not _done(out, outputs, k)]
    step(f"scoring {len(todo):,} of {parts:,} parts ({parts - len(todo):,} already written)")
    shared = client.scatter([champions, policy], broadcast=True)
    futures = client.map(
        _score_part,
        [data] * len(todo),
        todo,
        as_of=as_of,
        out=out,
        champions=shared[0],
        policy=shared[1],
        currency=currency,
        explained_offers=explained_offers,
        pure=False,
    )
    results: list[PartScored] = []
    for done, future in enumerate(as_completed(futures), start=1):
        results.append(future.result())
        step(f"scored {done + parts - len(todo):,} of {parts:,} parts")
    if todo and all(r.outside is not None for r in results) and parts == len(todo):
        raise ScoringError(results[0].outside or "the as-of month is outside the data")
    files = dict.fromkeys(outputs, 0)
    for k in range(parts):
        for name in outputs:
            path = _output_path(out, name, k)
            if path.is_file():
                files[name] += _rows(path)
    return ScoringSummary(
        as_of=as_of, files=files, model_versions=champions.versions, skipped=champions.skipped()
    )


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
