"""Feature inputs from a validated input folder (the data contract's tables).

This module owns handing the contract's tables to the feature builder. They come through the one
read path that ingest also takes (``rmreco.data.contract.read_and_validate``), so training and
batch scoring see the same months (any date within a month read as that month) and the same
client-months (several accounts' rows aggregated by the contract's rules) as the database.

A table left out of the folder is an empty frame with its contract columns (``financials``:
None, as the builder takes it). The bank's own columns of ``clients`` and ``financials`` stay in
those frames under their names (numeric as float64, categorical as object with None for
missing) and are listed with their kinds in ``FeatureInputs.extra_columns``; the manifest's
extract date gives ``FeatureInputs.outcome_end``.
"""

from __future__ import annotations

from pathlib import Path

from rmreco.data.contract import ValidatedTables, read_and_validate
from rmreco.features.builder import FeatureInputs


def feature_inputs(validated: ValidatedTables) -> FeatureInputs:
    """The frames the feature builder reads, from tables that passed the contract."""
    financials = validated.frame("financials")
    return FeatureInputs(
        account_months=validated.frame("account_months"),
        clients=validated.frame("clients"),
        holdings=validated.frame("holdings"),
        credit_events=validated.frame("credit_events"),
        financials=financials if len(financials) else None,
        products=validated.frame("products"),
        extra_columns=validated.extra_columns,
        outcome_end=validated.outcome_end,
    )


def read_feature_inputs(folder: Path) -> tuple[FeatureInputs, ValidatedTables]:
    """Read and validate ``folder``, then give its feature inputs.

    Raises:
        DataContractError: the folder breaks the data contract (file, row and column named).
    """
    validated = read_and_validate(folder)
    return feature_inputs(validated), validated
