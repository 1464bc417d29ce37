"""This module owns what the synthetic bank's books show of its firms' latent state (the account
history and annual statements) and of any client's life (holding spells and credit events), as
contract tables. What they show of persons is ``rmreco.synthetic.personal``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rmreco.domain.contract import ACCOUNT_MONTHS, CREDIT_EVENTS, FINANCIALS, HOLDINGS, EventType
from rmreco.synthetic.arrays import (
    Array,
    coded,
    dates,
    floats,
    geometric,
    ints,
    month_days,
    normals,
    sigmoid,
)
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.parameters import (
    BUSINESS,
    S_ASSETS,
    S_MARGIN,
    S_SALARY,
    S_SEASON,
    S_TX,
    SECTOR_TABLE,
)
from rmreco.synthetic.ratios import RATIO_COLUMNS, statement_ratios, statement_year


@dataclass
class Spells:
    """Closed and open holding spells collected during a chunk's simulation."""

    client: list[Array]
    product: list[Array]
    start: list[Array]
    end: list[Array]
    amount: list[Array]

    def add(self, client: Array, product: Array, start: Array, end: Array, amount: Array) -> None:
        self.client.append(client)
        self.product.append(product)
        self.start.append(start)
        self.end.append(end)
        self.amount.append(amount)


@dataclass(frozen=True)
class Observed:
    """The ``account_months`` table of a chunk and the activity level the statements follow."""

    table: pa.Table
    log_level: Array  # (M, n) log of the expected monthly inflow relative to declared turnover


@dataclass(frozen=True)
class Rows:
    """A block of a chunk's account rows: the client-months present, by client then month."""

    #: each row's client: its place in the population's per-client arrays
    client: Array
    #: each row's window month
    month: Array
    #: ``month * n_clients + client``: the row's place in a month-major (M, n, ...) history
    cell: Array

    @property
    def size(self) -> int:
        return int(self.cell.size)

    def at(self, history: Array) -> Array:
        """The rows' values of a month-major (M, n, ...) history."""
        # np.take, not indexing: five times faster for rows of more than one value
        return np.take(history.reshape(-1, *history.shape[2:]), self.cell, axis=0)


#: Clients whose account rows are computed together: about 150,000 rows, so that the sixty
#: passes over them work in the processor's cache rather than through memory.
_ACCOUNT_BLOCK = 4096


def account_months(
    rng: np.random.Generator,
    bank: Bank,
    ids: pa.Array,
    present: Array,
    status_hist: Array,
    since_default: Array,
    Y: Array,
    mu: Array,
    sector: Array,
    turnover: Array,
    employees: Array,
    wallet: Array,
    level_noise: Array,
    payroll_visible: Array,
    cash_rich: Array,
    intl: Array,
    card_logit: Array,
    held_hist: Array,
    facility_limit: Array,
) -> Observed:
    """The observable account history of firms: latent state seen through the bank's
    accounts. Histories are month-major (M, n, ...), as ``lifecycle.Life`` keeps them."""
    M = present.shape[0]
    t = SECTOR_TABLE
    f32 = np.float32
    log_level = np.cumsum(0.02 * Y[:, :, 1], axis=0) + 0.15 * Y[:, :, 0]
    months_of_year = (bank.start_abs + np.arange(M)) % 12
    season_wave = np.sin(2 * np.pi * (months_of_year - 3) / 12)
    season_size = t[sector, S_SEASON]
    base_level = turnover / 12.0 * wallet * np.exp(level_noise)
    tx_level = t[sector, S_TX] + 0.35 * card_logit
    staff = 0.1 * np.log1p(employees)
    salaries = employees * t[sector, S_SALARY]
    card_share = sigmoid(card_logit)
    financing = BUSINESS.is_financing
    payroll_p = BUSINESS.index["payroll"]
    card_p = BUSINESS.index["business_card"]
    acquiring_p = BUSINESS.index["card_acquiring"]

    def columns(rows: Rows) -> dict[str, Array]:
        R, c = rows.size, rows.client
        latent = rows.at(Y)
        y = latent[:, 0]
        intl_need, cash = latent[:, 2], latent[:, 3]
        h = mu[c] + y
        in_default = rows.at(status_hist) == 2
        held = rows.at(held_hist)
        limit = rows.at(facility_limit)

        def noise(sd: float) -> Array:
            draws = normals(rng, R)
            draws *= f32(sd)
            return draws

        season = season_size[c] * season_wave[rows.month]
        expected = base_level[c] * np.exp(rows.at(log_level) + season)
        credit = expected * np.exp(noise(0.08)) * np.where(in_default, 0.6, 1.0)
        net_share = 0.02 + 0.035 * h + noise(0.04)
        debit = credit * np.maximum(1.0 - net_share, 0.0)

        liquidity = expected * np.exp(
            -0.2 + 0.45 * h + 0.45 * cash + 0.35 * cash_rich[c] + noise(0.25)
        )
        has_facility = limit > 0
        od_drive = -1.0 - 1.5 * h + noise(0.7)
        od_share = sigmoid(np.where(has_facility, od_drive, od_drive - 3.0))
        days = np.clip(np.round(31.0 * od_share - 4.0), 0, 31).astype(np.int64)
        days = np.where(in_default, np.maximum(days, 15), days)
        use_share = sigmoid(0.2 - 1.2 * h + noise(0.5))
        peak = np.where(
            days > 0,
            np.where(has_facility, limit * use_share, expected * 0.05 * use_share),
            0.0,
        )
        balance_avg = liquidity * (1.0 - days / 31.0) - 0.5 * peak * days / 31.0
        swing = expected * np.exp(-1.0 - 0.25 * h + noise(0.3))
        balance_max = balance_avg + 0.6 * swing
        balance_min = np.where(days > 0, -peak, np.maximum(balance_avg - 0.7 * swing, 0.0))

        n_credit = np.round(np.exp(tx_level[c] + 0.45 * np.log1p(credit / 1e4) + noise(0.15)))
        n_debit = np.round(np.exp(2.2 + 0.4 * np.log1p(debit / 1e4) + staff[c] + noise(0.15)))
        returned = geometric(
            rng.random(R, dtype=f32), np.exp(-3.2 - 1.0 * h) * np.where(in_default, 4.0, 1.0)
        )
        has_credit = held[:, financing].any(axis=1)
        late_payer = has_credit & (rng.random(R, dtype=f32) < sigmoid(-3.6 - 1.4 * h))
        arrears = 1 + geometric(rng.random(R, dtype=f32), 8.0 * np.exp(-0.4 * h))
        dpd = np.where(late_payer, np.minimum(arrears, 89), 0)
        dpd = np.where(
            in_default,
            90 + 30 * rows.at(since_default).astype(np.int64) + rng.integers(0, 30, R),
            dpd,
        )

        intl_pay = (credit + debit) * sigmoid(-3.0 + intl[c] + 0.8 * intl_need + noise(0.3))
        payroll = (
            salaries[c]
            * np.exp(noise(0.05))
            * np.where(held[:, payroll_p], 1.0, payroll_visible[c])
            * np.where(in_default, 0.8, 1.0)
        )
        card_spend = np.where(held[:, card_p], credit * np.exp(-5.0 + noise(0.3)), 0.0)
        acquiring = np.where(held[:, acquiring_p], credit * card_share[c] * np.exp(noise(0.1)), 0.0)
        return {
            "balance_avg": balance_avg,
            "balance_min": balance_min,
            "balance_max": balance_max,
            "credit_turnover": credit,
            "debit_turnover": debit,
            "n_credit_tx": n_credit,
            "n_debit_tx": n_debit,
            "overdraft_limit": limit,
            "overdraft_peak_use": peak,
            "days_in_overdraft": days,
            "dpd_max": dpd,
            "returned_payments": returned,
            "intl_payments": intl_pay,
            "payroll_outflow": payroll,
            "card_spend": card_spend,
            "acquiring_inflow": acquiring,
        }

    return Observed(account_months_table(rng, bank, ids, present, columns), log_level)


#: account_months columns written as whole numbers (counts, days); the rest are amounts
_COUNTS = ("n_credit_tx", "n_debit_tx", "days_in_overdraft", "dpd_max", "returned_payments")
#: amounts written as given (a limit is a round figure already); the others to the cent
_UNROUNDED = ("overdraft_limit",)
#: the share band of the one uniform per row that leaves each column empty, as real extracts
#: have a few missing values (one column at most per row)
_MISSING = {
    "balance_min": (0.0, 0.004),
    "balance_max": (0.0, 0.004),
    "n_credit_tx": (0.004, 0.014),
    "n_debit_tx": (0.014, 0.022),
    "returned_payments": (0.022, 0.025),
    "intl_payments": (0.025, 0.030),
}


def account_months_table(
    rng: np.random.Generator,
    bank: Bank,
    ids: pa.Array,
    present: Array,
    columns: Callable[[Rows], dict[str, Array]],
) -> pa.Table:
    """The ``account_months`` table of a chunk (firms or persons alike): one row per client and
    month where ``present`` (month x client). ``columns`` gives a block of rows' values of each
    account column; blocks of clients are computed in turn, each followed by one uniform per row
    drawn here that leaves a few values missing. The table holds one Arrow chunk per block.

    Raises:
        ValueError: ``columns`` does not give exactly the contract's account columns.
    """
    wanted = [c for c in ACCOUNT_MONTHS.column_names if c not in ("client_id", "month")]
    n = present.shape[1]
    chunks: dict[str, list[pa.Array]] = {name: [] for name in ACCOUNT_MONTHS.column_names}
    for lo in range(0, n, _ACCOUNT_BLOCK):
        # the block's (client, month) cells, by client then month
        client, month = np.nonzero(present[:, lo : lo + _ACCOUNT_BLOCK].T)
        client += lo
        rows = Rows(client=client, month=month, cell=month * n + client)
        values = columns(rows)
        if sorted(values) != sorted(wanted):
            raise ValueError(f"account columns {sorted(values)} are not the contract's {wanted}")
        gap = rng.random(rows.size, dtype=np.float32)
        chunks["client_id"].append(coded(rows.client, ids))
        chunks["month"].append(dates(bank.month_days[rows.month]))
        for name in wanted:
            band = _MISSING.get(name)
            missing = None if band is None else (gap >= band[0]) & (gap < band[1])
            value = values[name]
            if name in _COUNTS:
                chunks[name].append(ints(value, missing))
            else:
                rounded = value if name in _UNROUNDED else np.round(value, 2)
                chunks[name].append(floats(rounded, missing))
    table = pa.table({name: pa.chunked_array(arrays) for name, arrays in chunks.items()})
    assert table.column_names == list(ACCOUNT_MONTHS.column_names)
    return table


def holdings_table(
    bank: Bank, ids: pa.Array, spells: Spells, product_codes: tuple[str, ...]
) -> pa.Table:
    """The ``holdings`` table of a chunk: one row per spell, by client, product and start;
    ``spells`` number products in the order of ``product_codes``."""
    client = np.concatenate(spells.client)
    product = np.concatenate(spells.product)
    start = np.concatenate(spells.start)
    end = np.concatenate(spells.end)
    amount = np.concatenate(spells.amount)
    order = np.lexsort((start, product, client))
    client, product, start, end, amount = (a[order] for a in (client, product, start, end, amount))
    table = pa.table(
        {
            "client_id": coded(client, ids),
            "product_code": coded(product, pa.array(product_codes)),
            "start_month": dates(month_days(bank.start_abs + start)),
            "end_month": pa.array(
                month_days(bank.start_abs + np.maximum(end, 0)), type=pa.date32(), mask=end < 0
            ),
            "amount": floats(amount, np.isnan(amount)),
        }
    )
    assert table.column_names == list(HOLDINGS.column_names)
    return table


def events_table(
    bank: Bank, ids: pa.Array, client: list[Array], month: list[Array], event: list[Array]
) -> pa.Table:
    """The ``credit_events`` table of a chunk, by client, month and event."""
    c = np.concatenate(client) if client else np.zeros(0, dtype=np.int64)
    m = np.concatenate(month) if month else np.zeros(0, dtype=np.int64)
    e = np.concatenate(event) if event else np.zeros(0, dtype=np.int64)
    order = np.lexsort((e, m, c))
    table = pa.table(
        {
            "client_id": coded(c[order], ids),
            "month": dates(bank.month_days[m[order]]),
            "event_type": coded(e[order], pa.array([ev.value for ev in EventType])),
        }
    )
    assert table.column_names == list(CREDIT_EVENTS.column_names)
    return table


def financials_table(
    rng: np.random.Generator,
    bank: Bank,
    ids: pa.Array,
    present: Array,
    seg: Array,
    sector: Array,
    turnover: Array,
    mu: Array,
    Y: Array,
    log_level: Array,
) -> pa.Table:
    """Annual statements for each calendar year whose December the client is present in
    (``present``, ``Y`` and ``log_level`` month-major).

    About nine in ten corporates and two in three SMEs file; with
    ``bank.statements.every_firm_files`` every firm does, and with
    ``bank.statements.with_ratios`` the statements carry the extra ratio columns of
    ``rmreco.synthetic.ratios``. Both draw from a stream spawned off ``rng`` without drawing
    from ``rng`` itself, so the usual filers' statements, and every table drawn from ``rng``
    after this one, are the same with and without them."""
    M, n = present.shape
    options = bank.statements
    files = rng.random(n) < np.where(seg == 1, 0.92, 0.67)
    extra = rng.spawn(1)[0] if options.every_firm_files or options.with_ratios else None
    parts: list[dict[str, Array]] = []
    previous_revenue = np.full(n, np.nan)
    first_year = bank.start_abs // 12
    for year in range(first_year, (bank.start_abs + M - 1) // 12 + 1):
        dec = year * 12 + 11 - bank.start_abs
        if dec < 0 or dec >= M:
            continue
        months = slice(max(0, dec - 11), dec + 1)
        rows = np.flatnonzero(files & present[dec])
        part = _statements(rng, rows, months, sector, turnover, mu, Y, log_level)
        if extra is not None and options.every_firm_files:
            late = np.flatnonzero(~files & present[dec])
            more = _statements(extra, late, months, sector, turnover, mu, Y, log_level)
            part = {key: np.concatenate([part[key], more[key]]) for key in part}
        part["year"] = np.full(part["client"].size, year)
        if extra is not None and options.with_ratios:
            values = {name: np.round(part[name], 0) for name in FINANCIALS.column_names[2:]}
            statements = statement_year(
                extra, values, previous_revenue[part["client"]], part["health"]
            )
            part.update(statement_ratios(extra, statements))
            previous_revenue[:] = np.nan  # a statement follows only the year just before it
            previous_revenue[part["client"]] = values["revenue"]
        parts.append(part)
    names = [*FINANCIALS.column_names[2:], *(RATIO_COLUMNS if options.with_ratios else ())]
    cols = {
        key: (np.concatenate([p[key] for p in parts]) if parts else np.zeros(0))
        for key in ("client", "year", *names)
    }
    order = np.lexsort((cols["year"], cols["client"]))
    table = pa.table(
        {
            "client_id": coded(cols["client"][order], ids),
            "year": ints(cols["year"][order]),
            **{
                name: floats(np.round(cols[name][order], 0)) for name in FINANCIALS.column_names[2:]
            },
            **{
                name: floats(cols[name][order], np.isnan(cols[name][order]))
                for name in names[len(FINANCIALS.column_names) - 2 :]
            },
        }
    )
    assert table.column_names[: len(FINANCIALS.column_names)] == list(FINANCIALS.column_names)
    return table


def _statements(
    rng: np.random.Generator,
    rows: Array,
    months: slice,
    sector: Array,
    turnover: Array,
    mu: Array,
    Y: Array,
    log_level: Array,
) -> dict[str, Array]:
    """One year's statements of the firms ``rows`` (``months``: the financial year's months of
    the window): the contract's fields, the client and the firms' health of the year."""
    t = SECTOR_TABLE
    k = rows.size
    h_year = mu[rows] + Y[months, rows, 0].mean(axis=0)
    revenue = turnover[rows] * np.exp(
        log_level[months, rows].mean(axis=0) + rng.normal(0.0, 0.05, k)
    )
    margin = t[sector[rows], S_MARGIN] + 0.05 * h_year + rng.normal(0.0, 0.02, k)
    assets = revenue * t[sector[rows], S_ASSETS] * np.exp(rng.normal(0.0, 0.2, k))
    leverage = sigmoid(-0.6 - 0.7 * h_year + rng.normal(0.0, 0.3, k))
    debt = assets * leverage * 0.9
    equity = assets - debt - 0.25 * assets
    current_assets = assets * sigmoid(rng.normal(-0.2, 0.3, k))
    current_liabilities = current_assets / np.exp(0.25 + 0.35 * h_year + rng.normal(0.0, 0.2, k))
    return {
        "client": rows,
        "health": h_year,
        "revenue": revenue,
        "ebitda": revenue * margin,
        "total_assets": assets,
        "total_debt": debt,
        "equity": equity,
        "current_assets": current_assets,
        "current_liabilities": current_liabilities,
    }
