"""Feature inputs from a validated input folder (the data contract's tables).

This module owns the frames the feature code reads (:class:`FeatureInputs`) and handing the
contract's tables to it. They come through the one
read path that ingest also takes (``rmreco.data.contract.read_and_validate``), so training and
batch scoring see the same months (any date within a month read as that month) and the same
client-months (several accounts' rows aggregated by the contract's rules) as the database.

A table left out of the folder is an empty frame with its contract columns (``financials``:
None, as the builder takes it). The bank's own columns of ``clients`` and ``financials`` stay in
those frames under their names (numeric as float64, categorical as object with None for
missing) and are listed with their kinds in ``FeatureInputs.extra_columns``; the manifest's
extract date gives ``FeatureInputs.outcome_end``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pandas as pd

from rmreco.data.contract import ValidatedTables, read_and_validate
from rmreco.data.partitions import PARTITIONS_FILE, part_path
from rmreco.domain.errors import DataContractError

#: The key columns of every frame the features read and give: client and month.
ID = "client_id"
MONTH = "month"


@dataclass(frozen=True)
class FeatureInputs:
    """The contract's tables the features read, as pandas frames (as read by ``rmreco.data``).

    Only ``clients`` holds rows in every book: ``account_months`` may be empty (a
    statements-only book, an application sample; see :mod:`rmreco.features.observations`), and
    a missing optional table gives null features where it would have contributed
    (``products`` tells credit from service products).
    """

    account_months: pd.DataFrame
    clients: pd.DataFrame
    holdings: pd.DataFrame | None = None
    credit_events: pd.DataFrame | None = None
    financials: pd.DataFrame | None = None
    products: pd.DataFrame | None = None
    #: the bank's own columns of ``clients`` and ``financials`` beyond the contract, by table:
    #: ``{"clients": {"legal_form": "categorical", "score": "numeric"}, "financials": {...}}``;
    #: they are carried in those frames under their own (lower-case) names
    extra_columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the month the data's outcomes are known up to beyond its dated rows (the manifest's
    #: extract date): a client without a default event by then did not default
    outcome_end: date | None = None


def feature_inputs(validated: ValidatedTables) -> FeatureInputs:
    """The frames the feature builder reads, from tables that passed the contract."""
    financials = validated.frame("financials")
    return FeatureInputs(
        account_months=validated.frame("account_months"),
        clients=validated.frame("clients"),
        holdings=validated.frame("holdings"),
        credit_events=validated.frame("credit_events"),
        financials=financials if len(financials) else None,
        products=validated.frame("products"),
        extra_columns=validated.extra_columns,
        outcome_end=validated.outcome_end,
    )


def read_feature_inputs(
    folder: Path, *, part: int | None = None
) -> tuple[FeatureInputs, ValidatedTables]:
    """Read and validate ``folder``, then give its feature inputs; with ``part``, only that part
    of a client-partitioned folder (``rmreco.data.partitions``): each partitioned table's part
    file and the whole of the others (the catalog, the RMs, the manifest), validated together as
    a folder of their own is. Problems name the part's files
    (``account_months/part-00003.parquet``).

    Raises:
        DataContractError: the folder (or part) breaks the data contract (file, row and column
            named).
    """
    if part is None:
        validated = read_and_validate(folder)
        return feature_inputs(validated), validated
    with tempfile.TemporaryDirectory(prefix=".rmreco-part-") as name:
        view, names = _part_view(Path(folder), part, Path(name))
        try:
            validated = read_and_validate(view)
        except DataContractError as exc:
            raise DataContractError(
                [replace(p, file=names.get(p.file, p.file)) for p in exc.problems]
            ) from None
        return feature_inputs(validated), validated


def _part_view(folder: Path, part: int, into: Path) -> tuple[Path, dict[str, str]]:
    """A folder ``into`` of links to part ``part`` of each partitioned table of ``folder``
    (as ``<table>.parquet``) and to its other files; with the part files' names by the names of
    their links. The data are not copied."""
    names: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name == PARTITIONS_FILE or entry.name.startswith("."):
            continue
        if entry.is_dir():
            source = part_path(folder, entry.name, part)
            if not source.is_file():
                continue  # not a table of parts (truth/, say), or a table without this part
            link = into / f"{entry.name}.parquet"
            names[link.name] = f"{entry.name}/{source.name}"
        else:
            source, link = entry, into / entry.name
        link.symlink_to(source.resolve())
    return into, names
