"""The stratified hold-out by client (``split.kind: client``): no client in two sets, both
outcomes in each, the same sets for the same seed; the out-of-time refusal that proposes it;
and labels whose outcome lies after the last account month (an observation-window extract)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import months, random_bank

from rmreco.features.labels import LABEL, build_credit_panel, outcome_end
from rmreco.modeling.spec import CreditRiskSpec, SplitSpec, load_credit_risk_spec
from rmreco.training.credit_risk import split_by_client, split_credit_panel, validation_window
from rmreco.training.splits import (
    CALIBRATION,
    FIT,
    TEST,
    TrainingDataError,
    client_holdout,
    complete_outcome_months,
    require_outcome_months,
)

ROOT = Path(__file__).resolve().parents[2]


def _panel(n_clients: int = 200, n_months: int = 6, defaulters: int = 30) -> pd.DataFrame:
    """Snapshot rows of ``n_clients`` over ``n_months``; the first ``defaulters`` clients have a
    positive label in their last month."""
    rows = []
    for i in range(n_clients):
        for k, month in enumerate(months(n_months)):
            rows.append(
                {
                    "client_id": f"C{i:04d}",
                    "month": pd.Timestamp(month),
                    "history_months": k + 3,
                    LABEL: int(i < defaulters and k == n_months - 1),
                    "label_complete": True,
                }
            )
    return pd.DataFrame(rows)


def _spec(**split: object) -> CreditRiskSpec:
    """The shipped SME spec with ``split`` settings changed."""
    shipped = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml")
    raw = shipped.model_dump(mode="json")
    raw["split"].update(split)
    return CreditRiskSpec.model_validate(raw)


def test_the_client_split_keeps_each_client_in_one_set_with_both_outcomes() -> None:
    panel = _panel()
    split = split_by_client(panel, _spec(kind="client", holdout_share=0.4))
    sets = {name: set(frame["client_id"]) for name, frame in split.__dict__.items()}
    assert not sets["fit"] & sets["calibration"]
    assert not sets["fit"] & sets["test"]
    assert not sets["calibration"] & sets["test"]
    assert set().union(*sets.values()) == set(panel["client_id"])
    for frame in (split.fit, split.calibration, split.test):
        assert frame[LABEL].nunique() == 2
    # stratified: each held-out set has a fifth of the defaulters and a fifth of the others
    for frame in (split.calibration, split.test):
        assert frame.loc[frame[LABEL] == 1, "client_id"].nunique() == 6
        assert frame["client_id"].nunique() == 40
    # a hold-out by client over the same period, not by time
    assert split.describe()["test_period"] == split.describe()["calibration_period"]
    assert split.test["month"].nunique() == 6


def test_the_client_split_is_seeded_and_stable() -> None:
    panel = _panel()
    first = client_holdout(panel["client_id"], panel[LABEL], holdout_share=0.4, seed=7)
    shuffled = panel.sample(frac=1.0, random_state=3)
    again = client_holdout(shuffled["client_id"], shuffled[LABEL], holdout_share=0.4, seed=7)
    pd.testing.assert_series_equal(first, again)  # the rows' order does not matter
    other = client_holdout(panel["client_id"], panel[LABEL], holdout_share=0.4, seed=8)
    assert not first.equals(other)
    assert set(first.unique()) == {FIT, CALIBRATION, TEST}


def test_a_small_stratum_still_puts_a_defaulter_in_each_set() -> None:
    panel = _panel(n_clients=50, defaulters=3)
    sets = client_holdout(panel["client_id"], panel[LABEL], holdout_share=0.1, seed=1)
    defaulters = sets[[f"C{i:04d}" for i in range(3)]]
    assert sorted(defaulters) == sorted([FIT, CALIBRATION, TEST])


def test_the_client_split_refuses_a_set_without_defaulters() -> None:
    panel = _panel(defaulters=2)  # two defaulters cannot fill three sets
    with pytest.raises(TrainingDataError, match=r"0 defaults; both outcomes are needed"):
        split_by_client(panel, _spec(kind="client"))


def test_the_spec_chooses_the_split_and_the_window_says_which() -> None:
    panel = _panel()
    assert SplitSpec().kind == "out_of_time"
    client = _spec(kind="client")
    split = split_credit_panel(panel, client)
    window = validation_window(split, client)
    assert window.kind == "stratified_holdout"
    assert "weaker test" in window.describe()
    # six months cannot make the default out-of-time split; the refusal proposes the client one
    with pytest.raises(TrainingDataError) as refused:
        split_credit_panel(panel, _spec(test_months=3, calibration_months=3))
    assert "split.kind: client" in str(refused.value)


def test_the_out_of_time_refusal_proposes_the_client_split_only_with_both_outcomes() -> None:
    with pytest.raises(TrainingDataError) as both:
        require_outcome_months(
            7, horizon_months=12, test_months=6, calibration_months=3, has_both_outcomes=True
        )
    assert "set split.kind: client" in str(both.value)
    with pytest.raises(TrainingDataError) as one:
        require_outcome_months(7, horizon_months=12, test_months=6, calibration_months=3)
    assert "split.kind" not in str(one.value)


def test_outcomes_after_the_last_account_month_complete_the_labels() -> None:
    full = random_bank(n_clients=12, n_months=30, seed=2)
    after = months(19)  # seven statements, then twelve months of outcomes
    observed = full.account_months[
        pd.to_datetime(full.account_months["month"]) <= pd.Timestamp(after[6])
    ]
    # the extract holds the clients of the window (a client seen only later would otherwise be
    # observed by its statements)
    statements = full.financials
    if statements is not None:
        statements = statements[statements["client_id"].isin(observed["client_id"])]
    bank = replace(full, account_months=observed, financials=statements, credit_events=None)
    assert not build_credit_panel(bank, horizon_months=12)["label_complete"].any()
    events = pd.DataFrame(
        {"client_id": ["C001", "C002"], "month": [after[10], after[18]], "event_type": "default"}
    )
    window = replace(bank, credit_events=events)
    assert outcome_end(window) == outcome_end(bank) + 12
    panel = build_credit_panel(window, horizon_months=12)
    assert panel["label_complete"].all()  # every snapshot's twelve months are covered
    label = panel.set_index(["client_id", "month"])[LABEL]
    assert label[("C001", pd.Timestamp(after[0]))] == 1  # default 10 months later
    assert label[("C002", pd.Timestamp(after[6]))] == 1  # 12 months later
    assert label[("C002", pd.Timestamp(after[5]))] == 0  # 13 months later: past the horizon
    assert label.sum() == label.loc["C001"].size + 1
    # point in time: the outcomes after the window change no feature of any snapshot
    before = build_credit_panel(bank, horizon_months=12)
    features = [c for c in panel.columns if c not in (LABEL, "label_complete")]
    pd.testing.assert_frame_equal(
        before[features].reset_index(drop=True), panel[features].reset_index(drop=True)
    )


def test_outcome_months_count_up_to_the_outcome_coverage() -> None:
    statements = np.arange(24270, 24277)  # seven months
    assert complete_outcome_months(statements, 12) == []
    assert complete_outcome_months(statements, 12, last=24276 + 12) == list(statements)
    assert complete_outcome_months(statements, 12, last=24276 + 10) == list(statements[:5])
