"""This module owns the reasons a credit decision states: the coded reasons of the credit
policy's rules, the reason of a client in default, and the adverse-action reasons of a decline.

Adverse-action reasons follow the practice of US Regulation B (12 CFR 1002.9) and of banks'
decline letters: the principal reasons, at most four in all, each specific. Here they are:

- a client in default: the default itself (``DEF01``), and no feature: its PD is 1 whatever
  the model says, so nothing the model weighed explains the decision;
- the knock-out rules that declined the client whatever its grade (recent arrears, a business
  too young: :attr:`PolicyReason.knock_out`), first, with their codes: they are why it was
  declined;
- when the grade declined it (or no knock-out rule did), the features that pushed the PD up (a
  positive contribution to its log-odds), the strongest first, each with its catalogue code and
  a text with its unit, after the knock-out rules and together with them at most four; a
  feature whose value a stated rule already gives (``PolicyReason.feature``) is not repeated.
  When only a knock-out rule declined a client whose grade the policy accepts, the features
  that raised its PD are not reasons of the decline and are not stated;
- a decline with no such rule or feature (rare: a grade decline of a client whose every
  feature lowered the PD, or whose only raising features describe the extract) states the
  policy rules that declined it, with their codes and no contribution, so that a decline
  always carries at least one reason.

The policy's reasons also stay, on their own, in the decision (:class:`PolicyReason`), refer
notes included; the adverse-action reasons are the one statement of why, never more than four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rmreco.features.reasons import DEFAULT_CODE, DEFAULT_TEXT, POL_GRADE_DECLINE, direction

#: The most adverse-action reasons a decline states.
MAX_ADVERSE_REASONS = 4
Source = Literal["model", "default", "policy"]


@dataclass(frozen=True)
class PolicyReason:
    """A reason of the credit policy's decision: a rule's code and the sentence it states;
    whether the rule declines whatever the grade (a knock-out rule), and the feature whose value
    the rule tested (None: not one feature)."""

    code: str
    text: str
    knock_out: bool = False
    feature: str | None = None

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
        One to ``limit`` reasons: the knock-out rules, then features by falling
        contribution; never empty when the decision has a policy reason.

    Raises:
        ValueError: ``limit`` is not between 1 and 4.
    """
    if not 1 <= limit <= MAX_ADVERSE_REASONS:
        raise ValueError(f"a decline states 1 to {MAX_ADVERSE_REASONS} reasons, not {limit}")
    if in_default:
        return (default_reason(),)
    knock_outs = [p for p in policy_reasons if p.knock_out]
    stated = [AdverseReason(code=p.code, text=p.text, source="policy") for p in knock_outs]
    if not knock_outs or any(p.code == POL_GRADE_DECLINE for p in policy_reasons):
        # the grade declined the client: the features that raised its PD say why
        told = {p.feature for p in knock_outs if p.feature}
        raising = sorted(
            (
                r
                for r in model_reasons
                if float(r.get("contribution") or 0.0) > 0
                and r.get("code")
                and r.get("feature") not in told
            ),
            key=lambda r: -float(r["contribution"]),
        )
        stated += [
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
            for r in raising
        ]
    if not stated:
        stated = [AdverseReason(code=p.code, text=p.text, source="policy") for p in policy_reasons]
    return tuple(stated[:limit])
