"""This module owns the credit policy file (``models/credit_policy.yaml``): decision bands by
grade, hard rules, pricing and limit parameters, the terms assumed for products whose catalog
row leaves them empty, the contact policy and the purposes a financing request may name. The
service and batch scoring read it through :func:`load_policy`; every answer names its
``version``.

Money amounts are stated with their currency: the policy's ``currency`` is that of
``limits.min_limit`` and pricing's ``sme_turnover_floor_millions`` and
``sme_turnover_cap_millions``; ``other_currencies`` may give the same amounts for loads in
other currencies. :meth:`CreditPolicy.in_currency` gives the policy in the data's currency and
refuses a currency the policy has no amounts for. Rates and shares are currency-free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rmreco.domain.errors import PolicyCurrencyError
from rmreco.modeling.contact import ContactPolicy
from rmreco.modeling.spec import Frozen, load_spec_file

#: An ISO 4217 currency code, as the data contract states it (three capital letters)
CURRENCY_PATTERN = r"^[A-Z]{3}$"


class DecisionBands(Frozen):
    approve: tuple[str, ...]
    refer: tuple[str, ...]
    decline: tuple[str, ...]

    @model_validator(mode="after")
    def _disjoint(self) -> DecisionBands:
        seen = [*self.approve, *self.refer, *self.decline]
        if len(seen) != len(set(seen)):
            raise ValueError("a grade is in more than one decision band")
        return self


class HardRules(Frozen):
    max_recent_dpd: int = Field(30, ge=0)
    refer_dpd_12m: int = Field(60, ge=0)
    refer_if_restructured: bool = True
    min_business_age_months: int = Field(6, ge=0)


def _turnover_bounds(floor: float, cap: float) -> None:
    if floor >= cap:
        raise ValueError(
            f"sme_turnover_floor_millions ({floor}) must be below sme_turnover_cap_millions ({cap})"
        )


class PricingPolicy(Frozen):
    funding_cost: float = Field(ge=0, le=1)
    hurdle_rate: float = Field(ge=0, le=1)
    pd_floor: float = Field(0.0005, gt=0, lt=1)
    default_maturity_years: float = Field(2.5, gt=0)
    min_maturity_years: float = Field(1.0, gt=0)
    max_maturity_years: float = Field(5.0, gt=0)
    #: annual turnover (millions, in the policy's currency) below which Basel's SME firm-size
    #: adjustment is the largest, and from which it no longer applies (EUR 5 and 50 million)
    sme_turnover_floor_millions: float = Field(gt=0)
    sme_turnover_cap_millions: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PricingPolicy:
        _turnover_bounds(self.sme_turnover_floor_millions, self.sme_turnover_cap_millions)
        return self


class LimitPolicy(Frozen):
    cash_flow_margin: float = Field(0.08, gt=0, le=1)
    min_dscr: float = Field(1.25, ge=1)
    grade_scale: dict[str, float]
    utilisation: dict[str, float] = Field(default_factory=dict)
    #: smallest limit worth offering, in the policy's currency
    min_limit: float = Field(ge=0)
    amortising: tuple[str, ...] = ()


class Amounts(Frozen):
    """The policy's money amounts in one currency: the keys of ``limits`` and ``pricing`` that
    hold money, under the same names."""

    min_limit: float = Field(ge=0)
    sme_turnover_floor_millions: float = Field(gt=0)
    sme_turnover_cap_millions: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Amounts:
        _turnover_bounds(self.sme_turnover_floor_millions, self.sme_turnover_cap_millions)
        return self


class CatalogDefaults(Frozen):
    """Terms assumed for a financing product whose catalog row leaves them empty (the
    contract makes them optional); every option built on one says so in its notes."""

    lgd: float = Field(0.45, gt=0, le=1)
    margin_rate: float = Field(0.015, ge=0, le=1)
    max_tenor_months: int = Field(12, ge=1)
    limit_turnover_share: float = Field(0.1, ge=0)
    min_age_months: int = Field(0, ge=0)


class CreditPolicy(Frozen):
    """The policy file: ``models/credit_policy.yaml``."""

    version: str
    #: ISO 4217 code of the money amounts of ``limits`` and ``pricing``
    currency: str = Field(pattern=CURRENCY_PATTERN)
    #: the same amounts for data in other currencies, by ISO 4217 code
    other_currencies: dict[str, Amounts] = Field(default_factory=dict)
    decision: DecisionBands
    hard_rules: HardRules = HardRules()
    pricing: PricingPolicy
    limits: LimitPolicy
    catalog_defaults: CatalogDefaults = CatalogDefaults()
    #: when a product may be put to a client again (financing and cross-sell alike)
    contact: ContactPolicy
    #: what a financing request may be for, and the financing products (codes of the bank's
    #: catalog) that serve each purpose
    purposes: dict[str, tuple[str, ...]]
    #: the file the policy was read from, named by its errors
    _source: str = PrivateAttr("the credit policy file")

    @model_validator(mode="before")
    @classmethod
    def _states_currency(cls, data: Any) -> Any:
        if isinstance(data, dict) and "currency" not in data:
            raise ValueError(
                "currency is missing: state the ISO 4217 code of the policy's amounts "
                "(limits.min_limit, pricing.sme_turnover_floor_millions and "
                "sme_turnover_cap_millions), e.g. currency: EUR"
            )
        return data

    @field_validator("other_currencies")
    @classmethod
    def _codes(cls, value: dict[str, Amounts]) -> dict[str, Amounts]:
        wrong = [code for code in value if not re.fullmatch(CURRENCY_PATTERN, code)]
        if wrong:
            raise ValueError(
                f"{wrong} are not ISO 4217 currency codes (three capital letters, such as PLN)"
            )
        return value

    @model_validator(mode="after")
    def _own_currency_once(self) -> CreditPolicy:
        if self.currency in self.other_currencies:
            raise ValueError(
                f"other_currencies.{self.currency} repeats the policy's own currency; its "
                "amounts are limits.min_limit and pricing's sme_turnover_* keys"
            )
        return self

    @property
    def source(self) -> str:
        """The file the policy was read from (a description when built in code)."""
        return self._source

    @property
    def amounts(self) -> Amounts:
        """The money amounts in force, in :attr:`currency`."""
        return Amounts(
            min_limit=self.limits.min_limit,
            sme_turnover_floor_millions=self.pricing.sme_turnover_floor_millions,
            sme_turnover_cap_millions=self.pricing.sme_turnover_cap_millions,
        )

    @property
    def currencies(self) -> tuple[str, ...]:
        """Every currency the policy states amounts in, its own first."""
        return (self.currency, *sorted(self.other_currencies))

    def in_currency(self, currency: str) -> CreditPolicy:
        """The policy for data whose money is in ``currency`` (ISO 4217): itself when that is
        its own currency, else the same policy with the amounts ``other_currencies`` gives for
        it (the amounts it had move to ``other_currencies``).

        Raises:
            PolicyCurrencyError: the policy states no amounts in ``currency`` (the message names
                the policy file and the key to add).
        """
        if currency == self.currency:
            return self
        chosen = self.other_currencies.get(currency)
        if chosen is None:
            raise PolicyCurrencyError(
                currency=currency,
                policy_currencies=self.currencies,
                policy_file=self.source,
                key=f"other_currencies.{currency}",
                amounts=tuple(Amounts.model_fields),
            )
        others = {
            **{code: a for code, a in self.other_currencies.items() if code != currency},
            self.currency: self.amounts,
        }
        update: dict[str, Any] = {
            "currency": currency,
            "other_currencies": others,
            "limits": self.limits.model_copy(update={"min_limit": chosen.min_limit}),
            "pricing": self.pricing.model_copy(
                update={
                    "sme_turnover_floor_millions": chosen.sme_turnover_floor_millions,
                    "sme_turnover_cap_millions": chosen.sme_turnover_cap_millions,
                }
            ),
        }
        return self.model_copy(update=update)


def load_policy(path: Path) -> CreditPolicy:
    """Read and check the credit policy file.

    Raises:
        ConfigurationError: the file is missing, not YAML, or a field is wrong (named).
    """
    policy = load_spec_file(path, CreditPolicy)
    policy._source = str(path)
    return policy
