"""This module owns the simulation of one chunk of clients: the chunk split by population, each
population simulated from its own random stream, the chunk's tables merged in client order and
its clients named (``names``, from a stream of their own); and the firms' part of it:
firmographics and static traits, and the tables firms add (clients, books, statements, truth).
Their months are lived in ``lifecycle``; persons are ``personal``'s.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rmreco.domain.contract import (
    ACCOUNT_MONTHS,
    CLIENTS,
    CREDIT_EVENTS,
    FINANCIALS,
    HOLDINGS,
    TRUTH_CREDIT_PD,
    TRUTH_CROSS_SELL,
    TRUTH_DIR,
)
from rmreco.synthetic.arrays import (
    Array,
    coded,
    dates,
    floats,
    ints,
    logit,
    month_days,
    spawn_rng,
)
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.lifecycle import Cohort, live, mean_health
from rmreco.synthetic.names import with_names
from rmreco.synthetic.observed import (
    account_months,
    events_table,
    financials_table,
    holdings_table,
)
from rmreco.synthetic.parameters import (
    BUSINESS,
    CORPORATE,
    CURRENCY,
    DEFAULT_SLOPE,
    HEALTH_MEAN,
    INITIAL_YOUNG_SHARE,
    LATE_YOUNG_SHARE,
    ONBOARDING_RATE,
    PERSONAL,
    PERSONAL_POPULATION,
    REGIONS,
    S_CARD,
    S_INTL,
    S_RISK,
    S_RPE,
    S_W_CORP,
    S_W_SME,
    SD_FIRM_HEALTH,
    SECTOR_CODES,
    SECTOR_TABLE,
    STREAM_CHUNK,
    STREAM_PERSONAL_CHUNK,
    YOUNG_HEALTH_SHIFT,
    YOUNG_MONTHS,
)
from rmreco.synthetic.personal import simulate_personal
from rmreco.synthetic.truth import truth_tables

#: A population's tables of a chunk: the clients' positions in the chunk, the product codes its
#: tables number products by, and the tables by name.
_Part = tuple[Array, tuple[str, ...], dict[str, pa.Table]]


def simulate_chunk(bank: Bank, chunk: int, lo: int, hi: int) -> dict[str, pa.Table]:
    """Clients ``lo`` to ``hi - 1`` (chunk number ``chunk``) over the window: their tables by
    name (truth files as ``truth/<name>``). Firms and persons each draw from their own stream
    of the chunk, so a bank without personal clients is the same, byte for byte, as before
    persons existed."""
    ids = client_ids(lo, hi, bank.id_width)
    is_person = bank.segment[lo:hi] == PERSONAL
    if not is_person.any() and bank.product_codes == BUSINESS.codes:
        rng = spawn_rng(bank.seed, STREAM_CHUNK, chunk)
        return _named(bank, chunk, lo, hi, _simulate_firms(bank, rng, np.arange(lo, hi), ids))
    parts: list[_Part] = []
    for positions, stream, simulate, codes in (
        (np.flatnonzero(~is_person), STREAM_CHUNK, _simulate_firms, BUSINESS.codes),
        (
            np.flatnonzero(is_person),
            STREAM_PERSONAL_CHUNK,
            simulate_personal,
            PERSONAL_POPULATION.codes,
        ),
    ):
        if positions.size == 0:
            continue
        rng = spawn_rng(bank.seed, stream, chunk)
        tables = simulate(bank, rng, lo + positions, ids.take(pa.array(positions)))
        parts.append((positions, codes, tables))
    return _named(bank, chunk, lo, hi, _merge(parts, ids, bank.product_codes))


def client_ids(lo: int, hi: int, width: int) -> pa.Array:
    """The ids of clients ``lo`` to ``hi - 1``: "C" and the client's number from 1, zero-padded
    to ``width`` digits (C0000001), made by Arrow's string kernels."""
    numbers = pc.cast(pa.array(np.arange(lo + 1, hi + 1)), pa.string())
    return pc.binary_join_element_wise("C", pc.utf8_lpad(numbers, width, "0"), "")


def _named(
    bank: Bank, chunk: int, lo: int, hi: int, tables: dict[str, pa.Table]
) -> dict[str, pa.Table]:
    """The chunk's tables with its clients' names, drawn from the chunk's names stream after
    everything else: names change no other value."""
    clients = with_names(
        tables[CLIENTS.name], bank.seed, chunk, bank.segment[lo:hi], bank.region[lo:hi]
    )
    return {**tables, CLIENTS.name: clients}


def _merge(
    parts: list[_Part], ids: pa.Array, product_codes: tuple[str, ...]
) -> dict[str, pa.Table]:
    """One table per name from the populations' tables: client ids numbered by their place in
    the chunk, products by their place in the bank's catalog, rows in client order (each
    client's rows keep their order: a client belongs to one population)."""
    catalog = pa.array(product_codes)
    place = {code: i for i, code in enumerate(product_codes)}
    names = dict.fromkeys(name for _, _, tables in parts for name in tables)
    out: dict[str, pa.Table] = {}
    for name in names:
        pieces: list[pa.Table] = []
        keys: list[Array] = []
        for positions, codes, tables in parts:
            if name not in tables:
                continue
            table = tables[name]
            client = table.column("client_id").combine_chunks()
            if pa.types.is_dictionary(client.type):
                key = positions[client.indices.to_numpy(zero_copy_only=False)]
                table = _recode(table, "client_id", key, ids)
            else:  # the clients table: one row per client, in the population's order
                key = positions
            if "product_code" in table.column_names:
                product = table.column("product_code").combine_chunks()
                mapped = np.array([place[c] for c in codes], dtype=np.int64)
                table = _recode(
                    table,
                    "product_code",
                    mapped[product.indices.to_numpy(zero_copy_only=False)],
                    catalog,
                )
            pieces.append(table)
            keys.append(key)
        merged = pa.concat_tables(pieces).combine_chunks()
        order = np.argsort(np.concatenate(keys), kind="stable")
        out[name] = merged.take(pa.array(order))
    return out


def _recode(table: pa.Table, column: str, codes: Array, dictionary: pa.Array) -> pa.Table:
    """``table`` with ``column`` replaced by ``codes`` into ``dictionary``."""
    i = table.column_names.index(column)
    return table.set_column(i, column, coded(codes, dictionary))


def _simulate_firms(
    bank: Bank, rng: np.random.Generator, members: Array, ids: pa.Array
) -> dict[str, pa.Table]:
    """The firms ``members`` (bank-wide client numbers, ``ids`` their identifiers) over the
    window: their tables by name."""
    n, M = members.size, bank.n_months
    seg = bank.segment[members]
    corp = seg == CORPORATE
    t = SECTOR_TABLE

    # --- firmographics and static traits -------------------------------------------------
    weights = np.where(corp[:, None], t[:, S_W_CORP][None, :], t[:, S_W_SME][None, :])
    cum = np.cumsum(weights, axis=1)
    sector = (rng.random(n)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    late_share = ONBOARDING_RATE * (M - 1) / (1.0 + ONBOARDING_RATE * (M - 1))
    late = rng.random(n) < late_share
    onboard = np.where(late, rng.integers(1, M, n), 0)
    young_share = np.where(late, LATE_YOUNG_SHARE, np.take(INITIAL_YOUNG_SHARE, seg))
    young = rng.random(n) < young_share
    old_age = np.exp(rng.normal(np.log(np.where(corp, 300.0, 110.0)), 0.6))
    age_at_onboard = np.where(
        young, rng.integers(0, YOUNG_MONTHS, n), np.clip(old_age, YOUNG_MONTHS, 900)
    ).astype(np.int64)
    onboard_abs = bank.start_abs + onboard
    founded_abs = onboard_abs - age_at_onboard
    rel_back = np.where(late, 0, np.floor(rng.random(n) * (np.minimum(age_at_onboard, 180) + 1)))
    rel_abs = onboard_abs - rel_back.astype(np.int64)

    log10_turnover = np.where(
        corp,
        np.clip(rng.normal(8.3, 0.4, n), math.log10(5e7), math.log10(2e9)),
        np.clip(rng.normal(6.1, 0.5, n) - 0.3 * young, 5.0, math.log10(5e7)),
    )
    turnover = np.round(10.0**log10_turnover, -3)
    employees = np.round(turnover / t[sector, S_RPE] * np.exp(rng.normal(0.0, 0.4, n)))
    mu = mean_health(
        rng,
        BUSINESS,
        seg,
        np.take(HEALTH_MEAN, seg) + YOUNG_HEALTH_SHIFT * young,
        np.take(BUSINESS.default_intercept, seg) + t[sector, S_RISK],
        late,
        SD_FIRM_HEALTH,
    )
    size_z = np.where(corp, (log10_turnover - 8.3) / 0.4, (log10_turnover - 6.1) / 0.5)
    intl = t[sector, S_INTL] + 0.5 * corp + rng.normal(0.0, 1.0, n)
    cash_rich = rng.normal(0.0, 1.0, n)
    card_logit = t[sector, S_CARD] + rng.normal(0.0, 0.7, n)
    card_z = (card_logit + 2.3) / 1.4
    staff_z = np.where(corp, (np.log1p(employees) - 6.8) / 0.8, (np.log1p(employees) - 2.0) / 1.2)
    statics = np.column_stack([size_z, intl, cash_rich, card_z, staff_z])
    wallet = rng.beta(5.0, 2.0, n)  # share of the firm's flows that run through this bank
    level_noise = rng.normal(0.0, 0.15, n)
    payroll_visible = rng.uniform(0.1, 0.6, n)

    s_def = np.take(BUSINESS.default_intercept, seg) + t[sector, S_RISK] - DEFAULT_SLOPE * mu
    intercept = BUSINESS.intercept[seg]
    s_prod = (
        intercept
        + BUSINESS.sector_shift[sector]
        + statics @ BUSINESS.static_w
        + mu[:, None] * BUSINESS.lat_w[0][None, :]
    )
    s_initial = logit(BUSINESS.prevalence[seg]) + 0.7 * (s_prod - intercept)

    # --- months ----------------------------------------------------------------------------
    cohort = Cohort(
        seg=seg,
        onboard=onboard,
        founded_abs=founded_abs,
        rel_back=rel_back,
        size=turnover,
        mu=mu,
        s_def=s_def,
        s_prod=s_prod,
        s_initial=s_initial,
        alpha=np.take(BUSINESS.attrition, seg),
        sector=sector,
    )
    life = live(rng, bank, BUSINESS, cohort)

    # --- tables ----------------------------------------------------------------------------
    present = (life.status_hist == 1) | (life.status_hist == 2)
    out: dict[str, pa.Table] = {}
    out[CLIENTS.name] = pa.table(
        {
            "client_id": ids,
            "segment": pa.array([s.value for s in BUSINESS.segments]).take(pa.array(seg)),
            "sector": pa.array(SECTOR_CODES).take(pa.array(sector)),
            "region": pa.array(REGIONS).take(pa.array(bank.region[members])),
            "founded": dates(month_days(founded_abs) + rng.integers(0, 28, n)),
            "employees": ints(employees),
            "turnover": floats(turnover),
            "rm_id": bank.rm_ids.take(pa.array(bank.rm_index[members])),
            "onboarded": dates(month_days(np.where(late, onboard_abs, rel_abs))),
            "currency": pa.array([CURRENCY] * n),
        }
    )
    observed = account_months(
        rng,
        bank,
        ids,
        present,
        life.status_hist,
        life.since_default,
        life.Y,
        mu,
        sector,
        turnover,
        employees,
        wallet,
        level_noise,
        payroll_visible,
        cash_rich,
        intl,
        card_logit,
        life.held_hist,
        life.facility_limit,
    )
    out[ACCOUNT_MONTHS.name] = observed.table
    out[HOLDINGS.name] = holdings_table(bank, ids, life.spells, BUSINESS.codes)
    out[CREDIT_EVENTS.name] = events_table(bank, ids, life.ev_client, life.ev_month, life.ev_type)
    out[FINANCIALS.name] = financials_table(
        rng, bank, ids, present, seg, sector, turnover, mu, life.Y, observed.log_level
    )
    pd_table, cross_table = truth_tables(
        bank,
        BUSINESS,
        ids,
        life.status_hist,
        life.held_hist,
        seg,
        founded_abs,
        s_def,
        s_prod,
        life.Y,
    )
    out[f"{TRUTH_DIR}/{TRUTH_CREDIT_PD}"] = pd_table
    out[f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}"] = cross_table
    return out
