"""This module owns the reasons a credit decision states: the coded reasons of the credit
policy's rules, the reason of a client in default, and the adverse-action reasons of a decline.

Adverse-action reasons follow the practice of US Regulation B (12 CFR 1002.9) and of banks'
decline letters: the principal reasons, at most four, each specific. Here they are:

- a client in default: the default itself (``DEF01``), and no feature: its PD is 1 whatever
  the model says, so nothing the model weighed explains the decision;
- otherwise the features that pushed the PD up (a positive contribution to its log-odds), the
  strongest first, one to four of them, each with its catalogue code and a text with its unit;
- a decline with no such feature (rare: a hard-rule decline of a low-PD client whose every
  feature lowered the PD, or whose only raising features describe the extract) states the
  policy rules that declined it, with their codes and no contribution, so that a decline
  always carries at least one reason.

The policy's reasons also stay, on their own, in the decision (:class:`PolicyReason`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rmreco.features.reasons import DEFAULT_CODE, DEFAULT_TEXT, direction

#: The most adverse-action reasons a decline states.
MAX_ADVERSE_REASONS = 4
Source = Literal["model", "default", "policy"]


@dataclass(frozen=True)
class PolicyReason:
    """A reason of the credit policy's decision: a rule's code and the sentence it states."""

    code: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True)
class AdverseReason:
    """One adverse-action reason of a decline: a feature that raised the PD (``model``), the
    client's default (``default``), or a policy rule (``policy``)."""

    code: str
    text: str
    source: Source
    feature: str | None = None
    value: float | str | None = None
    unit: str | None = None
    direction: str | None = None
    contribution: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "feature": self.feature,
            "value": self.value,
            "unit": self.unit,
            "direction": self.direction,
            "contribution": self.contribution,
            "text": self.text,
            "source": self.source,
        }


def default_reason() -> AdverseReason:
    """The reason of a client in default, in place of any feature."""
    return AdverseReason(
        code=DEFAULT_CODE,
        text=DEFAULT_TEXT,
        source="default",
        feature="in_default",
        value=1.0,
        unit="yes/no",
        direction=direction(1.0, "pd"),
    )


def adverse_action_reasons(
    *,
    in_default: bool,
    model_reasons: Sequence[Mapping[str, Any]],
    policy_reasons: Sequence[PolicyReason],
    limit: int = MAX_ADVERSE_REASONS,
) -> tuple[AdverseReason, ...]:
    """The adverse-action reasons of a decline (see the module docstring for the rule).

    Args:
        in_default: the client is in default.
        model_reasons: the credit model's reasons of this client, as
            :meth:`rmreco.modeling.credit_model.Reason.to_dict` gives them (``code``,
            ``feature``, ``value``, ``unit``, ``direction``, ``contribution``, ``text``).
        policy_reasons: the decision's policy reasons.
        limit: the most reasons stated (1 to 4).

    Returns:
        One to ``limit`` reasons, features by falling contribution; never empty when the
        decision has a policy reason.

    Raises:
        ValueError: ``limit`` is not between 1 and 4.
    """
    if not 1 <= limit <= MAX_ADVERSE_REASONS:
        raise ValueError(f"a decline states 1 to {MAX_ADVERSE_REASONS} reasons, not {limit}")
    if in_default:
        return (default_reason(),)
    raising = sorted(
        (r for r in model_reasons if float(r.get("contribution") or 0.0) > 0 and r.get("code")),
        key=lambda r: -float(r["contribution"]),
    )
    if raising:
        return tuple(
            AdverseReason(
                code=str(r["code"]),
                text=str(r["text"]),
                source="model",
                feature=r.get("feature"),
                value=r.get("value"),
                unit=r.get("unit"),
                direction=r.get("direction") or direction(1.0, "pd"),
                contribution=float(r["contribution"]),
            )
            for r in raising[:limit]
        )
    return tuple(
        AdverseReason(code=p.code, text=p.text, source="policy") for p in policy_reasons[:limit]
    )
