"""This module owns the month-by-month simulation of one chunk of clients: firmographics and
static traits, latent health and needs, defaults and workouts, product adoption and closure,
and the tables the chunk adds (clients, books, truth).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from rmreco.domain.contract import (
    ACCOUNT_MONTHS,
    CLIENTS,
    CREDIT_EVENTS,
    FINANCIALS,
    HOLDINGS,
    TRUTH_CREDIT_PD,
    TRUTH_CROSS_SELL,
    TRUTH_DIR,
    EventType,
)
from rmreco.synthetic.arrays import (
    Array,
    dates,
    floats,
    ints,
    logit,
    month_days,
    sigmoid,
    spawn_rng,
)
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.catalog import CATALOG
from rmreco.synthetic.observed import (
    Spells,
    account_months,
    events_table,
    financials_table,
    holdings_table,
)
from rmreco.synthetic.parameters import (
    AMOUNT_BASE,
    AMOUNT_SPAN,
    ATTRITION,
    CHURN,
    CURRENCY,
    DEFAULT_INTERCEPT,
    DEFAULT_SLOPE,
    FACILITY,
    HEALTH_MEAN,
    INITIAL_YOUNG_SHARE,
    INSOLVENCY_SHARE,
    INTERCEPT,
    IS_FACILITY,
    IS_FINANCING,
    LAT_W,
    LATE_YOUNG_SHARE,
    MIN_AGE,
    N_PRODUCTS,
    N_TENORS,
    ONBOARDING_RATE,
    OPEN_ENDED,
    PHI,
    PREVALENCE,
    REGIONS,
    RESTRUCTURING_INTERCEPT,
    S_CARD,
    S_INTL,
    S_RISK,
    S_RPE,
    S_W_CORP,
    S_W_SME,
    SD_FIRM_HEALTH,
    SD_IDIO,
    SD_NEED,
    SECTOR_CODES,
    SECTOR_SHIFT,
    SECTOR_TABLE,
    SEG_ELIGIBLE,
    SEGMENTS,
    STATIC_W,
    STREAM_CHUNK,
    TENORS,
    WORKOUT_MONTHS,
    WRITE_OFF_SHARE,
    YOUNG_HEALTH_SHIFT,
    YOUNG_MONTHS,
)
from rmreco.synthetic.truth import health_sd, truth_tables


def simulate_chunk(bank: Bank, chunk: int, lo: int, hi: int) -> dict[str, pa.Table]:
    """Clients ``lo`` to ``hi - 1`` (chunk number ``chunk``, its own random stream) over the
    window: their tables by name (truth files as ``truth/<name>``)."""
    rng = spawn_rng(bank.seed, STREAM_CHUNK, chunk)
    n, M = hi - lo, bank.n_months
    seg = bank.segment[lo:hi]
    corp = seg == 1
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
    mu = _firm_health(rng, seg, sector, young, late)
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
    alpha = np.take(ATTRITION, seg)

    s_def = np.take(DEFAULT_INTERCEPT, seg) + t[sector, S_RISK] - DEFAULT_SLOPE * mu
    s_prod = (
        INTERCEPT[seg] + SECTOR_SHIFT[sector] + statics @ STATIC_W + mu[:, None] * LAT_W[0][None, :]
    )
    s_initial = logit(PREVALENCE[seg]) + 0.7 * (s_prod - INTERCEPT[seg])

    # --- monthly simulation ----------------------------------------------------------------
    Y = np.empty((n, M, 4), dtype=np.float32)  # health deviation y, growth g, intl f, cash c
    x = rng.normal(0.0, SD_IDIO, n)
    needs = rng.normal(0.0, SD_NEED, (n, 3))
    innov_idio = SD_IDIO * math.sqrt(1 - PHI**2)
    innov_need = SD_NEED * math.sqrt(1 - PHI**2)

    status = np.zeros(n, dtype=np.int8)  # 0 not yet a client, 1 performing, 2 default, 3 gone
    status_hist = np.zeros((n, M), dtype=np.int8)
    since_default = np.full((n, M), -1, dtype=np.int16)
    default_month = np.full(n, -1, dtype=np.int64)
    workout_end = np.full(n, -1, dtype=np.int64)
    is_write_off = np.zeros(n, dtype=bool)
    insolvency_month = np.full(n, -1, dtype=np.int64)
    held = np.zeros((n, N_PRODUCTS), dtype=bool)
    held_hist = np.zeros((n, M, N_PRODUCTS), dtype=bool)
    spell_start = np.zeros((n, N_PRODUCTS), dtype=np.int64)
    planned_end = np.full((n, N_PRODUCTS), OPEN_ENDED, dtype=np.int64)
    amount = np.full((n, N_PRODUCTS), np.nan)
    facility_limit = np.zeros((n, M))
    spells = Spells([], [], [], [], [])
    ev_client: list[Array] = []
    ev_month: list[Array] = []
    ev_type: list[Array] = []
    event_codes = {e: i for i, e in enumerate(EventType)}

    def open_spells(mask: Array, start: Array | int) -> None:
        ci, pi = np.nonzero(mask)
        starts = start[ci, pi] if isinstance(start, np.ndarray) else np.full(ci.size, start)
        held[ci, pi] = True
        spell_start[ci, pi] = starts
        tenor = TENORS[pi, (rng.random(ci.size) * N_TENORS[pi]).astype(np.int64)]
        planned_end[ci, pi] = np.where(tenor > 0, starts + tenor - 1, OPEN_ENDED)
        share = AMOUNT_BASE[pi] + AMOUNT_SPAN[pi] * rng.random(ci.size)
        amount[ci, pi] = np.round(turnover[ci] * share, -3)

    def close_spells(mask: Array, month: int) -> None:
        ci, pi = np.nonzero(mask)
        spells.add(ci, pi, spell_start[ci, pi], np.full(ci.size, month), amount[ci, pi])
        held[mask] = False
        planned_end[mask] = OPEN_ENDED

    def emit(mask: Array, month: int, event: EventType) -> None:
        ci = np.flatnonzero(mask)
        ev_client.append(ci)
        ev_month.append(np.full(ci.size, month))
        ev_type.append(np.full(ci.size, event_codes[event]))

    for m in range(M):
        if m > 0:
            x = PHI * x + rng.normal(0.0, innov_idio, n)
            needs = PHI * needs + rng.normal(0.0, innov_need, (n, 3))
        y = x + bank.sector_factor[sector, m] + bank.macro_factor[m]
        Y[:, m, 0] = y
        Y[:, m, 1:] = needs
        age = bank.start_abs + m - founded_abs

        new = onboard == m
        if new.any():
            status[new] = 1
            _initial_holdings(
                rng, new, m, s_initial + Y[:, m] @ LAT_W, seg, age, rel_back, open_spells
            )

        performing = status == 1
        defaulted = performing & (rng.random(n) < sigmoid(s_def - DEFAULT_SLOPE * y))
        if defaulted.any():
            k = int(defaulted.sum())
            status[defaulted] = 2
            default_month[defaulted] = m
            workout_end[defaulted] = m + rng.integers(WORKOUT_MONTHS[0], WORKOUT_MONTHS[1] + 1, k)
            is_write_off[defaulted] = rng.random(k) < np.take(WRITE_OFF_SHARE, seg[defaulted])
            insolvent = is_write_off[defaulted] & (rng.random(k) < INSOLVENCY_SHARE)
            ins = m + 1 + np.floor(rng.random(k) * (workout_end[defaulted] - m)).astype(np.int64)
            insolvency_month[defaulted] = np.where(insolvent, ins, -1)
            emit(defaulted, m, EventType.DEFAULT)
        ok = performing & ~defaulted
        has_financing = held[:, IS_FINANCING].any(axis=1)
        restructured = (
            ok
            & has_financing
            & (rng.random(n) < sigmoid(RESTRUCTURING_INTERCEPT - DEFAULT_SLOPE * (mu + y)))
        )
        if restructured.any():
            emit(restructured, m, EventType.RESTRUCTURING)

        eligible = ok[:, None] & ~held & SEG_ELIGIBLE[seg] & (age[:, None] >= MIN_AGE[None, :])
        # One uniform per client and product: it decides adoption where the product is not
        # held and closure where it is (disjoint cells, so draws stay independent).
        u = rng.random((n, N_PRODUCTS), dtype=np.float32)
        adopt = eligible & (u < sigmoid(s_prod + Y[:, m] @ LAT_W))
        if adopt.any():
            open_spells(adopt, m)

        status_hist[:, m] = status
        in_default = status == 2
        since_default[in_default, m] = m - default_month[in_default]
        held_hist[:, m] = held
        facility_limit[:, m] = np.where(held[:, FACILITY], amount[:, FACILITY], 0.0).sum(axis=1)

        # End of month: maturities, closures, leavers, workouts.
        churn = held & (spell_start < m) & (u < CHURN)
        close = held & ((planned_end == m) | churn | (defaulted[:, None] & IS_FACILITY))
        leaving = ok & (rng.random(n) < alpha)
        ends = in_default & (workout_end == m)
        written_off = ends & is_write_off
        cured = ends & ~is_write_off
        if (insolvent_now := in_default & (insolvency_month == m)).any():
            emit(insolvent_now, m, EventType.INSOLVENCY)
        if written_off.any():
            emit(written_off, m, EventType.WRITE_OFF)
        close |= held & (leaving | written_off)[:, None]
        if close.any():
            close_spells(close, m)
        status[leaving | written_off] = 3
        status[cured] = 1

    ci, pi = np.nonzero(held)
    spells.add(ci, pi, spell_start[ci, pi], np.full(ci.size, -1), amount[ci, pi])

    # --- tables ----------------------------------------------------------------------------
    ids = pa.array([f"C{i + 1:0{bank.id_width}d}" for i in range(lo, hi)])
    present = (status_hist == 1) | (status_hist == 2)
    out: dict[str, pa.Table] = {}
    out[CLIENTS.name] = pa.table(
        {
            "client_id": ids,
            "segment": pa.array([s.value for s in SEGMENTS]).take(pa.array(seg)),
            "sector": pa.array(SECTOR_CODES).take(pa.array(sector)),
            "region": pa.array(REGIONS).take(pa.array(bank.region[lo:hi])),
            "founded": dates(month_days(founded_abs) + rng.integers(0, 28, n)),
            "employees": ints(employees),
            "turnover": floats(turnover),
            "rm_id": bank.rm_ids.take(pa.array(bank.rm_index[lo:hi])),
            "onboarded": dates(month_days(np.where(late, onboard_abs, rel_abs))),
            "currency": pa.array([CURRENCY] * n),
        }
    )
    observed = account_months(
        rng,
        bank,
        ids,
        present,
        status_hist,
        since_default,
        Y,
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
        held_hist,
        facility_limit,
    )
    out[ACCOUNT_MONTHS.name] = observed.table
    out[HOLDINGS.name] = holdings_table(bank, ids, spells)
    out[CREDIT_EVENTS.name] = events_table(bank, ids, ev_client, ev_month, ev_type)
    out[FINANCIALS.name] = financials_table(
        rng, bank, ids, present, seg, sector, turnover, mu, Y, observed.log_level
    )
    pd_table, cross_table = truth_tables(
        bank, ids, status_hist, held_hist, seg, founded_abs, s_def, s_prod, Y
    )
    out[f"{TRUTH_DIR}/{TRUTH_CREDIT_PD}"] = pd_table
    out[f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}"] = cross_table
    return out


def _firm_health(
    rng: np.random.Generator, seg: Array, sector: Array, young: Array, late: Array
) -> Array:
    """Firm mean health. New clients come from the entry distribution; the book present at the
    start is the survivors' steady state: a firm is kept with probability
    alpha / (alpha + mean monthly default hazard), by rejection, so the default rate does not
    drift down as weak firms leave."""
    mean = np.take(HEALTH_MEAN, seg) + YOUNG_HEALTH_SHIFT * young
    mu = rng.normal(mean, SD_FIRM_HEALTH)
    alpha = np.take(ATTRITION, seg)
    static = np.take(DEFAULT_INTERCEPT, seg) + SECTOR_TABLE[sector, S_RISK]
    spread = 0.5 * (DEFAULT_SLOPE * health_sd()) ** 2
    pending = ~late
    for _ in range(50):
        hazard = sigmoid(static - DEFAULT_SLOPE * mu + spread)
        pending &= rng.random(mu.size) >= alpha / (alpha + hazard)
        if not pending.any():
            break
        mu[pending] = rng.normal(mean[pending], SD_FIRM_HEALTH)
    return mu


def _initial_holdings(
    rng: np.random.Generator,
    new: Array,
    m: int,
    logits: Array,
    seg: Array,
    age: Array,
    rel_back: Array,
    open_spells: Callable[[Array, Array | int], None],
) -> None:
    """Products a client holds when its history starts. Clients present in the first month
    may hold them since before the window (since the relationship began, old enough for the
    product, and, for maturing products, not yet matured)."""
    hold = (
        new[:, None]
        & SEG_ELIGIBLE[seg]
        & (age[:, None] >= MIN_AGE[None, :])
        & (rng.random(logits.shape) < sigmoid(logits))
    )
    if m > 0:
        open_spells(hold, m)
        return
    # A maturing product held at the start has less than its shortest tenor behind it.
    longest_back = np.array([min(p.tenors) - 1 if p.tenors else 10**6 for p in CATALOG])
    span = np.minimum(rel_back[:, None], age[:, None] - MIN_AGE[None, :])
    span = np.minimum(span, longest_back[None, :])
    back = np.floor(rng.random(logits.shape) * (np.maximum(span, 0) + 1)).astype(np.int64)
    open_spells(hold, -back)
