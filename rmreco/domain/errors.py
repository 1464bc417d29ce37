"""One tree of domain errors. The CLI and the service each translate it in one place."""

from __future__ import annotations

from dataclasses import dataclass


class RmrecoError(Exception):
    """Base of every error rmreco raises on purpose."""


class ConfigurationError(RmrecoError):
    """A setting or a specification file is missing or invalid."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input table, located as precisely as is known.

    ``row`` is the 1-based data row of the file (the header is not counted), or None when the
    problem concerns the table as a whole (a missing column, a missing file).
    """

    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class DataContractError(RmrecoError):
    """Input tables break the data contract. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], *, max_shown: int = 20) -> None:
        if not problems:
            raise ValueError("DataContractError needs at least one problem")
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:max_shown])
        more = len(problems) - max_shown
        tail = f"\n  ... and {more} more" if more > 0 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"input refused, {len(problems)} {noun}:\n{shown}{tail}")


class PolicyCurrencyError(ConfigurationError):
    """The data's money is in a currency the credit policy states no amounts for: a limit or a
    turnover bound in one currency must not be applied to figures in another."""

    def __init__(
        self,
        *,
        currency: str,
        policy_currencies: tuple[str, ...],
        policy_file: str,
        key: str,
        amounts: tuple[str, ...],
    ) -> None:
        self.currency = currency
        self.policy_currencies = policy_currencies
        self.policy_file = policy_file
        #: the key of the policy file to add, holding ``amounts`` in ``currency``
        self.key = key
        self.amounts = amounts
        super().__init__(
            f"the data's money is in {currency}, but the credit policy {policy_file} states its "
            f"amounts in {', '.join(policy_currencies)} only; add {key} to it with "
            f"{', '.join(amounts)} in {currency}"
        )


class DatabaseError(RmrecoError):
    """The database could not be reached or refused a write."""
