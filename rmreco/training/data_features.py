"""This module owns fitting a spec's feature list to the data a run is trained on.

A bank sends the tables it has: a statements-only book has no account history, an application
sample has neither account history nor holdings. The feature set follows the data:

- a feature of the spec with no value in the fit rows, or a single value, is left out of this
  run's model (its table or column was not given, or says nothing here), and the run names it;
- with ``bank_columns`` (the default), every column of the bank's own in ``clients`` and
  ``financials`` (``FeatureInputs.extra_columns``) is added as a feature without a monotone
  direction, unless the spec lists it already.

The model records the features it was fitted on (its ``FeatureConfig``), so batch scoring and
the service compute exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from rmreco.features.bank_columns import bank_features
from rmreco.training.splits import TrainingDataError


@dataclass(frozen=True)
class FeatureChoice:
    """The features a run fits on, and what it left out and added, in words."""

    used: tuple[str, ...]
    #: feature -> why it was left out
    left_out: dict[str, str]
    #: the bank's own columns added as features
    added: tuple[str, ...]

    def notes(self) -> list[str]:
        """One line per change to the spec's list, for the run's report and the CLI."""
        out = []
        if self.left_out:
            reasons: dict[str, list[str]] = {}
            for name, why in self.left_out.items():
                reasons.setdefault(why, []).append(name)
            for why, names in reasons.items():
                listed = ", ".join(names)
                out.append(f"{len(names)} features of the spec left out ({why}): {listed}")
        if self.added:
            out.append(
                f"{len(self.added)} of the bank's own columns added as features: "
                + ", ".join(self.added)
            )
        return out


def choose_features(
    listed: Sequence[str],
    fit: pd.DataFrame,
    extra_columns: Mapping[str, Mapping[str, str]] | None,
    *,
    bank_columns: bool,
) -> FeatureChoice:
    """The features of a run: the spec's ``listed`` features that carry information in the
    ``fit`` rows, then the bank's own columns when ``bank_columns``.

    Raises:
        TrainingDataError: no feature is left (the message names what the data lacks).
    """
    candidates = list(listed)
    added: list[str] = []
    if bank_columns:
        added = [n for n in bank_features(extra_columns or {}) if n not in candidates]
        candidates += added
    left_out: dict[str, str] = {}
    for name in candidates:
        if name not in fit.columns:
            left_out[name] = "not a column of the data"
            continue
        values = fit[name].dropna()
        if values.empty:
            left_out[name] = "no value in the fit rows"
        elif values.nunique() < 2:
            left_out[name] = "one value in the fit rows"
    used = tuple(n for n in candidates if n not in left_out)
    if not used:
        raise TrainingDataError(
            f"no feature of the spec has two or more values in the {len(fit):,} fit rows: the "
            "data carries none of the tables or columns the spec's features are made of. "
            "Give account_months, financials or the bank's own client columns (see "
            "docs/data-format.md, 'Mapping your bank's extract')."
        )
    return FeatureChoice(
        used=used,
        left_out={n: why for n, why in left_out.items() if n in listed},
        added=tuple(n for n in added if n not in left_out),
    )
