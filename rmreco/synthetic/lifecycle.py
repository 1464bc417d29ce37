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
from rmreco.synthetic.arrays import Array, normals, sigmoid
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
    """What happened to a cohort over the window. Histories are month-major, (M, n, ...):
    the month loop writes each month's slab in one piece."""

    Y: Array  # (M, n, 4) health deviation and the three need drivers
    status_hist: Array  # (M, n) 0 not yet a client, 1 performing, 2 default, 3 gone
    since_default: Array  # (M, n) months since the default while in default, else -1
    held_hist: Array  # (M, n, P) held at month end
    facility_limit: Array  # (M, n) overdraft facilities' limits in force
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
    """Simulate the cohort month by month over the bank's window (see the module docstring).

    The month loop touches whole (clients x products) slabs only, and each month's dynamic
    log-odds of every product are one product of the latent state with the loadings, shared by
    the clients that start and those that adopt."""
    n, M = cohort.seg.size, bank.n_months
    P = population.n_products
    seg, s_def, s_prod, mu = cohort.seg, cohort.s_def, cohort.s_prod, cohort.mu
    lat_w = population.lat_w.astype(np.float32)
    s_prod32 = s_prod.astype(np.float32)
    Y = np.empty((M, n, 4), dtype=np.float32)  # health deviation y, then the three needs
    status_hist = np.empty((M, n), dtype=np.int8)
    since_default = np.full((M, n), -1, dtype=np.int16)
    held_hist = np.empty((M, n, P), dtype=bool)
    facility_limit = np.empty((M, n))

    state = np.empty((n, 4))  # this month's y and needs
    x = rng.normal(0.0, population.sd_idio, n)
    needs = state[:, 1:]
    needs[:] = rng.normal(0.0, SD_NEED, (n, 3))
    innov_idio = population.sd_idio * math.sqrt(1 - PHI**2)
    innov_need = SD_NEED * math.sqrt(1 - PHI**2)

    status = np.zeros(n, dtype=np.int8)  # 0 not yet a client, 1 performing, 2 default, 3 gone
    default_month = np.full(n, -1, dtype=np.int64)
    workout_end = np.full(n, -1, dtype=np.int64)
    is_write_off = np.zeros(n, dtype=bool)
    insolvency_month = np.full(n, -1, dtype=np.int64)
    held = np.zeros((n, P), dtype=bool)
    spell_start = np.zeros((n, P), dtype=np.int64)
    planned_end = np.full((n, P), OPEN_ENDED, dtype=np.int64)
    amount = np.full((n, P), np.nan)
    age_floor = population.min_age  # each product's minimum age of the client, in months
    allowed = population.seg_eligible[seg]  # (n, P) the products each client's segment takes
    cancelled = population.cancelled_on_default
    facility = population.facility
    churn_rate = population.churn.astype(np.float32)
    spells = Spells([], [], [], [], [])
    ev_client: list[Array] = []
    ev_month: list[Array] = []
    ev_type: list[Array] = []
    event_codes = {e: i for i, e in enumerate(EventType)}

    def open_spells(ci: Array, pi: Array, starts: Array | int) -> None:
        starts = np.broadcast_to(starts, ci.shape)
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
            x = PHI * x + innov_idio * normals(rng, n)
            needs *= PHI
            needs += innov_need * normals(rng, (n, 3))
        common = bank.macro_factor[m]
        if cohort.sector is None:
            state[:, 0] = x + common
        else:
            state[:, 0] = x + (bank.sector_factor[cohort.sector, m] + common)
        y = state[:, 0]
        Y[m] = state
        # (n, P) dynamic log-odds of each product this month, from the state as the truth
        # sees it (float32)
        drive = Y[m] @ lat_w
        age = bank.start_abs + m - cohort.founded_abs
        old_enough = age[:, None] >= age_floor[None, :]

        new = np.flatnonzero(cohort.onboard == m)
        if new.size:
            status[new] = 1
            _initial_holdings(
                rng,
                population,
                new,
                m,
                cohort.s_initial[new] + drive[new],
                allowed[new] & old_enough[new],
                age[new],
                cohort.rel_back[new],
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

        # One uniform per client and product: it decides adoption where the product is not
        # held and closure where it is (disjoint cells, so draws stay independent).
        u = rng.random((n, P), dtype=np.float32)
        drive += s_prod32
        adopt = u < sigmoid(drive)
        adopt &= ~held
        adopt &= allowed
        adopt &= old_enough
        adopt &= ok[:, None]
        if adopt.any():
            ci, pi = np.nonzero(adopt)
            open_spells(ci, pi, m)

        status_hist[m] = status
        in_default = status == 2
        since_default[m, in_default] = m - default_month[in_default]
        held_hist[m] = held
        facility_limit[m] = np.where(
            np.take(held, facility, axis=1), np.take(amount, facility, axis=1), 0.0
        ).sum(axis=1)

        # End of month: maturities, closures, leavers, workouts.
        close = u < churn_rate
        close &= spell_start < m
        close |= planned_end == m
        if defaulted.any():
            close |= defaulted[:, None] & cancelled
        close &= held
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
    may_hold: Array,
    age: Array,
    rel_back: Array,
    open_spells: Callable[[Array, Array, Array | int], None],
) -> None:
    """Products the clients ``new`` (their rows in the chunk; ``logits``, ``may_hold``, ``age``
    and ``rel_back`` theirs only) hold when their history starts. Clients present in the first
    month may hold them since before the window (since the relationship began, old enough for
    the product, and, for maturing products, not yet matured)."""
    hold = may_hold & (rng.random(logits.shape) < sigmoid(logits))
    rows, pi = np.nonzero(hold)
    if m > 0:
        open_spells(new[rows], pi, m)
        return
    # A maturing product held at the start has less than its shortest tenor behind it.
    span = np.minimum(rel_back[rows], age[rows] - population.min_age[pi])
    span = np.minimum(span, population.longest_back[pi])
    back = np.floor(rng.random(rows.size) * (np.maximum(span, 0) + 1)).astype(np.int64)
    open_spells(new[rows], pi, -back)
