"""This module owns the reason catalogue: every code a reason of rmreco can carry, and the words
an RM reads for it.

A model's reason is a feature that moved its score for one client. The catalogue gives each
feature the builders produce (credit and cross-sell) an entry: a stable code (``DPD03``), a text
template that says the value with its unit ("payments 45 days past due in the last 3 months"),
the unit, and whether the feature may be a reason at all. A feature that describes the extract
rather than the client (how many months of history the data holds, how old the latest annual
accounts are by the publication-lag rule) is never a reason: telling a client that they were
declined because our extract starts in 2022 would be no reason. The same module spells the
codes of the decision's other reasons: the client's default (``DEF01``) and the credit
policy's hard rules (``POL_*``), so that every code rmreco gives is listed in one place and in
``docs/reasons.md`` (generated from here: ``python -m rmreco.features.reasons.doc
docs/reasons.md``).

The package holds the entries (:mod:`~rmreco.features.reasons.catalogue`), their reading
(:mod:`~rmreco.features.reasons.explain`) and the documentation's tables
(:mod:`~rmreco.features.reasons.doc`).

A feature the catalogue does not know (a bank's extra client column used as a feature, as the
data contract allows) gets a generated entry: code ``X_`` and its name upper-cased, text
"<name>: <value>" (or the model's own description of it); never an error.
"""

from rmreco.features.reasons.catalogue import (
    DEFAULT_CODE,
    DEFAULT_TEXT,
    ENTRIES,
    GENERATED_PREFIX,
    NACE_SECTION_NAMES,
    POL_DEFAULT,
    POL_DPD3M,
    POL_DPD12M,
    POL_GRADE_DECLINE,
    POL_GRADE_REFER,
    POL_RESTRUCTURED,
    POL_YOUNG,
    POLICY_REASONS,
    ReasonEntry,
    Target,
)
from rmreco.features.reasons.explain import Explanation, direction, entry_for, explain, is_reason

__all__ = [
    "DEFAULT_CODE",
    "DEFAULT_TEXT",
    "ENTRIES",
    "GENERATED_PREFIX",
    "NACE_SECTION_NAMES",
    "POLICY_REASONS",
    "POL_DEFAULT",
    "POL_DPD3M",
    "POL_DPD12M",
    "POL_GRADE_DECLINE",
    "POL_GRADE_REFER",
    "POL_RESTRUCTURED",
    "POL_YOUNG",
    "Explanation",
    "ReasonEntry",
    "Target",
    "direction",
    "entry_for",
    "explain",
    "is_reason",
]
