"""This module owns what a validation report's figures are measured on (:class:`TestWindow`:
an out-of-time window, or the weaker stratified hold-out) and how population shifts read in
words (:func:`psi_summary`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pandas as pd

WindowKind = Literal["out_of_time", "stratified_holdout"]


@dataclass(frozen=True)
class TestWindow:
    """What the report's figures are measured on."""

    __test__: ClassVar[bool] = False  # a domain name, not a pytest test class

    kind: WindowKind
    period: str
    rows: int
    #: who the rows are (e.g. clients never fitted on)
    population: str = ""

    def describe(self) -> str:
        """One sentence for every section of a report and a model card."""
        if self.kind == "out_of_time":
            text = (
                f"out-of-time test window {self.period} ({self.rows:,} rows): snapshots later "
                "than any used in fitting"
            )
        else:
            text = (
                f"stratified hold-out {self.period} ({self.rows:,} rows): clients held out of "
                "fitting over the same period, a weaker test than an out-of-time window"
            )
        return f"{text}; {self.population}" if self.population else text


def split_window(
    test: pd.DataFrame,
    period: str,
    *,
    by_client: bool,
    holdout_share: float,
    seed: int,
    rows: str,
    strata: str,
    out_of_time: str,
) -> TestWindow:
    """The window of a job's test rows ``test`` spanning ``period``: with ``by_client``
    (``split.kind: client``) a stratified hold-out of half of ``holdout_share`` of the clients,
    drawn with ``seed`` within ``strata`` (e.g. "defaulters and non-defaulters"), whose ``rows``
    (e.g. "every eligible (client, product) row of") are tested; otherwise out of time, the
    population said by ``out_of_time``."""
    if not by_client:
        return TestWindow("out_of_time", period, len(test), out_of_time)
    clients = test["client_id"].nunique()
    lead = f"{rows} " if rows else ""
    return TestWindow(
        "stratified_holdout",
        period,
        len(test),
        f"{lead}{clients:,} clients never fitted on ({holdout_share / 2:.0%} of clients, drawn "
        f"with seed {seed} within {strata})",
    )


def psi_summary(table: pd.DataFrame, top: int = 10) -> str:
    """The variables outside the stable band, in words (the ``top`` worst first)."""
    moved = table[table["band"].isin(["watch", "shift"])].sort_values("psi", ascending=False)
    if moved.empty:
        return "every variable is stable (PSI < 0.1)"
    text = "; ".join(
        f"{name} {row.psi:.3f} ({row.band})" for name, row in moved.head(top).iterrows()
    )
    more = len(moved) - top
    return f"{text}; and {more} more" if more > 0 else text
