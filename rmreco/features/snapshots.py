"""Client feature snapshots: the latest point-in-time features of every client, kept in the DB.

The service answers from these rows (one primary-key read) instead of rebuilding features from
the history on every request; they are refreshed from the stored history after each load, with
the same feature code that training uses and the builder settings the served models were
trained with (:class:`~rmreco.features.config.SnapshotParams`, recorded on every row), so what
is trained is what is served.

A load and its refresh are two transactions (a refresh of a large book takes minutes, and a
load must not wait for the registry that says which settings to use), so a process killed
between them leaves the load committed and the snapshots of the load before. That state is
recorded, not guessed: every row records the ingest run its history came from
(``params["ingest_run_id"]``, beside the builder settings), and a refresh is *owed* when the
latest successful ingest run is newer (:func:`snapshot_state`). ``rmreco features refresh``
completes it, and so does the service at start (:func:`refresh_if_owed`); ``/readyz`` says so
meanwhile. A refresh is one transaction: the table holds the snapshots of one load, whole. Two
refreshes never run at once: each takes the database's write lock (SQLite) or an advisory lock
(PostgreSQL) before it reads.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sqlalchemy import (
    Connection,
    Date,
    Float,
    Integer,
    Select,
    Table,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.db.engine import insert_rows, json_dumps
from rmreco.domain import contract
from rmreco.features.bank_columns import CATEGORICAL, bank_features
from rmreco.features.builder import (
    CATEGORICAL_FEATURES,
    FEATURE_DESCRIPTIONS,
    feature_frame,
    features_to_pandas,
    month_from_index,
    month_index,
)
from rmreco.features.config import SnapshotParams, snapshot_plan
from rmreco.features.cross_sell import (
    PRODUCT,
    PRODUCT_FEATURES,
    catalog_codes,
    cross_sell_plan,
    holdings_feature_names,
)
from rmreco.features.inputs import ID, FeatureInputs
from rmreco.features.labels import client_numbers
from rmreco.features.observations import observed_inputs

log = logging.getLogger(__name__)
BATCH_ROWS = 2000
#: Clients refreshed together (:func:`refresh_client_features`): a block's history, features
#: and rows are in memory at once (about 300 MB at 36 months, measured), whatever the book's size.
REFRESH_BLOCK_CLIENTS = 2_500
#: The key of ``client_features.params`` naming the ingest run the snapshots were computed from.
INGEST_RUN_KEY = "ingest_run_id"
#: The PostgreSQL advisory lock a refresh holds for its transaction (any fixed number: it only
#: has to be the same in every process).
REFRESH_LOCK_KEY = 7_266_617_265

#: Told each step of a refresh as it starts, in words (a refresh of a large book takes minutes).
StepProgress = Callable[[str], None]


@dataclass(frozen=True)
class SnapshotState:
    """How the stored feature snapshots stand against the loads."""

    #: the latest successful ingest run; None when nothing was loaded
    latest_run: int | None
    #: the ingest run the stored snapshots were computed from; None when none are stored or
    #: they do not record it (refreshed before runs were recorded)
    computed_from: int | None
    #: the builder settings the stored snapshots were computed with (None: none stored, or
    #: rows that do not record them)
    params: SnapshotParams | None
    #: whether snapshots are stored at all
    stored: bool
    #: a refresh is owed: the latest load is not in the snapshots
    owed: bool

    def describe(self) -> str:
        """The state in words (what is loaded and what the snapshots hold), for ``/readyz`` and
        the CLI."""
        if self.latest_run is None:
            return "nothing is loaded yet"
        if not self.owed:
            return f"the feature snapshots are of the latest load (ingest run {self.latest_run})"
        if not self.stored:
            held = "no feature snapshot is stored"
        elif self.computed_from is None:
            held = "the feature snapshots do not record the load they were computed from"
        else:
            held = f"the feature snapshots are of ingest run {self.computed_from}"
        return f"the latest load is ingest run {self.latest_run}, but {held}"


def latest_ingest_run(session: Session) -> int | None:
    """The id of the latest successful ingest run; None when nothing was loaded."""
    return session.scalar(
        select(func.max(schema.IngestRun.id)).where(schema.IngestRun.status == "succeeded")
    )


def snapshot_state(session: Session) -> SnapshotState:
    """Whether the stored snapshots are those of the latest load; a few indexed reads.

    A refresh is owed when the latest successful ingest run is newer than the run the stored
    snapshots record, or when they record none; with no snapshot stored, when the stored history
    observes some client (a refresh of it would write snapshots; a book of bare clients has
    none to write).
    """
    latest = latest_ingest_run(session)
    row = session.execute(select(schema.ClientFeatures.params).limit(1)).first()
    if row is None:
        owed = latest is not None and _history_observes_clients(session)
        return SnapshotState(latest, None, None, stored=False, owed=owed)
    # one refresh writes every row: any row says what they all record
    recorded = _json_object(row[0])
    run = recorded.get(INGEST_RUN_KEY)
    computed_from = int(run) if isinstance(run, int | float | str) else None
    try:
        params: SnapshotParams | None = SnapshotParams.from_dict(recorded)
    except (KeyError, TypeError, ValueError):
        params = None
    owed = latest is not None and (computed_from is None or computed_from < latest)
    return SnapshotState(latest, computed_from, params, stored=True, owed=owed)


def _history_observes_clients(session: Session) -> bool:
    """Whether the stored history observes some client at some month, so that a refresh writes
    snapshots: account months, statements or an as-of month
    (``rmreco.features.observations.observation_months``)."""
    models = schema.CONTRACT_MODELS
    account_months = models[contract.ACCOUNT_MONTHS.name]
    financials = models[contract.FINANCIALS.name]
    queries = (
        select(account_months.client_id).limit(1),  # type: ignore[attr-defined]
        select(financials.client_id).limit(1),  # type: ignore[attr-defined]
        select(schema.Client.client_id).where(schema.Client.as_of_month.is_not(None)).limit(1),
    )
    return any(session.execute(query).first() is not None for query in queries)


def lock_refresh(session: Session) -> None:
    """Make the session's transaction the only refresh running: PostgreSQL's advisory lock,
    held until the transaction ends; on SQLite a writing transaction holds the database's write
    lock from its start already (``rmreco.db.engine``)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})


def refresh_if_owed(session: Session, fallback: SnapshotParams) -> int | None:
    """Complete an owed refresh (:func:`snapshot_state`), with the builder settings the stored
    snapshots were computed with (``fallback`` when none are stored or they do not record them);
    never commits. Returns the clients written, None when no refresh was owed (another process
    may have completed it while this one waited for the lock)."""
    lock_refresh(session)
    state = snapshot_state(session)
    if not state.owed:
        return None
    return refresh_client_features(session, state.params or fallback)


def read_inputs(
    session: Session,
    client_ids: list[str] | None = None,
    *,
    client_range: tuple[str, str] | None = None,
) -> FeatureInputs:
    """The contract's tables as stored in the DB (optionally for some clients only: those of
    ``client_ids``, or those from ``client_range[0]`` to ``client_range[1]``, both included,
    in the database's order of ``client_id``).

    The bank's own columns of ``clients`` and ``financials`` (stored as JSON in their
    ``extras_column``) come back as columns of those frames with the kinds recorded at ingest
    (numeric as float64, categorical as object with None for missing), listed in
    ``FeatureInputs.extra_columns``; a database without any gives ``{}``.
    """
    connection = session.connection()
    kinds: dict[str, dict[str, str]] = {}
    for table_name, column_name, kind in session.execute(
        select(
            schema.ExtraColumn.table_name, schema.ExtraColumn.column_name, schema.ExtraColumn.kind
        ).order_by(schema.ExtraColumn.table_name, schema.ExtraColumn.column_name)
    ):
        kinds.setdefault(table_name, {})[column_name] = kind

    def frame(table: contract.Table) -> pd.DataFrame:
        model = schema.CONTRACT_MODELS[table.name]
        names = list(table.column_names)
        extras = kinds.get(table.name, {}) if table.extras == "features" else {}
        if extras and table.extras_column is not None:
            names.append(table.extras_column)
        query = select(*[getattr(model, c) for c in names])
        if "client_id" in table.column_names:
            client = model.client_id  # type: ignore[attr-defined]
            if client_ids is not None:
                query = query.where(client.in_(client_ids))
            if client_range is not None:
                query = query.where(client.between(*client_range))
        read = _fetch_frame(connection, query)
        if not extras or table.extras_column is None:
            return read
        stored = [_json_object(v) for v in read.pop(table.extras_column).tolist()]
        for name, kind in extras.items():
            values = [row.get(name) for row in stored]
            if kind == "numeric":
                read[name] = pd.Series(
                    [np.nan if v is None else v for v in values], index=read.index, dtype="float64"
                )
            else:
                read[name] = pd.Series(
                    [None if v is None else str(v) for v in values], index=read.index, dtype=object
                )
        return read

    return FeatureInputs(
        account_months=frame(contract.ACCOUNT_MONTHS),
        clients=frame(contract.CLIENTS),
        holdings=frame(contract.HOLDINGS),
        credit_events=frame(contract.CREDIT_EVENTS),
        financials=frame(contract.FINANCIALS),
        products=frame(contract.PRODUCTS),
        extra_columns={
            name: dict(columns)
            for name, columns in kinds.items()
            if contract.TABLES_BY_NAME[name].extras == "features"
        },
    )


def _fetch_frame(connection: Connection, query: Select[Any]) -> pd.DataFrame:
    """The rows of ``query`` as a frame, read through the driver's own cursor (in the session's
    transaction), each column converted at once by its SQL type: dates as ``datetime64``,
    numbers as float64 (int64 when a whole-number column has no null), text and JSON as
    Python objects. ``pd.read_sql`` through SQLAlchemy's row processing took most of a
    refresh's reading time (a few seconds for 600,000 account rows).

    (An Arrow-native reader, ADBC, read SQLite five times faster, but through its own copy of
    SQLite: two copies in one process break each other's file locks, and it crashed the
    process while this one's transaction was writing.)
    """
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    names = [column.name for column in query.selected_columns]
    kinds = [column.type for column in query.selected_columns]
    cells = _cells(rows, len(names))
    columns = zip(names, cells, kinds, strict=True)
    return pd.DataFrame({name: _column(values, kind) for name, values, kind in columns})


def _cells(rows: Sequence[Any], width: int) -> list[np.ndarray]:
    """The fetched rows' columns, as object arrays: one 2-D array built by numpy, its columns
    taken as views (three times faster than transposing the tuples in Python). Rows whose
    cells numpy would read as nested sequences (JSON arrays from PostgreSQL) are transposed
    one by one instead."""
    if not rows:
        return [np.empty(0, dtype=object) for _ in range(width)]
    try:
        matrix = np.array(rows, dtype=object)
    except ValueError:  # ragged: a cell is a sequence
        matrix = None
    if matrix is None or matrix.shape != (len(rows), width):
        matrix = np.empty((len(rows), width), dtype=object)
        for j, values in enumerate(zip(*rows, strict=True)):
            matrix[:, j] = list(values)
    return [matrix[:, j] for j in range(width)]


def _column(values: np.ndarray, kind: Any) -> Any:
    """One fetched column (an object array) as an array of its SQL type (see
    :func:`_fetch_frame`)."""
    if isinstance(kind, Date):  # ISO text on SQLite, dates on PostgreSQL
        return pd.to_datetime(pd.Series(values, dtype=object), errors="raise")
    if isinstance(kind, Float):
        return values.astype(np.float64)
    if isinstance(kind, Integer):
        has_null = bool(pd.isna(values).any())
        return values.astype(np.float64 if has_null else np.int64)
    return values


def _json_object(value: Any) -> dict[str, Any]:
    """A stored JSON object (a dict, JSON text on some drivers, or null) as a dict."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value)


def latest_features(inputs: FeatureInputs, params: SnapshotParams) -> pd.DataFrame:
    """Features of every client at its own latest month of history, with ``in_default``."""
    return features_to_pandas(snapshot_plan(inputs, params, latest=True), extra=("in_default",))


def json_ready(value: Any) -> Any:
    """A value as JSON stores it: numpy scalars as Python ones, missing and NaN as null."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: The snapshot rows of one block of clients and that block's last month (see
#: :func:`snapshot_rows`); None when none of its clients is observed at any month.
BlockRows = tuple[list[dict[str, Any]], int | None] | None
#: Computes the blocks of a refresh elsewhere (a Dask cluster: ``rmreco.training.snapshots``):
#: given the client ranges (first and last id, both included), the builder settings and what
#: every row records, yields each range's number and :data:`BlockRows` as each is done, in any
#: order, every range exactly once.
BlockComputer = Callable[
    [list[tuple[str, str]], SnapshotParams, dict[str, Any]], Iterator[tuple[int, BlockRows]]
]


def block_rows(
    session: Session,
    client_range: tuple[str, str],
    params: SnapshotParams,
    recorded: dict[str, Any],
) -> BlockRows:
    """The snapshot rows of the clients from ``client_range[0]`` to ``client_range[1]`` (both
    included), read from the stored history in ``session``: one block of a refresh."""
    inputs = _block_inputs(session, client_range, params)
    return None if inputs is None else snapshot_rows(inputs, params, recorded)


def _block_inputs(
    session: Session, client_range: tuple[str, str], params: SnapshotParams
) -> FeatureInputs | None:
    """The stored history of a block of clients, observed (None: no client observed)."""
    read = read_inputs(session, client_range=client_range)
    inputs = observed_inputs(read, params.financials_lag_months)
    return None if inputs.account_months.empty else inputs


#: The ``client_features`` columns :func:`snapshot_rows` gives as JSON text already.
_JSON_TEXT = frozenset({"features", "offer_candidates", "params"})


def _result(future: Future[Any] | None) -> BlockRows:
    return None if future is None else future.result()


def refresh_client_features(
    session: Session,
    params: SnapshotParams,
    on_step: StepProgress | None = None,
    *,
    compute: BlockComputer | None = None,
) -> int:
    """Recompute every client's snapshot from the stored history with the builder settings
    ``params`` (those of the models served from the snapshots); never commits. ``on_step`` is
    told each step as it starts.

    Returns the number of clients written. The caller owns the transaction, so the table is
    replaced all at once or not at all. Every row records the latest ingest run (read first,
    under the refresh lock: a load committed while the history is read leaves the refresh owed
    again, never a newer run recorded than was read).

    Clients are refreshed in blocks of :data:`REFRESH_BLOCK_CLIENTS` (ranges of ``client_id``,
    each block's whole history read and computed by :func:`block_rows`, then written), so that
    memory holds a block or two whatever the size of the book: every feature is a client's own.
    ``compute`` computes the blocks elsewhere (each reading the committed history through its
    own connection) while this session writes them as they come; by default they are computed
    here, each block's features on a thread while the next block is read. The one quantity
    across clients, the data's last month (where the offer candidates are listed), is known
    only after the last block: a block whose own last month is earlier has no client performing
    at it, and its candidates are cleared at the end.
    """
    step = on_step or (lambda message: None)
    lock_refresh(session)
    run = latest_ingest_run(session)
    recorded = {**params.to_dict(), INGEST_RUN_KEY: run}
    step("listing the clients")
    ids = session.scalars(select(schema.Client.client_id).order_by(schema.Client.client_id)).all()
    session.execute(delete(schema.ClientFeatures))
    starts = range(0, len(ids), REFRESH_BLOCK_CLIENTS)
    ranges = [(ids[i], ids[min(i + REFRESH_BLOCK_CLIENTS, len(ids)) - 1]) for i in starts]

    def shown(k: int) -> str:
        first = starts[k]
        last = min(first + REFRESH_BLOCK_CLIENTS, len(ids))
        return f"clients {first + 1:,}-{last:,} of {len(ids):,}"

    def here() -> Iterator[tuple[int, BlockRows]]:
        # a pipeline of two: a block's features are computed on a thread while the next block
        # is read (polars computes without the GIL, the driver's fetch waits on SQLite or the
        # network); this session's connection is used by this thread only
        with ThreadPoolExecutor(1, thread_name_prefix="rmreco-refresh") as pool:
            computing: tuple[int, Future[Any] | None] | None = None
            for k, client_range in enumerate(ranges):
                step(f"reading the history of {shown(k)}")
                inputs = _block_inputs(session, client_range, params)
                future = None
                if inputs is not None:
                    step(f"computing the latest features of {shown(k)}")
                    future = pool.submit(snapshot_rows, inputs, params, recorded)
                if computing is not None:
                    yield computing[0], _result(computing[1])
                computing = (k, future)
            if computing is not None:
                yield computing[0], _result(computing[1])

    if compute is not None:
        step(f"reading and computing the latest features of {len(ranges)} blocks elsewhere")
    table = schema.ClientFeatures.__table__
    assert isinstance(table, Table)
    written = 0
    lasts: dict[int, int | None] = {}
    for k, result in here() if compute is None else compute(ranges, params, recorded):
        if result is None:
            continue
        rows, lasts[k] = result
        step(f"writing the snapshots of {shown(k)}")
        insert_rows(session.connection(), table, rows, batch_rows=BATCH_ROWS, json_text=_JSON_TEXT)
        written += len(rows)
    known = [last for last in lasts.values() if last is not None]
    for k, last in lasts.items():
        if last is not None and last < max(known):  # no client of the block is at the last month
            low, high = ranges[k]
            session.execute(
                update(schema.ClientFeatures)
                .where(schema.ClientFeatures.client_id.between(low, high))
                .values(offer_candidates=None)
            )
    log.info("refreshed features of %d clients", written)
    return written


def snapshot_rows(
    inputs: FeatureInputs, params: SnapshotParams, recorded: dict[str, Any]
) -> tuple[list[dict[str, Any]], int | None]:
    """The ``client_features`` rows of ``inputs`` (already
    :func:`~rmreco.features.observations.observed_inputs`): each client's features at its own
    latest month, with its offer candidates at the data's last month (:func:`offer_candidates`);
    and that month (a month index; None without a catalog).

    One polars plan per part, collected together so that polars computes the history's
    features once for both, and only the rows kept reach Python: every client-month of the
    history is computed (the rolling windows need it), none of them is converted.
    """
    bank = bank_features(inputs.extra_columns)
    names = [*FEATURE_DESCRIPTIONS, *bank]
    categorical = {*CATEGORICAL_FEATURES, *(n for n, k in bank.items() if k == CATEGORICAL)}
    # every client-month's features, computed once for both parts (the rolling windows need the
    # whole history; only the rows kept go further)
    features = feature_frame(inputs, financials_lag_months=params.financials_lag_months).collect()
    latest = snapshot_plan(inputs, params, latest=True, features=features.lazy()).select(
        pl.col(ID),
        month_from_index(pl.col("_mi")).alias("month"),
        pl.col("in_default").fill_null(False),
        *[
            pl.col(n).cast(pl.String) if n in categorical else _json_number(pl.col(n))
            for n in names
        ],
    )
    rows = latest.select(
        pl.col(ID).cast(pl.String),
        pl.col("month"),
        pl.col("in_default"),
        # the features as JSON text, encoded by polars (a dict per client, then its encoding,
        # cost a second per 20,000 clients): the same text orjson writes for the same dict
        pl.struct(names).struct.json_encode().alias("features"),
    )
    offers = _offer_plan(inputs, params, features.lazy())
    if offers is not None:
        rows = rows.join(_candidates_json(offers[0]), on=ID, how="left", maintain_order="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("offer_candidates"))
    computed_at = schema.utcnow()
    stored = json_dumps(recorded)
    out = [
        {
            "client_id": client,
            "month": month,
            "in_default": bool(in_default),
            "params": stored,
            "computed_at": computed_at,
            "features": encoded,
            "offer_candidates": candidates,
        }
        for client, month, in_default, encoded, candidates in rows.collect().iter_rows()
    ]
    return out, None if offers is None else offers[1]


def _candidates_json(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Each client's stored candidates (``ID``, ``offer_candidates``) from the rows of
    :func:`_offer_plan`, as the JSON text of what :func:`_candidate_dicts` gives:
    ``{"holdings": {...}, "products": {code: {...}}}``, products in the rows' order."""
    names = rows.collect_schema().names()
    holding_columns = [c for c in names if c not in (ID, PRODUCT, *PRODUCT_FEATURES)]
    # a product code as a JSON string: encoded inside a one-field object, then cut out of it
    code = (
        pl.struct(pl.col(PRODUCT).cast(pl.String).alias("k"))
        .struct.json_encode()
        .str.strip_prefix('{"k":')
        .str.strip_suffix("}")
    )
    entry = pl.concat_str(
        [code, pl.lit(":"), pl.struct(list(PRODUCT_FEATURES)).struct.json_encode()]
    )
    holdings = (
        pl.struct(holding_columns).first().struct.json_encode() if holding_columns else pl.lit("{}")
    )
    return (
        rows.group_by(ID, maintain_order=True)
        .agg(holdings.alias("_holdings"), entry.str.join(",").alias("_products"))
        .select(
            pl.col(ID).cast(pl.String),
            pl.concat_str(
                [
                    pl.lit('{"holdings":'),
                    pl.col("_holdings"),
                    pl.lit(',"products":{'),
                    pl.col("_products"),
                    pl.lit("}}"),
                ]
            ).alias("offer_candidates"),
        )
    )


def _json_number(column: pl.Expr) -> pl.Expr:
    """A numeric feature as JSON stores it: the float32 value as a Python float, NaN as null."""
    return column.cast(pl.Float64).fill_nan(None)


def _offer_plan(
    inputs: FeatureInputs, params: SnapshotParams, features: pl.LazyFrame | None = None
) -> tuple[pl.LazyFrame, int] | None:
    """The cross-sell rows of every performing client at the data's last month, as the columns
    the stored candidates keep, and that month (a month index); None without a catalog.
    ``features``: the feature frame of ``inputs`` at every month, when the caller has it."""
    if inputs.products is None or inputs.products.empty:
        return None
    last = pd.to_datetime(inputs.account_months["month"]).max().date()
    last_mi = int(month_index([last])[0])
    if features is None:
        frame = feature_frame(
            inputs, months=[last], financials_lag_months=params.financials_lag_months
        )
    else:  # the rows at the data's last month: what feature_frame(months=[last]) returns
        frame = features.filter(pl.col("_mi") == last_mi)
    plan = cross_sell_plan(inputs, frame, months=[last], cure_months=params.cure_months)
    holding_columns = holdings_feature_names(catalog_codes(inputs.products))
    columns = plan.join(client_numbers(inputs).lazy(), on="_cid", how="left").select(
        pl.col(ID),
        pl.col(PRODUCT),
        *[_json_number(pl.col(c)) for c in [*holding_columns, *PRODUCT_FEATURES]],
    )
    return columns, last_mi


def _candidate_dicts(rows: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Each client's stored candidates from the rows of :func:`_offer_plan`: its holdings (the
    same on each of its rows) once, and each product's own features."""
    out: dict[str, dict[str, Any]] = {}
    holding_columns = [c for c in rows.columns if c not in (ID, PRODUCT, *PRODUCT_FEATURES)]
    firsts = rows.unique(ID, keep="first", maintain_order=True)
    for client, holdings in zip(
        firsts[ID].to_list(), firsts.select(holding_columns).iter_rows(named=True), strict=True
    ):
        out[str(client)] = {"holdings": holdings, "products": {}}
    features = list(PRODUCT_FEATURES)
    for client, product, *values in rows.select(ID, PRODUCT, *features).iter_rows():
        out[str(client)]["products"][str(product)] = dict(zip(features, values, strict=True))
    return out


def offer_candidates(inputs: FeatureInputs, params: SnapshotParams) -> dict[str, dict[str, Any]]:
    """Each client's cross-sell rows at the last month of the data (see the schema's
    ``ClientFeatures.offer_candidates``); empty without a catalog."""
    observed = observed_inputs(inputs, params.financials_lag_months)
    plan = _offer_plan(observed, params)
    return {} if plan is None else _candidate_dicts(plan[0].collect())


def stored_params(rows: list[dict[str, Any] | None]) -> list[SnapshotParams | None]:
    """The builder settings of stored snapshots (see ``repository.snapshot_params``)."""
    return [None if row is None else SnapshotParams.from_dict(row) for row in rows]


def candidate_records(
    features: dict[str, Any], candidates: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The model input of each of a client's cross-sell rows: its features, its holdings and
    the product's own features, with ``product_code``."""
    base, variants = candidate_variants(features, candidates)
    return [{**base, **variant} for variant in variants]


def candidate_variants(
    features: dict[str, Any], candidates: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A client's cross-sell rows as what they share (its features and holdings) and, per
    product, what is the product's own (``product_code`` and the product features)."""
    if not candidates:
        return dict(features), []
    base = {**features, **candidates.get("holdings", {})}
    return base, [
        {PRODUCT: code, **values} for code, values in candidates.get("products", {}).items()
    ]
