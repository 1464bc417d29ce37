"""Credit decisioning: the policy decision, limits sized from cash flows and the ranked
financing options of one client, and the one orchestration (:func:`decide_financing`) the
service's financing answer and batch scoring share. The policy file is
:mod:`rmreco.modeling.policy`; prices and capital are :mod:`rmreco.modeling.pricing`.

Limits are the smallest of what the product allows (a share of annual turnover), what the
client's cash flow can service (for amortising products: the principal whose annuity fits
within cash flow / minimum DSCR) and, when asked, the requested amount; then scaled by grade.
Options rank by expected risk-adjusted annual profit times the client's propensity to take the
product.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rmreco.domain.contract import ProductKind
from rmreco.features.reasons import (
    POL_DEFAULT,
    POL_DPD3M,
    POL_DPD12M,
    POL_GRADE_DECLINE,
    POL_GRADE_REFER,
    POL_RESTRUCTURED,
    POL_YOUNG,
)
from rmreco.modeling.adverse import (
    AdverseReason,
    PolicyReason,
    adverse_action_reasons,
    default_reason,
)
from rmreco.modeling.contact import Suppression
from rmreco.modeling.master_scale import DEFAULT_GRADE
from rmreco.modeling.policy import CatalogDefaults, CreditPolicy
from rmreco.modeling.pricing import Price, annuity_principal, price

Outcome = Literal["approve", "refer", "decline"]
_SEVERITY = {"approve": 0, "refer": 1, "decline": 2}


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientFacts:
    """What decisioning needs to know of a client, from its point-in-time features."""

    segment: str
    business_age_months: float | None
    annual_inflows: float | None  # observed over the last 12 months
    declared_turnover: float | None
    ebitda: float | None  # from the latest annual accounts, when there are any
    dpd_3m: float
    dpd_12m: float
    restructured_12m: bool
    in_default: bool
    held_products: frozenset[str] = frozenset()

    @classmethod
    def from_features(
        cls,
        features: Mapping[str, Any],
        *,
        segment: str,
        declared_turnover: float | None,
        in_default: bool,
        held_products: frozenset[str] = frozenset(),
    ) -> ClientFacts:
        """Facts from a client's point-in-time features (``rmreco.features``)."""

        def get(name: str) -> float | None:
            value = features.get(name)
            return None if value is None or _is_nan(value) else float(value)

        inflow_log = get("inflow_12m_log")
        margin = get("fin_ebitda_margin")
        return cls(
            segment=segment,
            business_age_months=get("business_age_months"),
            annual_inflows=math.expm1(inflow_log) if inflow_log is not None else None,
            declared_turnover=declared_turnover,
            ebitda=margin * declared_turnover if margin is not None and declared_turnover else None,
            dpd_3m=get("dpd_3m") or 0.0,
            dpd_12m=get("dpd_12m") or 0.0,
            restructured_12m=bool(get("restructured_12m")),
            in_default=in_default,
            held_products=held_products,
        )

    @property
    def turnover(self) -> float:
        """Annual turnover the limits work from: observed inflows, else the declared figure."""
        for value in (self.annual_inflows, self.declared_turnover):
            if value is not None and value > 0:
                return value
        return 0.0

    @property
    def cash_flow(self) -> float | None:
        """Annual operating cash flow: EBITDA of the accounts when known and positive."""
        return self.ebitda if self.ebitda is not None and self.ebitda > 0 else None


@dataclass(frozen=True)
class Decision:
    """The policy's outcome and its reasons, each with the code of its rule."""

    outcome: Outcome
    policy_reasons: tuple[PolicyReason, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The sentences of :attr:`policy_reasons`."""
        return tuple(r.text for r in self.policy_reasons)


def graded(pd: float, grade: str, *, in_default: bool) -> tuple[float, str]:
    """The PD and grade a decision reads: a client in default is graded D with a PD of 1
    whatever the model says."""
    return (1.0, DEFAULT_GRADE) if in_default else (pd, grade)


def decide(grade: str, facts: ClientFacts, policy: CreditPolicy) -> Decision:
    """Approve, refer or decline by grade and hard rules; a decline always carries reasons,
    each with its rule's code (the catalogue's ``POL_*``, see ``docs/reasons.md``)."""
    bands = policy.decision
    rules = policy.hard_rules
    outcome: Outcome
    reasons: list[PolicyReason] = []
    if facts.in_default or grade == DEFAULT_GRADE:
        return Decision("decline", (PolicyReason(POL_DEFAULT, "the client is in default"),))
    if grade in bands.approve:
        outcome = "approve"
    elif grade in bands.refer:
        outcome = "refer"
        reasons.append(
            PolicyReason(POL_GRADE_REFER, f"risk grade {grade} needs a credit officer's review")
        )
    else:
        outcome = "decline"
        reasons.append(
            PolicyReason(
                POL_GRADE_DECLINE, f"risk grade {grade} is outside the bank's credit appetite"
            )
        )

    def at_least(level: Outcome, code: str, text: str, feature: str | None = None) -> None:
        nonlocal outcome
        if _SEVERITY[level] > _SEVERITY[outcome]:
            outcome = level
        # a rule that declines whatever the grade is a knock-out: a reason of the decline itself
        reasons.append(PolicyReason(code, text, knock_out=level == "decline", feature=feature))

    if facts.dpd_3m > rules.max_recent_dpd:
        at_least(
            "decline",
            POL_DPD3M,
            f"payments {facts.dpd_3m:.0f} days past due in the last 3 months",
            feature="dpd_3m",
        )
    elif facts.dpd_12m > rules.refer_dpd_12m:
        at_least(
            "refer", POL_DPD12M, f"payments {facts.dpd_12m:.0f} days past due in the last 12 months"
        )
    if rules.refer_if_restructured and facts.restructured_12m:
        at_least(
            "refer", POL_RESTRUCTURED, "a credit facility was restructured in the last 12 months"
        )
    age = facts.business_age_months
    if age is not None and age < rules.min_business_age_months:
        at_least(
            "decline",
            POL_YOUNG,
            f"the business is {age:.0f} months old; the minimum is {rules.min_business_age_months}",
            feature="business_age_months",
        )
    return Decision(outcome, tuple(reasons))


# --- financing options -----------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """A financing product of the catalog, as decisioning reads it."""

    code: str
    name: str
    segments: frozenset[str]
    lgd: float
    margin_rate: float
    max_tenor_months: int
    limit_turnover_share: float
    min_age_months: int = 0
    #: The terms taken from the policy's ``catalog_defaults`` because the catalog left them empty.
    assumed: tuple[str, ...] = ()

    @classmethod
    def from_catalog(
        cls, row: Mapping[str, Any], defaults: CatalogDefaults | None = None
    ) -> Product:
        defaults = defaults or CatalogDefaults()
        assumed: list[str] = []

        def number(key: str) -> float:
            value = row.get(key)
            if value is None or _is_nan(value):
                assumed.append(key)
                return float(getattr(defaults, key))
            return float(value)

        return cls(
            code=str(row["product_code"]),
            name=str(row.get("name") or row["product_code"]),
            segments=frozenset(str(row.get("segments") or "").split("|")) - {""},
            lgd=number("lgd"),
            margin_rate=number("margin_rate"),
            max_tenor_months=int(number("max_tenor_months")),
            limit_turnover_share=number("limit_turnover_share"),
            min_age_months=int(number("min_age_months")),
            assumed=tuple(assumed),
        )


@dataclass(frozen=True)
class Request:
    """What the RM asked for; all optional. ``purpose`` is one of the policy's ``purposes``."""

    amount: float | None = None
    tenor_months: int | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class Option:
    product_code: str
    name: str
    limit: float
    tenor_months: int
    price: Price
    exposure: float
    expected_annual_profit: float
    #: the client's calibrated chance of taking the product (None: no model scores it)
    propensity: float | None
    #: expected annual profit x propensity (None where the propensity is unknown)
    score: float | None
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    #: what of the request the option does not meet (amount, tenor), in words; empty: all
    shortfalls: tuple[str, ...] = field(default=())
    #: the contact policy keeps the product from the client until then (None: free to offer)
    suppressed: Suppression | None = None
    #: why the option ranks where it does, relative to the others
    rank_reason: str = ""

    @property
    def fits_request(self) -> bool:
        return not self.shortfalls

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_code": self.product_code,
            "name": self.name,
            "limit": round(self.limit, 2),
            "tenor_months": self.tenor_months,
            "indicative_rate": round(self.price.rate, 6),
            "pricing": self.price.to_dict(),
            "exposure": round(self.exposure, 2),
            "expected_annual_profit": round(self.expected_annual_profit, 2),
            "propensity": self.propensity,
            "score": None if self.score is None else round(self.score, 4),
            "fits_request": self.fits_request,
            "suppressed": None if self.suppressed is None else self.suppressed.to_dict(),
            "rank_reason": self.rank_reason,
            "reasons": list(self.reasons),
            "notes": [*self.shortfalls, *self.notes],
        }


def financing_products(catalog: Sequence[Mapping[str, Any]], policy: CreditPolicy) -> list[Product]:
    """The financing products of a catalog (rows of the contract's ``products``) as decisioning
    reads them, with the policy's ``catalog_defaults`` for the terms a row leaves empty."""
    return [
        Product.from_catalog(row, policy.catalog_defaults)
        for row in catalog
        if row.get("kind") == ProductKind.FINANCING
    ]


def purpose_products(policy: CreditPolicy, purpose: str | None) -> frozenset[str] | None:
    """The financing products that serve ``purpose`` (None: no purpose given, every product).

    Raises:
        ValueError: the purpose is not one of the policy's (the message lists them).
    """
    if purpose is None:
        return None
    if purpose not in policy.purposes:
        raise ValueError(
            f"unknown purpose {purpose!r}; the credit policy knows: {', '.join(policy.purposes)}"
        )
    return frozenset(policy.purposes[purpose])


def _option(
    facts: ClientFacts,
    pd: float,
    grade: str,
    scale: float,
    product: Product,
    policy: CreditPolicy,
    propensity: float | None,
    has_model: bool,
    request: Request,
) -> Option | None:
    """One product's option, or None when the client cannot be offered it."""
    if product.segments and facts.segment not in product.segments:
        return None
    age = facts.business_age_months
    if age is not None and age < product.min_age_months:
        return None
    notes: list[str] = []
    shortfalls: list[str] = []
    if product.assumed:
        notes.append(
            f"the catalog gives no {', '.join(product.assumed)} for {product.name}: "
            "the credit policy's defaults were used"
        )
    if product.code in facts.held_products:
        notes.append(
            f"the client already holds {product.name}: this is an increase or "
            "a second facility, to be read with the one in place"
        )
    tenor = product.max_tenor_months
    if request.tenor_months is not None:
        if request.tenor_months > product.max_tenor_months:
            shortfalls.append(
                f"the longest tenor of {product.name} is {product.max_tenor_months}"
                f" months; {request.tenor_months} were asked"
            )
        tenor = min(request.tenor_months, product.max_tenor_months)
    years = tenor / 12
    turnover_m = facts.declared_turnover / 1e6 if facts.declared_turnover else None
    quote = price(pd, product.lgd, product.margin_rate, years, turnover_m, policy.pricing)
    cash_flow = facts.cash_flow or facts.turnover * policy.limits.cash_flow_margin
    service_capacity = cash_flow / policy.limits.min_dscr
    by_turnover = product.limit_turnover_share * facts.turnover
    if product.code in policy.limits.amortising:
        by_cash_flow = annuity_principal(service_capacity, quote.rate, years)
        sized_by = "debt-service capacity" if by_cash_flow < by_turnover else "turnover"
    else:
        # a revolving line is serviced by its interest while drawn
        drawn = policy.limits.utilisation.get(product.code, 1.0)
        by_cash_flow = service_capacity / max(quote.rate * drawn, 1e-6)
        sized_by = "cash flow" if by_cash_flow < by_turnover else "turnover"
    largest = min(by_turnover, by_cash_flow) * scale
    sizing = f"limit sized by {sized_by} and grade {grade} ({scale:.0%} of the sized amount)"
    limit = largest
    if request.amount is not None:
        if request.amount > largest:
            shortfalls.append(
                f"{request.amount:,.0f} asked; {largest:,.0f} is the largest amount "
                f"the client's cash flows carry at grade {grade}"
            )
        else:
            limit = request.amount
            sizing = (
                f"limit is the {request.amount:,.0f} asked (the client's cash flows carry up "
                f"to {largest:,.0f} at grade {grade})"
            )
    if limit < policy.limits.min_limit:
        return None
    exposure = limit * policy.limits.utilisation.get(product.code, 1.0)
    profit = exposure * (
        quote.rate - quote.funding_cost - quote.expected_loss - quote.capital_charge
    )
    reasons = [
        sizing,
        f"rate {quote.rate:.2%}: funding {quote.funding_cost:.2%}, expected loss "
        f"{quote.expected_loss:.2%}, capital {quote.capital_charge:.2%}, margin "
        f"{quote.operating_margin:.2%}",
    ]
    if propensity is None:
        notes.append(
            f"no take-up propensity for {product.name}: "
            + (
                "the cross-sell model does not score it for this client"
                if has_model
                else "no cross-sell model is served"
            )
            + "; ranked after the options whose propensity is known, by expected profit"
        )
    else:
        reasons.append(
            f"expected annual profit {profit:,.0f} x take-up propensity "
            f"{propensity:.1%} = {profit * propensity:,.0f}"
        )
    return Option(
        product_code=product.code,
        name=product.name,
        limit=limit,
        tenor_months=tenor,
        price=quote,
        exposure=exposure,
        expected_annual_profit=profit,
        propensity=propensity,
        score=None if propensity is None else profit * propensity,
        reasons=tuple(reasons),
        notes=tuple(notes),
        shortfalls=tuple(shortfalls),
    )


def _tier(option: Option) -> int:
    """Ranking tier: free to offer and meeting the request; short of the request; suppressed."""
    if option.suppressed is not None:
        return 2
    return 0 if option.fits_request else 1


def _rank_key(option: Option) -> tuple[int, bool, float, str]:
    value = option.score if option.score is not None else option.expected_annual_profit
    return (_tier(option), option.score is None, -value, option.product_code)


def _rank_reason(position: int, option: Option, ahead: Option | None, total: int) -> str:
    """Why ``option`` ranks at ``position`` (1-based), in words, against the one just ahead."""
    if option.suppressed is not None:
        return f"ranked {position} of {total}: {option.suppressed.note}"
    if ahead is not None and _tier(ahead) < _tier(option):
        return (
            f"ranked {position} of {total}, after the options that meet the request: "
            + "; ".join(option.shortfalls)
        )
    if option.score is None:
        head = f"ranked {position} of {total}: its take-up propensity is unknown, so it comes "
        if ahead is not None and ahead.score is not None:
            return head + "after the options whose propensity is known"
        return head + f"by expected annual profit ({option.expected_annual_profit:,.0f})"
    if ahead is None:
        return (
            f"ranked first of {total}: the highest expected annual profit x take-up propensity "
            f"({option.score:,.0f})"
            + ("" if not option.shortfalls else " among options short of the request")
        )
    assert ahead.score is not None  # tiers and unknown propensities are handled above
    why = (
        "a lower take-up propensity"
        if option.expected_annual_profit >= ahead.expected_annual_profit
        else "a lower expected annual profit"
        if (option.propensity or 0.0) >= (ahead.propensity or 0.0)
        else "a lower profit and a lower take-up propensity"
    )
    return (
        f"ranked {position} of {total}: expected annual profit x take-up propensity "
        f"{option.score:,.0f}, below {ahead.name}'s {ahead.score:,.0f} ({why})"
    )


def financing_options(
    facts: ClientFacts,
    pd: float,
    grade: str,
    products: Sequence[Product],
    policy: CreditPolicy,
    *,
    propensities: Mapping[str, float] | None = None,
    request: Request | None = None,
    suppressed: Mapping[str, Suppression] | None = None,
) -> list[Option]:
    """The financing products the client can be offered, ranked (best first).

    A product is left out when the client's segment is not served by it, the business is too
    young for it, the grade has no limit share, the sized limit is below the policy minimum, or
    the request names a purpose the product does not serve (the policy's ``purposes``).

    Options rank in three tiers: those that meet the request (its amount and tenor), then those
    short of it (each says by how much), then those the contact policy keeps from the client
    (``suppressed``, by product: marked with the day they return). Within a tier, by expected
    annual profit x the client's take-up propensity (``propensities``, from the cross-sell
    model); an option whose propensity is unknown (no cross-sell model, or the product is not
    one it scores for this client) says so and comes after those whose propensity is known, by
    profit. Each option says in words why it ranks where it does.

    Raises:
        ValueError: the request's purpose is not one of the policy's.
    """
    request = request or Request()
    serving = purpose_products(policy, request.purpose)
    scale = policy.limits.grade_scale.get(grade, 0.0)
    if scale <= 0 or facts.in_default:
        return []
    options: list[Option] = []
    for product in products:
        if serving is not None and product.code not in serving:
            continue
        propensity = None if propensities is None else propensities.get(product.code)
        option = _option(
            facts,
            pd,
            grade,
            scale,
            product,
            policy,
            propensity,
            propensities is not None,
            request,
        )
        if option is not None:
            if suppressed and product.code in suppressed:
                option = replace(option, suppressed=suppressed[product.code])
            options.append(option)
    options.sort(key=_rank_key)
    return [
        replace(
            option,
            rank_reason=_rank_reason(k + 1, option, options[k - 1] if k else None, len(options)),
        )
        for k, option in enumerate(options)
    ]


# --- one financing answer --------------------------------------------------------------------


@dataclass(frozen=True)
class FinancingDecision:
    """The whole answer to "what financing can this client get": the credit model's PD (of a
    default within ``pd_horizon_months``), grade and reasons, the policy decision, the
    adverse-action reasons of a decline, and the ranked options."""

    pd: float
    #: the months the PD covers: the credit model's label horizon
    pd_horizon_months: int
    grade: str
    decision: Decision
    #: the model's reasons (``Reason.to_dict``); a client in default: the default only
    reasons: tuple[dict[str, Any], ...]
    #: one to four reasons of a decline (see :mod:`rmreco.modeling.adverse`); empty otherwise
    adverse_action_reasons: tuple[AdverseReason, ...]
    options: tuple[Option, ...]


def decide_financing(
    *,
    features: Mapping[str, Any],
    segment: str,
    declared_turnover: float | None,
    in_default: bool,
    held_products: frozenset[str],
    pd: float,
    pd_horizon_months: int,
    grade: str,
    reasons: Sequence[dict[str, Any]],
    catalog: Sequence[Mapping[str, Any]],
    policy: CreditPolicy,
    propensities: Mapping[str, float] | None,
    request: Request | None = None,
    suppressed: Mapping[str, Suppression] | None = None,
    products: Sequence[Product] | None = None,
) -> FinancingDecision:
    """Decide one client's financing from its features and its credit score: the one
    orchestration the service's financing answer and batch scoring's financing output share.
    ``pd`` is the credit model's probability of default within ``pd_horizon_months`` (its label
    horizon), carried into the answer beside it.

    A client in default is graded D with a PD of 1 whatever the model says, and declined, with
    the default as its one reason (no feature). A decline carries the policy's coded reasons
    in its decision and one to four adverse-action reasons: the knock-out rules that declined
    it, then, when its grade declined it, the features that pushed the PD up (see
    :func:`rmreco.modeling.adverse.adverse_action_reasons`).
    ``catalog`` is the product catalog (rows of the contract's ``products``); only its
    financing products are offered. ``propensities`` are the client's take-up propensities by
    product from the cross-sell model (None when none is served); ``suppressed`` the products
    the contact policy keeps from the client now; see :func:`financing_options`.
    ``products``: :func:`financing_products` of ``catalog`` and ``policy``, when the caller
    decides many clients on one catalog (None: read from ``catalog`` here).
    """
    pd, grade = graded(pd, grade, in_default=in_default)
    facts = ClientFacts.from_features(
        features,
        segment=segment,
        declared_turnover=declared_turnover,
        in_default=in_default,
        held_products=held_products,
    )
    decision = decide(grade, facts, policy)
    declined = decision.outcome == "decline"
    if products is None:
        products = financing_products(catalog, policy)
    options = (
        []
        if declined
        else financing_options(
            facts,
            pd,
            grade,
            products,
            policy,
            propensities=propensities,
            request=request,
            suppressed=suppressed,
        )
    )
    if in_default:  # its PD is 1 whatever the model weighed: no feature explains it
        reasons = [default_reason().to_dict()]
    adverse = (
        adverse_action_reasons(
            in_default=in_default or grade == DEFAULT_GRADE,
            model_reasons=reasons,
            policy_reasons=decision.policy_reasons,
        )
        if declined
        else ()
    )
    return FinancingDecision(
        pd=pd,
        pd_horizon_months=pd_horizon_months,
        grade=grade,
        decision=decision,
        reasons=tuple(reasons),
        adverse_action_reasons=adverse,
        options=tuple(options),
    )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
