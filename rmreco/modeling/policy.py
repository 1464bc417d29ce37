"""This module owns the credit policy file (``models/credit_policy.yaml``): decision bands by
grade, hard rules, pricing and limit parameters, the terms assumed for products whose catalog
row leaves them empty, the contact policy and the purposes a financing request may name. The
service and batch scoring read it through :func:`load_policy`; every answer names its
``version``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from rmreco.modeling.contact import ContactPolicy
from rmreco.modeling.spec import Frozen, load_spec_file


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


class PricingPolicy(Frozen):
    funding_cost: float = Field(ge=0, le=1)
    hurdle_rate: float = Field(ge=0, le=1)
    pd_floor: float = Field(0.0005, gt=0, lt=1)
    default_maturity_years: float = Field(2.5, gt=0)
    min_maturity_years: float = Field(1.0, gt=0)
    max_maturity_years: float = Field(5.0, gt=0)
    sme_turnover_floor_millions: float = Field(5.0, gt=0)
    sme_turnover_cap_millions: float = Field(50.0, gt=0)


class LimitPolicy(Frozen):
    cash_flow_margin: float = Field(0.08, gt=0, le=1)
    min_dscr: float = Field(1.25, ge=1)
    grade_scale: dict[str, float]
    utilisation: dict[str, float] = Field(default_factory=dict)
    min_limit: float = Field(5000, ge=0)
    amortising: tuple[str, ...] = ()


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


def load_policy(path: Path) -> CreditPolicy:
    """Read and check the credit policy file.

    Raises:
        ConfigurationError: the file is missing, not YAML, or a field is wrong (named).
    """
    return load_spec_file(path, CreditPolicy)
