"""This module owns the reading of the catalogue: a feature's entry (generated for a feature
the catalogue does not know), the value in its unit and the text an RM reads, and the words of
a score's direction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from rmreco.features.bank_columns import bank_feature_label
from rmreco.features.builder import FEATURE_DESCRIPTIONS, NEVER
from rmreco.features.reasons.catalogue import (
    AMOUNT,
    ENTRIES,
    GENERATED_PREFIX,
    HOLDS_PREFIX,
    MONTHS_HELD_PREFIX,
    NACE_SECTION_NAMES,
    SEGMENT_NAMES,
    ReasonEntry,
    Target,
)


@dataclass(frozen=True)
class Explanation:
    """What the catalogue says of one feature's value for one client."""

    code: str
    feature: str
    #: the value in ``unit`` (an amount, not its log; a percentage, not a share)
    value: float | str | None
    unit: str | None
    text: str
    is_reason: bool


@cache
def _by_feature() -> dict[str, ReasonEntry]:
    return {entry.feature: entry for entry in ENTRIES}


def _code_part(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "_"


def entry_for(
    feature: str,
    *,
    products: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> ReasonEntry:
    """The catalogue's entry of ``feature``; a generated one when the catalogue does not know it.

    Args:
        feature: the feature's name.
        products: product names by product code (the catalog's), for ``holds_<code>`` and
            ``months_held_<code>``; a code without a name is named by itself.
        descriptions: a model's own descriptions of features the catalogue does not know (their
            generated text reads "<description>: <value>").
    """
    known = _by_feature().get(feature)
    if known is not None:
        return known
    for prefix in (HOLDS_PREFIX, MONTHS_HELD_PREFIX):
        if feature.startswith(prefix) and len(feature) > len(prefix):
            code = feature[len(prefix) :]
            # templates are formatted, the other texts are said as they are
            name = (products or {}).get(code) or code
            if prefix == HOLDS_PREFIX:
                return ReasonEntry(
                    f"HLD_{_code_part(code)}",
                    feature,
                    f"holds {_literal(name)}",
                    "yes/no",
                    "flag",
                    zero=f"does not hold {name}",
                    missing=f"whether the client holds {name}: not known",
                )
            return ReasonEntry(
                f"MHD_{_code_part(code)}",
                feature,
                f"has held {_literal(name)} for {{value}} month{{s}}",
                "months",
                "count",
                zero=f"does not hold {name}",
                missing=f"months {name} has been held: not known",
            )
    label = (
        (descriptions or {}).get(feature)
        or FEATURE_DESCRIPTIONS.get(feature)
        or bank_feature_label(feature)
        or feature
    )
    return ReasonEntry(
        f"{GENERATED_PREFIX}{_code_part(feature)}",
        feature,
        f"{_literal(label)}: {{value}}",
        "",
        "decimal",
        missing=f"{label}: not known",
        note="generated: the feature is not in the catalogue",
    )


def _literal(text: str) -> str:
    """``text`` as literal characters of a template (a bank's names may hold braces)."""
    return text.replace("{", "{{").replace("}", "}}")


def is_reason(feature: str) -> bool:
    """Whether ``feature`` may be given as a reason (False: it describes the extract)."""
    return entry_for(feature).is_reason


def direction(contribution: float, target: Target) -> str:
    """How a feature moved the score: "raises the PD", "lowers the take-up"..."""
    verb = "raises" if contribution > 0 else "lowers"
    return f"{verb} the {'PD' if target == 'pd' else 'take-up'}"


def explain(
    feature: str,
    value: float | str | None,
    *,
    currency: str | None = None,
    products: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> Explanation:
    """The code, value in its unit and text of one feature's value, from the catalogue.

    Args:
        feature: the feature's name.
        value: its value as the model reads it (the log of an amount, a share, a level); None
            or NaN when unknown.
        currency: ISO 4217 code of the data's money, named after amounts; None leaves it out.
        products, descriptions: see :func:`entry_for`.
    """
    entry = entry_for(feature, products=products, descriptions=descriptions)
    unit: str | None = entry.unit or None
    if entry.kind == "money":
        unit = currency or AMOUNT
    if value is not None and not isinstance(value, str):
        value = float(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        label = (
            FEATURE_DESCRIPTIONS.get(feature)
            or bank_feature_label(feature)
            or feature.replace("_", " ")
        )
        return Explanation(
            entry.code, feature, None, unit, entry.missing or f"{label}: not known", entry.is_reason
        )
    shown, text = _render(entry, value, currency)
    return Explanation(entry.code, feature, shown, unit, text, entry.is_reason)


def _render(
    entry: ReasonEntry, value: float | str, currency: str | None
) -> tuple[float | str, str]:
    """The value in the entry's unit and the text that says it."""
    if entry.kind == "category" or isinstance(value, str):
        level = str(value)
        if entry.feature == "sector" and level in NACE_SECTION_NAMES:
            shown = f"{level} — {NACE_SECTION_NAMES[level]}"
        else:
            shown = SEGMENT_NAMES.get(level, level) if entry.feature == "segment" else level
        return level, entry.template.format(value=shown)
    number = float(value)
    if entry.never is not None and number >= NEVER:
        return number, entry.never
    # a change too small to show is said as none ("flat"), not as "rising by 0.0%"
    shows_zero = abs(number) < _SHOWN_AS_ZERO.get(entry.kind, 1e-12)
    if entry.zero is not None and shows_zero:
        return number, entry.zero
    kind = entry.kind
    if kind == "money":
        amount = math.expm1(number)
        shown = f"{amount:,.0f}" + (f" {currency}" if currency else "")
        return amount, entry.template.format(value=shown)
    if kind == "log_count":
        count = math.expm1(number)
        return count, entry.template.format(value=_count(count), s=_plural(count))
    if kind == "count":
        return number, entry.template.format(
            value=_count(number), s=_plural(number), years=f"{number / 12:.1f}"
        )
    if kind == "percent":
        return number * 100, entry.template.format(value=_percent(number))
    if kind == "signed_percent":
        return number * 100, entry.template.format(value=_change(number, "up", "down"))
    if kind == "trend_percent":
        return number * 100, entry.template.format(value=_change(number, "rising by", "falling by"))
    if kind == "trend_decimal":
        words = "rising by" if number > 0 else "falling by"
        return number, entry.template.format(value=f"{words} {abs(number):,.2f}")
    if kind == "flag":
        return number, entry.template.format(value=_count(number))
    return number, entry.template.format(value=_decimal(number))


#: Changes below these show as zero at the text's precision (0.0% a month, 0.00 a month).
_SHOWN_AS_ZERO = {"trend_percent": 0.0005, "trend_decimal": 0.005}


def _count(number: float) -> str:
    return f"{number:,.0f}" if abs(number - round(number)) < 0.05 else f"{number:,.1f}"


def _plural(number: float) -> str:
    return "" if abs(number - 1) < 0.05 else "s"


def _decimal(number: float) -> str:
    return f"{number:,.2f}"


def _percent(share: float) -> str:
    percent = share * 100
    if abs(percent) < 0.05:
        return "0%"
    return f"{percent:,.1f}%" if abs(percent) < 10 else f"{percent:,.0f}%"


def _change(share: float, up: str, down: str) -> str:
    if abs(share) < 0.0005:
        return "unchanged"
    return f"{up if share > 0 else down} {_percent(abs(share))}"
