"""This module owns the synthetic bank's personal clients: who they are (age, declared income,
wealth and habits: none of them a contract column, all of them visible in the accounts), what
their accounts show (salary-like inflows, card spend, savings left on the account, arrears),
and the tables a chunk of them adds. Their months are lived in ``lifecycle``, as firms' are.

A bank's extract of individuals has no sector, founding date, staff or turnover: those client
columns are left empty, as such an extract would leave them; persons file no statements.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from rmreco.domain.contract import (
    ACCOUNT_MONTHS,
    CLIENTS,
    CREDIT_EVENTS,
    HOLDINGS,
    TRUTH_CREDIT_PD,
    TRUTH_CROSS_SELL,
    TRUTH_DIR,
    Segment,
)
from rmreco.synthetic.arrays import (
    Array,
    dates,
    geometric,
    logit,
    month_days,
    normals,
    sigmoid,
)
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.lifecycle import Cohort, Life, live, mean_health
from rmreco.synthetic.observed import Rows, account_months_table, events_table, holdings_table
from rmreco.synthetic.parameters import (
    ADULT_AGE_YEARS,
    CURRENCY,
    DEFAULT_SLOPE,
    INCOME_AGE_SLOPE,
    INCOME_LOG_MEAN,
    INCOME_LOG_SD,
    INCOME_PEAK_AGE,
    INCOME_RANGE,
    ONBOARDING_RATE,
    PERSON_AGE_YEARS,
    PERSON_HEALTH_INCOME,
    PERSON_HEALTH_MEAN,
    PERSON_HEALTH_SD,
    PERSONAL_POPULATION,
    REGIONS,
    YOUNG_ADULT_HEALTH_SHIFT,
    YOUNG_ADULT_YEARS,
)
from rmreco.synthetic.truth import truth_tables


def simulate_personal(
    bank: Bank, rng: np.random.Generator, members: Array, ids: pa.Array
) -> dict[str, pa.Table]:
    """The personal clients ``members`` (bank-wide client numbers, ``ids`` their identifiers)
    over the window: their tables by name (truth files as ``truth/<name>``)."""
    population = PERSONAL_POPULATION
    n, M = members.size, bank.n_months
    seg = np.zeros(n, dtype=np.int64)  # the population's one segment

    # --- who they are ------------------------------------------------------------------------
    late_share = ONBOARDING_RATE * (M - 1) / (1.0 + ONBOARDING_RATE * (M - 1))
    late = rng.random(n) < late_share
    onboard = np.where(late, rng.integers(1, M, n), 0)
    age_years = rng.uniform(PERSON_AGE_YEARS[0], PERSON_AGE_YEARS[1], n)  # at onboarding
    onboard_abs = bank.start_abs + onboard
    born_abs = onboard_abs - np.floor(age_years * 12).astype(np.int64)
    adult_months = np.floor((age_years - ADULT_AGE_YEARS) * 12)
    rel_back = np.where(late, 0, np.floor(rng.random(n) * (np.minimum(adult_months, 180) + 1)))
    rel_abs = onboard_abs - rel_back.astype(np.int64)

    log_income = np.clip(
        INCOME_LOG_MEAN
        + INCOME_AGE_SLOPE * (np.minimum(age_years, INCOME_PEAK_AGE) - 40.0)
        + rng.normal(0.0, INCOME_LOG_SD, n),
        math.log(INCOME_RANGE[0]),
        math.log(INCOME_RANGE[1]),
    )
    income = np.round(np.exp(log_income), -2)
    income_z = (log_income - INCOME_LOG_MEAN) / INCOME_LOG_SD
    youth = (45.0 - age_years) / 17.0
    wealth = -0.35 * youth + rng.normal(0.0, 0.94, n)
    card_affinity = rng.normal(0.0, 1.0, n)
    household = rng.normal(0.0, 1.0, n)
    travel = rng.normal(0.0, 1.0, n)
    statics = np.column_stack([income_z, youth, wealth, card_affinity, household])
    wallet = rng.beta(6.0, 2.0, n)  # share of the person's income paid into this bank
    level_noise = rng.normal(0.0, 0.1, n)

    static_default = np.take(population.default_intercept, seg)
    health = (
        PERSON_HEALTH_MEAN
        + PERSON_HEALTH_INCOME * income_z
        + YOUNG_ADULT_HEALTH_SHIFT * (age_years < YOUNG_ADULT_YEARS)
    )
    mu = mean_health(rng, population, seg, health, static_default, late, PERSON_HEALTH_SD)
    s_def = static_default - DEFAULT_SLOPE * mu
    intercept = population.intercept[seg]
    s_prod = intercept + statics @ population.static_w + mu[:, None] * population.lat_w[0][None, :]
    s_initial = logit(population.prevalence[seg]) + 0.7 * (s_prod - intercept)

    # --- months ------------------------------------------------------------------------------
    cohort = Cohort(
        seg=seg,
        onboard=onboard,
        founded_abs=born_abs,
        rel_back=rel_back,
        size=income,
        mu=mu,
        s_def=s_def,
        s_prod=s_prod,
        s_initial=s_initial,
        alpha=np.take(population.attrition, seg),
        sector=None,
    )
    life = live(rng, bank, population, cohort)

    # --- tables ------------------------------------------------------------------------------
    out: dict[str, pa.Table] = {}
    out[CLIENTS.name] = pa.table(
        {
            "client_id": ids,
            "segment": pa.array([Segment.PERSONAL.value] * n),
            "sector": pa.nulls(n, type=pa.string()),
            "region": pa.array(REGIONS).take(pa.array(bank.region[members])),
            "founded": pa.nulls(n, type=pa.date32()),
            "employees": pa.nulls(n, type=pa.int64()),
            "turnover": pa.nulls(n, type=pa.float64()),
            "rm_id": bank.rm_ids.take(pa.array(bank.rm_index[members])),
            "onboarded": dates(month_days(np.where(late, onboard_abs, rel_abs))),
            "currency": pa.array([CURRENCY] * n),
        }
    )
    out[ACCOUNT_MONTHS.name] = _account_months(
        rng, bank, ids, life, mu, income, wallet, level_noise, wealth, card_affinity, travel
    )
    out[HOLDINGS.name] = holdings_table(bank, ids, life.spells, population.codes)
    out[CREDIT_EVENTS.name] = events_table(bank, ids, life.ev_client, life.ev_month, life.ev_type)
    pd_table, cross_table = truth_tables(
        bank,
        population,
        ids,
        life.status_hist,
        life.held_hist,
        seg,
        born_abs,
        s_def,
        s_prod,
        life.Y,
    )
    out[f"{TRUTH_DIR}/{TRUTH_CREDIT_PD}"] = pd_table
    out[f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}"] = cross_table
    return out


def _account_months(
    rng: np.random.Generator,
    bank: Bank,
    ids: pa.Array,
    life: Life,
    mu: Array,
    income: Array,
    wallet: Array,
    level_noise: Array,
    wealth: Array,
    card_affinity: Array,
    travel: Array,
) -> pa.Table:
    """The observable account history of persons: a salary paid in every month, spending out
    of it, savings left on the account, card spend on a held credit card, arrears on credit."""
    status_hist = life.status_hist
    present = (status_hist == 1) | (status_hist == 2)
    f32 = np.float32
    products = PERSONAL_POPULATION
    card_p = products.index["credit_card"]
    salary = income / 12.0 * wallet * np.exp(level_noise)

    def columns(rows: Rows) -> dict[str, Array]:
        R, c = rows.size, rows.client
        latent = rows.at(life.Y)
        y = latent[:, 0]
        spending, housing, cash = latent[:, 1], latent[:, 2], latent[:, 3]
        h = mu[c] + y
        in_default = rows.at(status_hist) == 2
        held = rows.at(life.held_hist)

        def noise(sd: float) -> Array:
            draws = normals(rng, R)
            draws *= f32(sd)
            return draws

        # the salary: steady, a little lower in bad times, cut when the client is in default
        expected = salary[c] * np.exp(0.1 * y)
        credit = expected * np.exp(noise(0.05)) * np.where(in_default, 0.6, 1.0)
        # saving out of it: the healthy, those with a surplus and those saving for a home save
        # more
        net_share = 0.03 + 0.03 * h + 0.05 * cash + 0.03 * housing - 0.04 * spending + noise(0.05)
        debit = credit * np.maximum(1.0 - net_share, 0.0)

        liquidity = expected * np.exp(
            0.4 + 0.4 * h + 0.45 * cash + 0.3 * housing + 0.5 * wealth[c] + noise(0.25)
        )
        # no arranged overdraft among the personal products: an overdrawn account is unarranged
        od_share = sigmoid(-3.5 - 1.5 * h + 0.6 * spending + noise(0.7))
        days = np.clip(np.round(31.0 * od_share - 4.0), 0, 31).astype(np.int64)
        days = np.where(in_default, np.maximum(days, 15), days)
        use_share = sigmoid(0.2 - 1.2 * h + noise(0.5))
        peak = np.where(days > 0, expected * 0.3 * use_share, 0.0)
        balance_avg = liquidity * (1.0 - days / 31.0) - 0.5 * peak * days / 31.0
        swing = expected * np.exp(-0.4 - 0.2 * h + noise(0.2))
        balance_max = balance_avg + 0.6 * swing
        balance_min = np.where(days > 0, -peak, np.maximum(balance_avg - 0.7 * swing, 0.0))

        n_credit = np.round(np.exp(0.6 + 0.1 * np.log1p(credit / 1e3) + noise(0.25)))
        n_debit = np.round(
            np.exp(
                2.7
                + 0.3 * card_affinity[c]
                + 0.15 * spending
                + 0.2 * np.log1p(debit / 1e3)
                + noise(0.15)
            )
        )
        returned = geometric(
            rng.random(R, dtype=f32), np.exp(-3.6 - 1.0 * h) * np.where(in_default, 4.0, 1.0)
        )
        has_credit = held[:, products.is_financing].any(axis=1)
        late_payer = has_credit & (rng.random(R, dtype=f32) < sigmoid(-3.8 - 1.4 * h))
        arrears = 1 + geometric(rng.random(R, dtype=f32), 8.0 * np.exp(-0.4 * h))
        dpd = np.where(late_payer, np.minimum(arrears, 89), 0)
        dpd = np.where(
            in_default,
            90 + 30 * rows.at(life.since_default).astype(np.int64) + rng.integers(0, 30, R),
            dpd,
        )
        intl_pay = (credit + debit) * sigmoid(-4.0 + 0.8 * travel[c] + noise(0.4))
        card_spend = np.where(
            held[:, card_p],
            debit * sigmoid(-1.4 + 0.5 * card_affinity[c] + 0.4 * spending + noise(0.2)),
            0.0,
        )
        none = np.zeros(R)
        return {
            "balance_avg": balance_avg,
            "balance_min": balance_min,
            "balance_max": balance_max,
            "credit_turnover": credit,
            "debit_turnover": debit,
            "n_credit_tx": n_credit,
            "n_debit_tx": n_debit,
            "overdraft_limit": rows.at(life.facility_limit),
            "overdraft_peak_use": peak,
            "days_in_overdraft": days,
            "dpd_max": dpd,
            "returned_payments": returned,
            "intl_payments": intl_pay,
            "payroll_outflow": none,  # persons pay no salaries
            "card_spend": card_spend,
            "acquiring_inflow": none,  # nor take card payments
        }

    return account_months_table(rng, bank, ids, present, columns)
