"""Request and response models of the API. Requests refuse unknown fields."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = Field(
        None, description="Facts of the refusal a program reads (e.g. the segments served)."
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class FinancingRequest(Strict):
    amount: float | None = Field(
        None, gt=0, description="Amount the client asks for.", examples=[250000]
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
    feature: str
    value: float | str | None
    contribution: float
    text: str


class Pricing(BaseModel):
    rate: float
    funding_cost: float
    expected_loss: float
    capital_charge: float
    operating_margin: float
    capital: float


class Suppression(BaseModel):
    until: date = Field(description="The first day the product may be offered again.")
    reasons: list[str]


class FinancingOption(BaseModel):
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
    client_id: str
    as_of: date
    pd_12m: float
    grade: str
    decision: Literal["approve", "refer", "decline"]
    decision_reasons: list[str]
    adverse_action_reasons: list[str]
    reasons: list[Reason]
    options: list[FinancingOption]
    decision_id: str
    model_versions: dict[str, str]
    policy_version: str
    currency: str = Field(description="ISO 4217 code of every amount in the answer.")


class FeedbackRequest(Strict):
    outcome: Literal["offered", "accepted", "declined", "not_interested"]
    reason: str | None = Field(None, max_length=2000)
    amount: float | None = Field(None, ge=0, description="Amount booked, when accepted.")


class FeedbackAnswer(BaseModel):
    feedback_id: int
    recommendation_id: str
    outcome: str


class ProductKpi(BaseModel):
    product_code: str
    offered: int
    accepted: int
    acceptance_rate: float | None


class KpiAnswer(BaseModel):
    rm_id: str
    period_start: date
    period_end: date
    recommendations: int
    offered: int
    accepted: int
    declined: int
    pipeline_conversion_rate: float | None
    new_business_volume: float
    by_product: list[ProductKpi]
    currency: str = Field(description="ISO 4217 code of new_business_volume.")


class ServedModelInfo(BaseModel):
    name: str
    version: str
    source: str
    metrics: dict[str, float]


class ModelsAnswer(BaseModel):
    models: list[ServedModelInfo]
    registry: str
    errors: dict[str, str]


class ReadyAnswer(BaseModel):
    ready: bool
    database: str
    registry: str
    models: dict[str, str]
    errors: dict[str, Any]


class CrossSellItem(BaseModel):
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
    pd_12m: float | None = Field(
        description="The client's 12-month probability of default from the credit model of "
        "its segment; null when no credit model grades the segment."
    )
    grade: str | None = Field(description="The client's risk grade (null: ungraded).")
    decision: Literal["approve", "refer", "decline"] | None = Field(
        description="The credit policy's decision for a credit product (null for services "
        "and ungraded clients); a product the policy would decline is never listed."
    )
    reasons: list[Reason]


class CrossSellPage(BaseModel):
    rm_id: str | None
    client_id: str | None = None
    total: int
    offset: int
    limit: int
    items: list[CrossSellItem]
    model_versions: dict[str, str]
    currency: str = Field(description="ISO 4217 code of the expected values.")
