"""This module owns :func:`write_shape`, which writes the synthetic bank in one of the shapes
of extract banks send (``rmreco.synthetic.shape_options.Shape``): the same seed gives the
same clients, events and truth in every shape, so that what each shape costs a model can be
measured against the same answer.

Every shape but ``full`` generates the bank into a hidden sibling folder, rewrites it there and
renames the result into place, so a failed run leaves nothing. The truth files keep the rows of
the clients and months the shape keeps. ``docs/synthetic-bank.md`` ("Shapes") says what each
shape writes and why a bank sends it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from rmreco.domain import contract
from rmreco.domain.contract import EventType, Segment
from rmreco.synthetic.applications import ATTRIBUTES, application_attributes
from rmreco.synthetic.arrays import Array, spawn_rng
from rmreco.synthetic.extracts import split_accounts, to_month_ends, write_parquet
from rmreco.synthetic.generator import DEFAULT_CHUNK_CLIENTS, generate_bank
from rmreco.synthetic.parameters import CORPORATE_SHARE, PERSONAL_SHARE, STREAM_SHAPES
from rmreco.synthetic.ratios import RATIO_COLUMNS
from rmreco.synthetic.shape_options import Shape, ShapeOptions

__all__ = [
    "Shape",
    "ShapeOptions",
    "ShapeSummary",
    "split_accounts",
    "to_month_ends",
    "write_shape",
]


@dataclass(frozen=True)
class ShapeSummary:
    """What :func:`write_shape` wrote: the folder, the shape, rows per file (truth as
    ``truth/<name>``), what the shape did, in words, and the time taken."""

    out_dir: Path
    shape: Shape
    rows: dict[str, int]
    notes: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class _Cut:
    """What a shape's rewrite needs to know of the bank it rewrites."""

    seed: int
    start_abs: int
    n_months: int
    options: ShapeOptions

    def month(self, index: int) -> date:
        """The window's month ``index`` (0: the first), as its first day."""
        absolute = self.start_abs + index
        return date(absolute // 12, absolute % 12 + 1, 1)


def write_shape(
    out: Path,
    shape: Shape | str,
    *,
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date = date(2022, 1, 1),
    corporate_share: float = CORPORATE_SHARE,
    personal_share: float = PERSONAL_SHARE,
    chunk_clients: int = DEFAULT_CHUNK_CLIENTS,
    options: ShapeOptions | None = None,
    partitions: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ShapeSummary:
    """Generate the synthetic bank of these arguments into ``out`` in one shape of extract.

    ``full`` is :func:`~rmreco.synthetic.generate_bank`'s output, byte for byte; every other
    shape is that bank rewritten (``statements_only`` generates it with every firm filing and
    the extra ratio columns, which changes nothing else). The arguments are
    :func:`~rmreco.synthetic.generate_bank`'s, plus the shape and its ``options``;
    ``partitions`` (the client-partitioned layout) is for the ``full`` shape only, as the
    rewrites read and write one file per table.

    Raises:
        ValueError: an unknown shape, an argument out of range, options the bank cannot give
            (e.g. ``cohort_months + outcome_months`` beyond ``n_months``), ``partitions`` with
            another shape than ``full``, or ``out`` exists and is not an empty folder.
    """
    try:
        shape = Shape(shape)
    except ValueError:
        known = ", ".join(s.value for s in Shape)
        raise ValueError(f"unknown shape {shape!r}; the shapes are {known}") from None
    options = options or ShapeOptions()
    bank_arguments: dict[str, Any] = {
        "n_clients": n_clients,
        "n_months": n_months,
        "seed": seed,
        "start_month": start_month,
        "corporate_share": corporate_share,
        "personal_share": personal_share,
        "chunk_clients": chunk_clients,
        "on_progress": on_progress,
    }
    if shape is Shape.FULL:
        summary = generate_bank(out, partitions=partitions, **bank_arguments)
        return ShapeSummary(summary.out_dir, shape, summary.rows, (), summary.seconds)
    if partitions is not None:
        raise ValueError(
            f"the {shape.value} shape is written one file per table; partitions are for the "
            f"{Shape.FULL.value} shape only"
        )
    start_abs = (
        start_month.year * 12 + start_month.month - 1 if isinstance(start_month, date) else 0
    )
    cut = _Cut(seed=seed, start_abs=start_abs, n_months=n_months, options=options)
    _check_options(shape, cut, n_clients)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output folder {out} exists and is not empty; choose a new folder")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    try:
        os.chmod(work, 0o755)
        source, target = work / "bank", work / "shape"
        statements = shape is Shape.STATEMENTS_ONLY
        generate_bank(
            source, every_firm_files=statements, statement_ratios=statements, **bank_arguments
        )
        shutil.copytree(source, target)
        notes = _REWRITES[shape](source, target, cut)
        rows = _rows(target)
        if out.exists():
            out.rmdir()
        os.replace(target, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ShapeSummary(out, shape, rows, tuple(notes), time.perf_counter() - started)


def _check_options(shape: Shape, cut: _Cut, n_clients: int) -> None:
    options = cut.options
    if shape is Shape.SINGLE_COHORT:
        if options.cohort_months < 1 or options.outcome_months < 1:
            raise ValueError(
                "cohort_months and outcome_months must be at least 1, got "
                f"{options.cohort_months} and {options.outcome_months}"
            )
        if options.cohort_months + options.outcome_months > cut.n_months:
            raise ValueError(
                f"single_cohort needs cohort_months + outcome_months = "
                f"{options.cohort_months + options.outcome_months} months of history; n_months "
                f"is {cut.n_months}: raise n_months or lower cohort_months"
            )
    if shape is Shape.ATTRIBUTES_ONLY:
        _observation_index(cut)
    if shape is Shape.RARE_PRODUCT and options.rare_adopters < 0:
        raise ValueError(f"rare_adopters must be at least 0, got {options.rare_adopters}")
    if shape is Shape.SMALL_BOOK and not 1 <= options.small_book_clients < n_clients:
        raise ValueError(
            f"small_book keeps the first {options.small_book_clients:,} clients of the bank; "
            f"n_clients ({n_clients:,}) must be more than that (and small_book_clients >= 1)"
        )


def _observation_index(cut: _Cut) -> int:
    """The attributes_only observation month as an index into the window."""
    options = cut.options
    last = cut.n_months - 1 - options.outcome_months
    if options.observation_month is None:
        if last < 0:
            raise ValueError(
                f"attributes_only needs more than outcome_months ({options.outcome_months}) "
                f"months of history; n_months is {cut.n_months}"
            )
        return last
    month = options.observation_month
    index = month.year * 12 + month.month - 1 - cut.start_abs
    if month.day != 1 or not 0 <= index <= last:
        raise ValueError(
            f"observation_month must be a first of month from {cut.month(0)} to "
            f"{cut.month(max(last, 0))} (outcome_months = {options.outcome_months} after it "
            f"within the history), got {month}"
        )
    return index


# --- tables -----------------------------------------------------------------------------------

_CLIENTS = contract.CLIENTS.name
_RMS = contract.RELATIONSHIP_MANAGERS.name
_ACCOUNTS = contract.ACCOUNT_MONTHS.name
_HOLDINGS = contract.HOLDINGS.name
_EVENTS = contract.CREDIT_EVENTS.name
_FINANCIALS = contract.FINANCIALS.name
_TRUTH_PD = f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}"
_TRUTH_CROSS_SELL = f"{contract.TRUTH_DIR}/{contract.TRUTH_CROSS_SELL}"
#: Sub-streams of ``STREAM_SHAPES`` (1 is the account split's, ``extracts``).
_ATTRIBUTES_STREAM = 2


def _read(folder: Path, name: str) -> pa.Table:
    return pq.read_table(folder / f"{name}.parquet")


def _write(folder: Path, name: str, table: pa.Table) -> None:
    write_parquet(folder / f"{name}.parquet", name, table)


def _rows(folder: Path) -> dict[str, int]:
    """Rows per Parquet file of the folder: contract tables in load order, then the truth."""
    names = [
        p.relative_to(folder).with_suffix("").as_posix() for p in sorted(folder.rglob("*.parquet"))
    ]
    order = {t.name: i for i, t in enumerate(contract.TABLES)}
    names.sort(key=lambda name: (order.get(name, len(order)), name))
    return {name: pq.read_metadata(folder / f"{name}.parquet").num_rows for name in names}


def _absolute_month(column: pa.ChunkedArray) -> Array:
    """Year * 12 + month - 1 of a date column; NaN where empty."""
    months = pc.add(pc.multiply(pc.year(column), 12), pc.subtract(pc.month(column), 1))
    values: Array = months.to_numpy().astype(np.float64)
    return values


def _rows_where(table: pa.Table, mask: Array) -> pa.Table:
    return table.filter(pa.array(np.asarray(mask, dtype=bool)))


def _with_clients(table: pa.Table, ids: pa.Array) -> pa.Table:
    return table.filter(pc.is_in(table.column("client_id"), value_set=ids))


def _keep_clients(source: Path, target: Path, ids: pa.Array, names: tuple[str, ...]) -> None:
    """Rewrite the tables ``names`` (that the target has) with the rows of clients ``ids``,
    and the RMs with those who serve them. A table that keeps every row is left as it was
    written (its bytes too)."""
    for name in names:
        if (target / f"{name}.parquet").exists():
            table = _read(source, name)
            kept = _with_clients(table, ids)
            if kept.num_rows < table.num_rows:
                _write(target, name, kept)
    clients = _read(target, _CLIENTS)
    rms = _read(source, _RMS)
    serving = rms.filter(pc.is_in(rms.column("rm_id"), clients.column("rm_id")))
    if serving.num_rows < rms.num_rows:
        _write(target, _RMS, serving)


_CLIENT_TABLES = (
    _CLIENTS,
    _ACCOUNTS,
    _HOLDINGS,
    _EVENTS,
    _FINANCIALS,
    _TRUTH_PD,
    _TRUTH_CROSS_SELL,
)


def _write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
    (target / contract.MANIFEST_FILE).write_text(text, encoding="utf-8")


# --- the shapes -------------------------------------------------------------------------------


def _month_end(source: Path, target: Path, cut: _Cut) -> list[str]:
    columns = to_month_ends(target)
    return [f"month_end: {', '.join(columns)} dated on the month's last day"]


def _accounts(source: Path, target: Path, cut: _Cut) -> list[str]:
    before = pq.read_metadata(target / f"{_ACCOUNTS}.parquet").num_rows
    after = split_accounts(target, seed=cut.seed)
    return [f"accounts: {before:,} client-months written as {after:,} account rows"]


def _single_cohort(source: Path, target: Path, cut: _Cut) -> list[str]:
    options = cut.options
    last = cut.start_abs + options.cohort_months - 1
    outcome_end = last + options.outcome_months
    accounts = _read(source, _ACCOUNTS)
    accounts = _rows_where(accounts, _absolute_month(accounts.column("month")) <= last)
    ids = pc.unique(accounts.column("client_id"))
    _write(target, _ACCOUNTS, accounts)
    _keep_clients(source, target, ids, (_CLIENTS, _EVENTS, _FINANCIALS, _TRUTH_PD, _HOLDINGS))

    holdings = _read(target, _HOLDINGS)
    holdings = _rows_where(holdings, _absolute_month(holdings.column("start_month")) <= last)
    ended_later = _absolute_month(holdings.column("end_month")) > last  # NaN: held, False
    end = holdings.column("end_month").combine_chunks()
    still_held = pa.array(ended_later | ~end.is_valid().to_numpy(zero_copy_only=False))
    i = holdings.column_names.index("end_month")
    empty = pa.scalar(None, type=end.type)
    holdings = holdings.set_column(i, "end_month", pc.if_else(still_held, empty, end))
    _write(target, _HOLDINGS, holdings)
    events = _read(target, _EVENTS)
    in_window = _absolute_month(events.column("month")) <= outcome_end
    _write(target, _EVENTS, _rows_where(events, in_window))
    financials = _read(target, _FINANCIALS)  # a year's statement exists once the year ended
    year_end = pc.add(pc.multiply(financials.column("year"), 12), 11).to_numpy()
    financials = _rows_where(financials, year_end <= last)
    if financials.num_rows:
        _write(target, _FINANCIALS, financials)
    else:
        (target / f"{_FINANCIALS}.parquet").unlink()
    for name in (_TRUTH_PD, _TRUTH_CROSS_SELL):
        truth = _with_clients(_read(source, name), ids)
        _write(target, name, _rows_where(truth, _absolute_month(truth.column("month")) <= last))
    first, final = cut.month(0), cut.month(options.cohort_months - 1)
    outcome = cut.month(options.cohort_months - 1 + options.outcome_months)
    return [
        f"single_cohort: {len(ids):,} clients with account months {first:%Y-%m} to "
        f"{final:%Y-%m} ({options.cohort_months}); credit events up to {outcome:%Y-%m}; "
        f"{financials.num_rows:,} statements of years ended by {final:%Y-%m}; holdings that "
        f"ended after {final:%Y-%m} are open"
    ]


def _statements_only(source: Path, target: Path, cut: _Cut) -> list[str]:
    (target / f"{_ACCOUNTS}.parquet").unlink()
    clients = _read(source, _CLIENTS)
    firms = clients.filter(pc.not_equal(clients.column("segment"), Segment.PERSONAL.value))
    dropped = clients.num_rows - firms.num_rows
    ids = firms.column("client_id").combine_chunks()
    _keep_clients(source, target, ids, _CLIENT_TABLES)
    _write_manifest(target, {"columns": {_FINANCIALS: dict.fromkeys(RATIO_COLUMNS, "numeric")}})
    statements = pq.read_metadata(target / f"{_FINANCIALS}.parquet").num_rows
    notes = [
        f"statements_only: no account_months; {statements:,} statements of {firms.num_rows:,} "
        f"firms (every firm present at a year end files) with {len(RATIO_COLUMNS)} extra ratio "
        "columns declared in manifest.yaml"
    ]
    if dropped:
        notes.append(f"statements_only: {dropped:,} personal clients left out (no statements)")
    return notes


def _attributes_only(source: Path, target: Path, cut: _Cut) -> list[str]:
    options = cut.options
    index = _observation_index(cut)
    observed_abs = cut.start_abs + index
    observation = cut.month(index)
    outcome_end = observed_abs + options.outcome_months
    extract_date = (
        pd.Timestamp(cut.month(index + options.outcome_months)) + pd.offsets.MonthEnd(0)
    ).date()
    for name in (_ACCOUNTS, _HOLDINGS, _FINANCIALS, _EVENTS):
        (target / f"{name}.parquet").unlink()

    pd_rows = _read(source, _TRUTH_PD)
    pd_rows = _rows_where(pd_rows, _absolute_month(pd_rows.column("month")) == observed_abs)
    ids = pd_rows.column("client_id").combine_chunks()  # performing at the observation month
    clients = _with_clients(_read(source, _CLIENTS), ids)
    frame = clients.to_pandas()
    pd_12m = pd.Series(
        pd_rows.column("pd_12m").to_numpy(), index=pd_rows.column("client_id").to_pylist()
    ).reindex(frame["client_id"])
    attributes = application_attributes(
        spawn_rng(cut.seed, STREAM_SHAPES, _ATTRIBUTES_STREAM),
        frame,
        _with_clients(_read(source, _ACCOUNTS), ids).to_pandas(),
        _with_clients(_read(source, _HOLDINGS), ids).to_pandas(),
        pd_12m.to_numpy(),
        pd.Timestamp(observation),
    )
    for name, kind in ATTRIBUTES.items():
        values = attributes[name]
        if kind == "numeric":
            array = pa.array(values.to_numpy(np.float64), mask=values.isna().to_numpy())
        else:
            array = pa.array(values.astype(str).tolist(), type=pa.string())
        clients = clients.append_column(name, array)
    _write(target, _CLIENTS, clients)

    events = _with_clients(_read(source, _EVENTS), ids)
    month = _absolute_month(events.column("month"))
    is_default = pc.equal(events.column("event_type"), EventType.DEFAULT.value).to_numpy(
        zero_copy_only=False
    )
    in_outcome = is_default & (month > observed_abs) & (month <= outcome_end)
    defaulted = pc.unique(_rows_where(events, in_outcome).column("client_id"))
    status = pa.table(
        {
            "client_id": defaulted.cast(pa.string()),
            "month": pa.nulls(len(defaulted), type=pa.date32()),
            "event_type": pa.array([EventType.DEFAULT.value] * len(defaulted), type=pa.string()),
        }
    )
    _write(target, _EVENTS, status)
    _keep_clients(source, target, ids, (_TRUTH_PD, _TRUTH_CROSS_SELL))
    for name in (_TRUTH_PD, _TRUTH_CROSS_SELL):
        truth = _read(target, name)
        at_observation = _absolute_month(truth.column("month")) == observed_abs
        _write(target, name, _rows_where(truth, at_observation))
    _write_manifest(
        target,
        {
            contract.MANIFEST_EXTRACT_DATE: extract_date,
            contract.MANIFEST_OBSERVATION_MONTH: f"{observation:%Y-%m}",
            "columns": {_CLIENTS: dict(ATTRIBUTES)},
        },
    )
    return [
        f"attributes_only: {clients.num_rows:,} clients performing at {observation:%Y-%m} with "
        f"{len(ATTRIBUTES)} attributes; {len(defaulted):,} defaulted by {extract_date} (undated "
        "credit_events rows); no account_months, holdings or financials"
    ]


def _rare_product(source: Path, target: Path, cut: _Cut) -> list[str]:
    options = cut.options
    code = options.rare_product
    catalog = _read(source, contract.PRODUCTS.name).column("product_code").to_pylist()
    if code not in catalog:
        raise ValueError(f"rare_product {code!r} is not in the bank's catalog: {catalog}")
    holdings = _read(source, _HOLDINGS)
    is_product = pc.equal(holdings.column("product_code"), code).to_numpy(zero_copy_only=False)
    adopted = _absolute_month(holdings.column("start_month")) > cut.start_abs
    kept = np.flatnonzero(is_product & adopted)[: options.rare_adopters]
    keep = ~is_product
    keep[kept] = True
    _write(target, _HOLDINGS, holdings.filter(pa.array(keep)))
    truth = _read(source, _TRUTH_CROSS_SELL)
    _write(
        target, _TRUTH_CROSS_SELL, truth.filter(pc.not_equal(truth.column("product_code"), code))
    )
    return [
        f"rare_product: {code} kept in {kept.size} of its {int(is_product.sum()):,} spells "
        f"(adoptions after {cut.month(0):%Y-%m}); its truth/cross_sell rows are left out"
    ]


def _small_book(source: Path, target: Path, cut: _Cut) -> list[str]:
    clients = _read(source, _CLIENTS)
    kept = clients.slice(0, cut.options.small_book_clients)
    ids = kept.column("client_id").combine_chunks()
    _keep_clients(source, target, ids, _CLIENT_TABLES)
    return [f"small_book: the first {kept.num_rows:,} of {clients.num_rows:,} clients"]


_REWRITES: dict[Shape, Callable[[Path, Path, _Cut], list[str]]] = {
    Shape.MONTH_END: _month_end,
    Shape.ACCOUNTS: _accounts,
    Shape.SINGLE_COHORT: _single_cohort,
    Shape.STATEMENTS_ONLY: _statements_only,
    Shape.ATTRIBUTES_ONLY: _attributes_only,
    Shape.RARE_PRODUCT: _rare_product,
    Shape.SMALL_BOOK: _small_book,
}
