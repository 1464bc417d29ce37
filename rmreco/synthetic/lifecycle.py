"""This module owns the month-by-month life of a chunk of clients of one population (firms or
persons): latent health and needs, defaults and workouts, restructurings, product adoption and
closure, and attrition. What the clients are (their traits and log-odds) comes in a
:class:`Cohort`; what happened comes back as a :class:`Life`, from which the population's own
module writes the tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rmreco.domain.contract import EventType
from rmreco.synthetic.arrays import Array, sigmoid
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.observed import Spells
from rmreco.synthetic.parameters import (
    DEFAULT_SLOPE,
    INSOLVENCY_SHARE,
    OPEN_ENDED,
    PHI,
    RESTRUCTURING_INTERCEPT,
    SD_NEED,
    WORKOUT_MONTHS,
    Population,
)


@dataclass(frozen=True)
class Cohort:
    """The clients of one chunk and population, as the month loop needs them."""

    #: the population's own segment index of each client
    seg: Array
    #: window month the client's history starts
    onboard: Array
    #: absolute month a product's minimum age counts from (the business's founding; a
    #: person's birth)
    founded_abs: Array
    #: months before its onboarding that a client present from the first month has banked
    #: with us (0 for clients onboarded later)
    rel_back: Array
    #: what spell amounts scale with: declared annual turnover, or annual income
    size: Array
    #: mean health
    mu: Array
    #: static log-odds of the monthly default hazard
    s_def: Array
    #: static log-odds of each product's monthly adoption hazard (n, P)
    s_prod: Array
    #: static log-odds of holding each product when the history starts (n, P)
    s_initial: Array
    #: monthly attrition probability
    alpha: Array
    #: row of ``Bank.sector_factor`` that moves the client's health; None: no sector factor
    sector: Array | None


@dataclass(frozen=True)
class Life:
    """What happened to a cohort over the window."""

    Y: Array  # (n, M, 4) health deviation and the three need drivers
    status_hist: Array  # (n, M) 0 not yet a client, 1 performing, 2 default, 3 gone
    since_default: Array  # (n, M) months since the default while in default, else -1
    held_hist: Array  # (n, M, P) held at month end
    facility_limit: Array  # (n, M) overdraft facilities' limits in force
    spells: Spells
    ev_client: list[Array]
    ev_month: list[Array]
    ev_type: list[Array]


def mean_health(
    rng: np.random.Generator,
    population: Population,
    seg: Array,
    mean: Array,
    static_default: Array,
    late: Array,
    sd: float,
) -> Array:
    """Mean health of each client, drawn around ``mean`` with sd ``sd``. New clients come from
    this entry distribution; the book present at the start is the survivors' steady state: a
    client is kept with probability alpha / (alpha + mean monthly default hazard), by rejection,
    so the default rate does not drift down as weak clients leave. ``static_default`` is the
    default log-odds of a client of health 0."""
    mu = rng.normal(mean, sd)
    alpha = np.take(population.attrition, seg)
    spread = 0.5 * (DEFAULT_SLOPE * population.health_sd) ** 2
    pending = ~late
    for _ in range(50):
        hazard = sigmoid(static_default - DEFAULT_SLOPE * mu + spread)
        pending &= rng.random(mu.size) >= alpha / (alpha + hazard)
        if not pending.any():
            break
        mu[pending] = rng.normal(mean[pending], sd)
    return mu


def live(rng: np.random.Generator, bank: Bank, population: Population, cohort: Cohort) -> Life:
    """Simulate the cohort month by month over the bank's window (see the module docstring)."""
    n, M = cohort.seg.size, bank.n_months
    P = population.n_products
    seg, s_def, s_prod, mu = cohort.seg, cohort.s_def, cohort.s_prod, cohort.mu
    Y = np.empty((n, M, 4), dtype=np.float32)  # health deviation y, then the three needs
    x = rng.normal(0.0, population.sd_idio, n)
    needs = rng.normal(0.0, SD_NEED, (n, 3))
    innov_idio = population.sd_idio * math.sqrt(1 - PHI**2)
    innov_need = SD_NEED * math.sqrt(1 - PHI**2)

    status = np.zeros(n, dtype=np.int8)  # 0 not yet a client, 1 performing, 2 default, 3 gone
    status_hist = np.zeros((n, M), dtype=np.int8)
    since_default = np.full((n, M), -1, dtype=np.int16)
    default_month = np.full(n, -1, dtype=np.int64)
    workout_end = np.full(n, -1, dtype=np.int64)
    is_write_off = np.zeros(n, dtype=bool)
    insolvency_month = np.full(n, -1, dtype=np.int64)
    held = np.zeros((n, P), dtype=bool)
    held_hist = np.zeros((n, M, P), dtype=bool)
    spell_start = np.zeros((n, P), dtype=np.int64)
    planned_end = np.full((n, P), OPEN_ENDED, dtype=np.int64)
    amount = np.full((n, P), np.nan)
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
        tenor = population.tenors[
            pi, (rng.random(ci.size) * population.n_tenors[pi]).astype(np.int64)
        ]
        planned_end[ci, pi] = np.where(tenor > 0, starts + tenor - 1, OPEN_ENDED)
        share = population.amount_base[pi] + population.amount_span[pi] * rng.random(ci.size)
        amount[ci, pi] = np.round(cohort.size[ci] * share, -3)

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
        if cohort.sector is None:
            y = x + bank.macro_factor[m]
        else:
            y = x + bank.sector_factor[cohort.sector, m] + bank.macro_factor[m]
        Y[:, m, 0] = y
        Y[:, m, 1:] = needs
        age = bank.start_abs + m - cohort.founded_abs

        new = cohort.onboard == m
        if new.any():
            status[new] = 1
            _initial_holdings(
                rng,
                population,
                new,
                m,
                cohort.s_initial + Y[:, m] @ population.lat_w,
                seg,
                age,
                cohort.rel_back,
                open_spells,
            )

        performing = status == 1
        defaulted = performing & (rng.random(n) < sigmoid(s_def - DEFAULT_SLOPE * y))
        if defaulted.any():
            k = int(defaulted.sum())
            status[defaulted] = 2
            default_month[defaulted] = m
            workout_end[defaulted] = m + rng.integers(WORKOUT_MONTHS[0], WORKOUT_MONTHS[1] + 1, k)
            is_write_off[defaulted] = rng.random(k) < np.take(
                population.write_off_share, seg[defaulted]
            )
            insolvent = is_write_off[defaulted] & (rng.random(k) < INSOLVENCY_SHARE)
            ins = m + 1 + np.floor(rng.random(k) * (workout_end[defaulted] - m)).astype(np.int64)
            insolvency_month[defaulted] = np.where(insolvent, ins, -1)
            emit(defaulted, m, EventType.DEFAULT)
        ok = performing & ~defaulted
        has_financing = held[:, population.is_financing].any(axis=1)
        restructured = (
            ok
            & has_financing
            & (rng.random(n) < sigmoid(RESTRUCTURING_INTERCEPT - DEFAULT_SLOPE * (mu + y)))
        )
        if restructured.any():
            emit(restructured, m, EventType.RESTRUCTURING)

        eligible = (
            ok[:, None]
            & ~held
            & population.seg_eligible[seg]
            & (age[:, None] >= population.min_age[None, :])
        )
        # One uniform per client and product: it decides adoption where the product is not
        # held and closure where it is (disjoint cells, so draws stay independent).
        u = rng.random((n, P), dtype=np.float32)
        adopt = eligible & (u < sigmoid(s_prod + Y[:, m] @ population.lat_w))
        if adopt.any():
            open_spells(adopt, m)

        status_hist[:, m] = status
        in_default = status == 2
        since_default[in_default, m] = m - default_month[in_default]
        held_hist[:, m] = held
        facility = population.facility
        facility_limit[:, m] = np.where(held[:, facility], amount[:, facility], 0.0).sum(axis=1)

        # End of month: maturities, closures, leavers, workouts.
        churn = held & (spell_start < m) & (u < population.churn)
        close = held & (
            (planned_end == m) | churn | (defaulted[:, None] & population.cancelled_on_default)
        )
        leaving = ok & (rng.random(n) < cohort.alpha)
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
    return Life(
        Y=Y,
        status_hist=status_hist,
        since_default=since_default,
        held_hist=held_hist,
        facility_limit=facility_limit,
        spells=spells,
        ev_client=ev_client,
        ev_month=ev_month,
        ev_type=ev_type,
    )


def _initial_holdings(
    rng: np.random.Generator,
    population: Population,
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
    min_age = population.min_age
    hold = (
        new[:, None]
        & population.seg_eligible[seg]
        & (age[:, None] >= min_age[None, :])
        & (rng.random(logits.shape) < sigmoid(logits))
    )
    if m > 0:
        open_spells(hold, m)
        return
    # A maturing product held at the start has less than its shortest tenor behind it.
    span = np.minimum(rel_back[:, None], age[:, None] - min_age[None, :])
    span = np.minimum(span, population.longest_back[None, :])
    back = np.floor(rng.random(logits.shape) * (np.maximum(span, 0) + 1)).astype(np.int64)
    open_spells(hold, -back)
