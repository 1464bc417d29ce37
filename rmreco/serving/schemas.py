"""This module owns the request and response models of the API. Request bodies are strict:
unknown fields are refused, and so is a value of another JSON type than its field's (``"1"`` for
a number, ``1`` for a text, ``true`` for a number), instead of being converted. Query and path
parameters arrive as text and are converted as usual, except dates, which must be written as
ISO dates (``YYYY-MM-DD``), not as numbers of seconds."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from rmreco.serving import examples as ex


class Strict(BaseModel):
    """A request body: unknown fields and values of the wrong JSON type are refused (422)."""

    # strict: a client that sends "1" for a number or 1 for a text has a bug to hear about; a
    # silent conversion would record what it did not mean
    model_config = ConfigDict(extra="forbid", strict=True)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> Any:
    """``value`` when it is a date or text shaped ``YYYY-MM-DD``; pydantic then checks the day.

    Raises:
        ValueError: for anything else (pydantic would read ``0`` or ``20240101`` as seconds
            since 1970).
    """
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        return value
    raise ValueError("must be a date written YYYY-MM-DD")


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    """A model's configuration carrying ``examples`` for its JSON schema (from
    :mod:`rmreco.serving.examples`)."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


#: A date parameter of a query: only an ISO date (``YYYY-MM-DD``) is read.
IsoDate = Annotated[date, BeforeValidator(_iso_date)]

#: The most items a paged list may skip: far beyond any list, far below what a database's
#: integer holds (an offset of 1e29 was a 500).
MAX_OFFSET = 1_000_000_000


class ErrorBody(BaseModel):
    model_config = _examples(ex.ERROR_BODY)

    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = Field(
        None, description="Facts of the refusal a program reads (e.g. the segments served)."
    )


class ErrorResponse(BaseModel):
    model_config = _examples(ex.ERROR_RESPONSE)

    error: ErrorBody


#: The largest amount a request or a feedback may state, in the data's currency: far beyond any
#: loan in any currency, far below what sums of them overflow (a KPI of 1e308 was null).
MAX_AMOUNT = 1e15


class FinancingRequest(Strict):
    model_config = _examples(ex.FINANCING_REQUEST)

    amount: float | None = Field(
        None,
        gt=0,
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        description="Amount the client asks for.",
        examples=[250000],
    )
    tenor_months: int | None = Field(None, ge=1, le=360, examples=[36])
    purpose: str | None = Field(
        None,
        max_length=64,
        description="What the financing is for: one of the credit policy's purposes (such as "
        "working_capital, equipment, property); only products that serve it are offered.",
        examples=["working_capital"],
    )


class Reason(BaseModel):
    """A reason of a score, from the reason catalogue (``docs/reasons.md``)."""

    model_config = _examples(ex.REASON, ex.REASON_2)

    code: str = Field(description="Stable code of the reason catalogue, e.g. DPD03.")
    feature: str | None = Field(description="The model feature (null for a policy rule).")
    value: float | str | None = Field(description="The feature's value, in ``unit``.")
    unit: str | None = Field(description="Unit of the value: days, months, %, a currency...")
    direction: str | None = Field(
        description="How the feature moved the score: 'raises the PD', 'raises the take-up'..."
    )
    contribution: float | None = Field(
        description="The feature's share of the score's log-odds (null when no model weighed "
        "it: the client's default, a policy rule)."
    )
    text: str = Field(description="The reason in an RM's words, with the value and its unit.")


class PolicyReason(BaseModel):
    """A reason of the credit policy's decision: the rule's code and its sentence."""

    model_config = _examples(ex.POLICY_REASON)

    code: str = Field(description="Code of the policy rule, e.g. POL_DPD3M.")
    text: str


class AdverseActionReason(Reason):
    """A reason stated to a declined client: at most four, each a feature that pushed the PD
    up (``model``); a client in default gets the default (``default``); a decline with no such
    feature states the policy rules that declined it (``policy``)."""

    model_config = _examples(ex.ADVERSE_ACTION_REASON)

    source: Literal["model", "default", "policy"]


class Pricing(BaseModel):
    model_config = _examples(ex.PRICING)

    rate: float
    funding_cost: float
    expected_loss: float
    capital_charge: float
    operating_margin: float
    capital: float


class Suppression(BaseModel):
    model_config = _examples(ex.SUPPRESSION)

    until: date = Field(description="The first day the product may be offered again.")
    reasons: list[str]


class FinancingOption(BaseModel):
    model_config = _examples(ex.FINANCING_OPTION, ex.FINANCING_OPTION_2)

    recommendation_id: str
    rank: int
    product_code: str
    name: str
    limit: float
    tenor_months: int
    indicative_rate: float
    pricing: Pricing
    exposure: float
    expected_annual_profit: float
    propensity: float | None = Field(
        description="The client's calibrated chance of taking the product, from the cross-sell "
        "model; null when no model scores it (the option's notes say why)."
    )
    score: float | None = Field(
        description="Expected annual profit x propensity: the ranking key (null when the "
        "propensity is unknown; such options come last, by profit)."
    )
    fits_request: bool = Field(
        description="Whether the option meets the request's amount and tenor (if not, its "
        "notes say by how much; such options come after those that do)."
    )
    suppressed: Suppression | None = Field(
        description="Set when the contact policy keeps the product from the client: the day "
        "it may be offered again and why. Suppressed options come last."
    )
    rank_reason: str = Field(description="Why the option ranks where it does, in words.")
    reasons: list[str]
    notes: list[str]


class FinancingAnswer(BaseModel):
    model_config = _examples(ex.FINANCING_ANSWER)

    client_id: str
    as_of: date
    pd: float = Field(
        description="The client's probability of a default event within pd_horizon_months "
        "after as_of, from the credit model of its segment (1 for a client in default)."
    )
    pd_horizon_months: int = Field(
        description="The months the PD covers: the credit model's label horizon (12 for a "
        "12-month PD)."
    )
    grade: str
    decision: Literal["approve", "refer", "decline"]
    decision_reasons: list[PolicyReason]
    adverse_action_reasons: list[AdverseActionReason]
    reasons: list[Reason]
    options: list[FinancingOption]
    decision_id: str
    model_versions: dict[str, str]
    policy_version: str
    currency: str = Field(description="ISO 4217 code of every amount in the answer.")


class FeedbackRequest(Strict):
    model_config = _examples(ex.FEEDBACK_REQUEST)

    outcome: Literal["offered", "accepted", "declined", "not_interested"]
    reason: str | None = Field(None, max_length=2000)
    amount: float | None = Field(
        None,
        ge=0,
        le=MAX_AMOUNT,
        allow_inf_nan=False,
        description="Amount booked, when accepted (default: the offer's limit, when it has one).",
    )


class FeedbackAnswer(BaseModel):
    model_config = _examples(ex.FEEDBACK_ANSWER)

    feedback_id: int
    recommendation_id: str
    outcome: str
    amount: float | None = Field(description="The amount recorded with the outcome.")
    is_repeat: bool = Field(
        False,
        description="True when this outcome was already recorded: nothing new was stored and "
        "feedback_id is the earlier report's (the answer is then 200, not 201).",
    )


class FeedbackItem(BaseModel):
    model_config = _examples(ex.FEEDBACK_ITEM, ex.FEEDBACK_ITEM_2)

    feedback_id: int
    recommendation_id: str
    kind: str = Field(description="financing or cross_sell: the answer that recommended it.")
    client_id: str
    product_code: str
    outcome: str
    reason: str | None
    amount: float | None
    created_at: datetime = Field(description="When the feedback was recorded (UTC).")
    user: str = Field(description="Name of the user who recorded it.")


class FeedbackPage(BaseModel):
    model_config = _examples(ex.FEEDBACK_PAGE)

    rm_id: str | None
    client_id: str | None = None
    total: int
    offset: int
    limit: int
    items: list[FeedbackItem] = Field(description="Newest first.")


class ProductKpi(BaseModel):
    model_config = _examples(ex.PRODUCT_KPI)

    product_code: str
    recommended: int = Field(description="Clients this product was recommended to.")
    offered: int
    accepted: int
    declined: int
    not_interested: int
    acceptance_rate: float | None = Field(description="accepted / offered; null: none offered.")
    new_business_volume: float = Field(description="Sum of the accepted amounts.")


class RetentionKpi(BaseModel):
    model_config = _examples(ex.RETENTION_KPI)

    start_month: date = Field(description="Month the client base is read in.")
    end_month: date = Field(description="Month retention is read in.")
    clients_at_start: int | None = Field(
        description="The RM's clients banking with us in start_month (an open holding or an "
        "account month); null when the data does not cover the period."
    )
    retained: int | None = Field(description="Of those, the ones still banking in end_month.")
    retention_rate: float | None
    note: str | None = Field(description="Why a figure is null, when one is.")


class ProductHoldingsKpi(BaseModel):
    model_config = _examples(ex.PRODUCT_HOLDINGS_KPI)

    product_code: str
    started: int
    with_amount: int = Field(description="Spells whose amount the data gives.")
    amount: float = Field(description="Sum of the amounts given.")


class NewHoldingsKpi(BaseModel):
    model_config = _examples(ex.NEW_HOLDINGS_KPI)

    months_from: date | None = Field(description="First month counted.")
    months_to: date | None = Field(description="Last month counted.")
    started: int | None = Field(description="Holdings started; null when no month is counted.")
    by_product: list[ProductHoldingsKpi]
    note: str | None


class KpiFigures(BaseModel):
    model_config = _examples(ex.KPI_FIGURES)

    recommendations: int = Field(
        description="(client, product) pairs recommended in the period, each once however "
        "often it was shown."
    )
    offered: int = Field(description="Pairs offered (reported offered, accepted or declined).")
    accepted: int
    declined: int
    not_interested: int
    pipeline_conversion_rate: float | None = Field(description="accepted / offered.")
    new_business_volume: float = Field(
        description="Accepted amounts, each accepted pair once (its first acceptance)."
    )
    accepted_without_amount: int = Field(description="Accepted pairs with no amount recorded.")
    new_holdings: NewHoldingsKpi = Field(
        description="Holdings of the RM's clients started in the period, from the loaded data."
    )
    retention: RetentionKpi
    by_product: list[ProductKpi]


class KpiAnswer(KpiFigures):
    model_config = _examples(ex.KPI_ANSWER)

    rm_id: str
    period_start: date
    period_end: date
    currency: str = Field(description="ISO 4217 code of every amount.")


class RmKpiRow(KpiFigures):
    model_config = _examples(ex.RM_KPI_ROW)

    rm_id: str
    name: str
    role: str
    team: str | None


class TeamKpiAnswer(BaseModel):
    model_config = _examples(ex.TEAM_KPI_ANSWER)

    team: str | None = Field(description="The team asked for; null: every RM.")
    period_start: date
    period_end: date
    total: KpiFigures = Field(description="The RMs below added up.")
    rms: list[RmKpiRow]
    currency: str = Field(description="ISO 4217 code of every amount.")


class ServedModelInfo(BaseModel):
    model_config = _examples(ex.SERVED_MODEL)

    name: str
    version: str
    source: str
    metrics: dict[str, float]


class ModelsAnswer(BaseModel):
    model_config = _examples(ex.MODELS_ANSWER)

    models: list[ServedModelInfo]
    registry: str
    errors: dict[str, str]


class ReadyAnswer(BaseModel):
    """Readiness, open to every caller (load balancers call it without a key). ``models`` and
    ``errors`` are given only to a caller with a valid admin or data_scientist key: versions
    and error texts (which may name hosts and paths) are not for everyone."""

    model_config = _examples(ex.READY_ANSWER)

    ready: bool = Field(
        description="A credit model is served, the database answers, no feature refresh is owed."
    )
    database: Literal["ok", "unreachable"]
    registry: Literal["ok", "unreachable"]
    refresh_owed: bool | None = Field(
        description="The latest load is not yet in the feature snapshots the service answers "
        "from (a refresh cut short); the service completes it in the background, as does "
        "`rmreco features refresh`. Null when the database cannot say."
    )
    models: dict[str, str] | None = Field(
        default=None,
        description="Version served, by model name; only for an admin or data_scientist key.",
    )
    errors: dict[str, Any] | None = Field(
        default=None,
        description="Why a model, the registry or the feature snapshots are not as they should "
        "be; only for an admin or data_scientist key.",
    )


class CrossSellItem(BaseModel):
    model_config = _examples(ex.CROSS_SELL_ITEM, ex.CROSS_SELL_ITEM_2)

    recommendation_id: str
    rank: int
    client_id: str
    segment: str
    product_code: str
    propensity: float
    expected_value: float | None = Field(
        description="Propensity x the product's annual margin; null when the catalog gives no "
        "margin for the product (such offers come after those with a value, by propensity)."
    )
    pd: float | None = Field(
        description="The client's probability of a default event within pd_horizon_months, "
        "from the credit model of its segment; null when no credit model grades the segment."
    )
    pd_horizon_months: int | None = Field(
        description="The months the PD covers: the credit model's label horizon (null: ungraded)."
    )
    grade: str | None = Field(description="The client's risk grade (null: ungraded).")
    decision: Literal["approve", "refer", "decline"] | None = Field(
        description="The credit policy's decision for a credit product (null for services "
        "and ungraded clients); a product the policy would decline is never listed."
    )
    reasons: list[Reason]


class CrossSellPage(BaseModel):
    model_config = _examples(ex.CROSS_SELL_PAGE)

    rm_id: str | None
    client_id: str | None = None
    total: int
    offset: int
    limit: int
    items: list[CrossSellItem]
    model_versions: dict[str, str]
    currency: str = Field(description="ISO 4217 code of the expected values.")
