"""Cross-sell on an observation-window extract: the adoption outcome coverage (holdings may start
after the last account month, planned maturities do not count), labels completed by such
holdings without any of them reaching a feature, the stratified hold-out by client
(``split.kind: client``), and the out-of-time refusal that proposes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import months, random_bank

from rmreco.domain.errors import ConfigurationError
from rmreco.features import FeatureInputs
from rmreco.features.builder import month_index
from rmreco.features.cross_sell import LABEL, PRODUCT, WEIGHT, build_cross_sell_panel
from rmreco.features.labels import adoption_outcome_end
from rmreco.modeling.spec import CrossSellSpec, load_cross_sell_spec
from rmreco.training.cross_sell_split import (
    build_split,
    split_by_client,
    split_note,
    validation_window,
)
from rmreco.training.splits import TrainingDataError

ROOT = Path(__file__).resolve().parents[2]
STATEMENTS = 7
OUTCOME_MONTHS = 3
CODES = ("overdraft", "term_loan", "payroll")


def _index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _window_bank(n_clients: int = 90, seed: int = 3) -> FeatureInputs:
    """Seven account months of ``n_clients`` clients, then the adoptions of the three months
    after the last: each client starts one product at a random month of the ten (or none)."""
    bank = random_bank(n_clients=n_clients, n_months=30, seed=seed)
    last = pd.Timestamp(months(STATEMENTS)[-1])
    observed = bank.account_months[pd.to_datetime(bank.account_months["month"]) <= last]
    bank = replace(bank, account_months=observed.reset_index(drop=True))
    rng = np.random.default_rng(seed)
    span = months(STATEMENTS + OUTCOME_MONTHS)
    rows = []
    for i, cid in enumerate(bank.clients["client_id"]):
        if i % 3 == 2:  # a third of the clients adopt nothing
            continue
        rows.append(
            {
                "client_id": cid,
                "product_code": CODES[int(rng.integers(0, len(CODES)))],
                "start_month": span[int(rng.integers(1, len(span)))],
                "end_month": None,
            }
        )
    return replace(bank, holdings=pd.DataFrame(rows), credit_events=None, financials=None)


def _cut(bank: FeatureInputs) -> FeatureInputs:
    """``bank`` without the holdings that start after its last account month."""
    assert bank.holdings is not None
    last = pd.Timestamp(months(STATEMENTS)[-1])
    starts = pd.to_datetime(bank.holdings["start_month"])
    return replace(bank, holdings=bank.holdings[starts <= last].reset_index(drop=True))


def _spec(**split: object) -> CrossSellSpec:
    """The shipped cross-sell spec with ``split`` settings changed."""
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["split"].update(split)
    return CrossSellSpec.model_validate(raw)


def test_the_outcome_coverage_reaches_the_last_holding_start_or_the_extract_month() -> None:
    bank = _window_bank()
    last = _index(months(STATEMENTS)[-1])
    assert adoption_outcome_end(_cut(bank)) == last  # no start after the history
    assert adoption_outcome_end(bank) == last + OUTCOME_MONTHS
    assert bank.holdings is not None
    # a planned maturity years ahead observes nothing: it does not widen the coverage
    planned = bank.holdings.copy()
    planned.loc[0, "end_month"] = date(2030, 12, 1)
    assert adoption_outcome_end(replace(bank, holdings=planned)) == last + OUTCOME_MONTHS
    # the extract month the bank states outcomes are known up to does
    stated = replace(_cut(bank), outcome_end=date(2022, 12, 1))
    assert adoption_outcome_end(stated) == _index(date(2022, 12, 1))


def test_holdings_after_the_history_complete_labels_and_never_reach_features() -> None:
    bank = _window_bank()
    window = build_cross_sell_panel(bank)
    history = build_cross_sell_panel(_cut(bank))
    last = pd.Timestamp(months(STATEMENTS)[-1])
    at_last = window["month"] == last
    assert window.loc[at_last, "label_complete"].all()
    assert not history.loc[history["month"] == last, "label_complete"].any()
    assert window["label_complete"].all()  # every snapshot's three months are covered
    # the adoptions of the outcome window label the last snapshots ...
    assert bank.holdings is not None
    later = bank.holdings[pd.to_datetime(bank.holdings["start_month"]) > last]
    assert len(later) > 5
    keys = set(zip(later["client_id"], later["product_code"], strict=True))
    labelled = window[at_last & (window[LABEL] == 1)]
    assert set(zip(labelled["client_id"], labelled[PRODUCT].astype(str), strict=True)) <= keys
    assert len(labelled) > 0
    # ... and change nothing else: the same rows with the same features at every month
    same = [c for c in window.columns if c not in (LABEL, "label_complete")]
    pd.testing.assert_frame_equal(window[same], history[same])
    before = window["month"] <= pd.Timestamp(months(STATEMENTS)[-1 - OUTCOME_MONTHS])
    pd.testing.assert_series_equal(window.loc[before, LABEL], history.loc[before, LABEL])


def test_the_client_split_keeps_each_client_in_one_set_with_adoptions_in_each() -> None:
    bank = _window_bank(n_clients=120)
    spec = _spec(kind="client", holdout_share=0.4, negative_sample=1.0, min_history_months=1)
    split = split_by_client(bank, spec)
    sets = {
        name: set(frame["client_id"])
        for name, frame in (("fit", split.fit), ("cal", split.calibration), ("test", split.test))
    }
    assert not sets["fit"] & sets["cal"]
    assert not sets["fit"] & sets["test"]
    assert not sets["cal"] & sets["test"]
    assert all(frame[LABEL].sum() > 0 for frame in (split.fit, split.calibration, split.test))
    assert all((frame[LABEL] == 0).any() for frame in (split.fit, split.calibration, split.test))
    held_out = len(sets["cal"] | sets["test"]) / len(set().union(*sets.values()))
    assert 0.3 < held_out < 0.5
    # the three sets span the same months: every snapshot with a complete outcome
    periods = split.describe()
    assert periods["fit_period"] == periods["calibration_period"] == periods["test_period"]
    assert periods["test_period"] == f"{months(1)[0]:%Y-%m}..{months(STATEMENTS)[-1]:%Y-%m}"
    # the same seed gives the same sets, another seed others
    again = split_by_client(bank, spec)
    assert set(again.test["client_id"]) == sets["test"]
    other = split_by_client(bank, spec.model_copy(update={"seed": spec.seed + 1}))
    assert set(other.test["client_id"]) != sets["test"]


def test_the_client_split_samples_the_fit_sets_non_adopters_only() -> None:
    bank = _window_bank(n_clients=120)
    full = split_by_client(bank, _spec(kind="client", negative_sample=1.0))
    sampled = split_by_client(bank, _spec(kind="client", negative_sample=0.5))
    assert set(sampled.fit["client_id"]) <= set(full.fit["client_id"])
    assert sampled.fit[LABEL].sum() == full.fit[LABEL].sum()  # every adopting row kept
    negatives = sampled.fit[sampled.fit[LABEL] == 0]
    assert 0.3 < len(negatives) / (full.fit[LABEL] == 0).sum() < 0.7
    assert (negatives[WEIGHT] == 2.0).all()
    # calibration and test keep every row
    pd.testing.assert_frame_equal(sampled.test, full.test)
    pd.testing.assert_frame_equal(sampled.calibration, full.calibration)


def test_the_client_split_refuses_a_set_without_adoptions() -> None:
    bank = _window_bank(n_clients=120)
    assert bank.holdings is not None
    one = replace(bank, holdings=bank.holdings.head(1))  # a single adopter: one set has it
    with pytest.raises(TrainingDataError) as refused:
        split_by_client(one, _spec(kind="client"))
    assert "0 adoptions" in str(refused.value)
    assert "split.holdout_share" in str(refused.value)


def test_the_client_split_refuses_data_without_a_complete_outcome() -> None:
    bank = _cut(_window_bank())  # seven months, no adoption after them
    spec = _spec(kind="client")
    long = spec.model_copy(update={"label": spec.label.model_copy(update={"horizon_months": 9})})
    with pytest.raises(TrainingDataError) as refused:
        split_by_client(bank, long)
    message = str(refused.value)
    assert "no snapshot month with a complete 9-month adoption outcome" in message
    assert "label.horizon_months" in message


def test_the_out_of_time_refusal_proposes_the_client_split_when_the_data_saw_adoptions() -> None:
    bank = _window_bank()
    with pytest.raises(TrainingDataError) as refused:
        build_split(bank, _spec())
    message = str(refused.value)
    assert f"the data has {STATEMENTS} snapshot months with a complete 3-month outcome" in message
    assert "split.kind: client" in message
    # without a single adoption no hold-out could be made: it is not proposed
    with pytest.raises(TrainingDataError) as without:
        build_split(replace(bank, holdings=None), _spec())
    assert "split.kind" not in str(without.value)
    # and the client split trains on the same data
    split = build_split(bank, _spec(kind="client", min_history_months=1))
    assert split.test[LABEL].sum() > 0


def test_the_spec_takes_the_client_split_and_refuses_other_kinds(tmp_path: Path) -> None:
    spec = _spec(kind="client", holdout_share=0.3)
    assert (spec.split.kind, spec.split.holdout_share) == ("client", 0.3)
    assert _spec().split.kind == "out_of_time"
    for change, field in (({"kind": "random"}, "split.kind"), ({"holdout_share": 1}, "split.")):
        raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
        raw["split"].update(change)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(ConfigurationError, match=field):
            load_cross_sell_spec(path)
    for shipped in ("cross_sell.yaml", "personal_cross_sell.yaml"):
        assert load_cross_sell_spec(ROOT / "models" / shipped).split.kind == "out_of_time"


def test_the_window_and_the_note_say_which_split_and_that_a_hold_out_is_weaker() -> None:
    bank = _window_bank(n_clients=120)
    spec = _spec(kind="client", min_history_months=1)
    split = split_by_client(bank, spec)
    described = validation_window(split, spec).describe()
    assert described.startswith("stratified hold-out")
    assert "a weaker test than an out-of-time window" in described
    assert f"{split.test['client_id'].nunique():,} clients never fitted on" in described
    assert split_note(spec).startswith("split: client")
    assert "weaker test than out-of-time" in split_note(spec)
    assert split_note(_spec()).startswith("split: out_of_time")
    assert month_index(split.test["month"]).max() == _index(months(STATEMENTS)[-1])


def test_an_out_of_time_window_without_adoptions_proposes_the_client_split() -> None:
    bank = random_bank(n_clients=90, n_months=30, seed=4)
    rng = np.random.default_rng(4)
    span = months(30)
    early = pd.DataFrame(  # adoptions in the first year only: none in the later windows
        {
            "client_id": bank.clients["client_id"].iloc[::2].to_numpy(),
            "product_code": [CODES[int(rng.integers(0, 3))] for _ in range(45)],
            "start_month": [span[int(rng.integers(4, 12))] for _ in range(45)],
            "end_month": None,
        }
    )
    with pytest.raises(TrainingDataError) as refused:
        build_split(replace(bank, holdings=early), _spec())
    message = str(refused.value)
    assert "period has" in message
    assert " 0 adoptions" in message
    assert "split.kind: client" in message
