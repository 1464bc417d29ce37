"""``rmreco data check``'s profile and verdicts: what the data has, and which spec can train on it
with the reason and the setting that would fit when it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rmreco.config import shipped_models_dir
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
from rmreco.synthetic import generate_bank
from rmreco.training.feasibility import DataCheck, check_data
from rmreco.training.splits import (
    TrainingDataError,
    complete_outcome_months,
    require_both_outcomes,
    require_outcome_months,
)

SPECS = shipped_models_dir()
SME = load_credit_risk_spec(SPECS / "sme_credit_risk.yaml").name
PERSONAL = load_cross_sell_spec(SPECS / "personal_cross_sell.yaml").name


def _verdict(check: DataCheck, name: str) -> tuple[bool, str]:
    found = next(v for v in check.verdicts if v.name == name)
    return found.can_train, " ".join(found.reasons)


def test_complete_outcome_months_are_those_the_data_covers_a_horizon_after() -> None:
    months = np.array([24290, 24291, 24292, 24293, 24293, 24294])
    assert complete_outcome_months(months, 3) == [24290, 24291]
    assert complete_outcome_months(months, 5) == []
    assert complete_outcome_months(np.array([], dtype=np.int64), 3) == []


def test_too_few_outcome_months_name_the_months_and_the_setting_that_fits() -> None:
    require_outcome_months(10, horizon_months=12, test_months=6, calibration_months=3)
    with pytest.raises(TrainingDataError) as refused:
        require_outcome_months(7, horizon_months=12, test_months=6, calibration_months=3)
    message = str(refused.value)
    assert "the data has 7 snapshot months with a complete 12-month outcome" in message
    assert "needs at least 10 (6 test, 3 calibration, 1 fit)" in message
    assert "set split.test_months <= 3" in message
    assert "3 more months of history" in message
    with pytest.raises(TrainingDataError) as embargo:
        require_outcome_months(
            3, horizon_months=3, test_months=3, calibration_months=3, gap_months=2
        )
    assert "2 embargo" in str(embargo.value)
    assert "label.horizon_months shorter than 3" in str(embargo.value)
    assert "split.test_months <=" not in str(embargo.value)


def test_a_window_with_one_outcome_is_named_with_the_setting_to_widen() -> None:
    both = pd.DataFrame({"y": [0, 1]})
    require_both_outcomes((("fit", both), ("test", both)), "y", "defaults")
    with pytest.raises(TrainingDataError) as refused:
        require_both_outcomes(
            (("fit", both), ("test", pd.DataFrame({"y": [0, 0, 0]}))), "y", "defaults"
        )
    assert "the test period has 3 rows and 0 defaults" in str(refused.value)
    assert "split.test_months" in str(refused.value)


def test_profile_of_the_tiny_bank(tiny_bank: Path) -> None:
    before = sorted(p.name for p in tiny_bank.iterdir())
    check = check_data(tiny_bank, SPECS)
    assert sorted(p.name for p in tiny_bank.iterdir()) == before  # writes nothing
    profile = check.profile
    assert profile.currency == "EUR"
    assert profile.clients_by_segment == {"sme": 2, "corporate": 2}
    assert profile.rms_by_role == {"brm": 1, "crm": 1}
    assert (profile.account_months.first, profile.account_months.last) == ("2024-01", "2024-06")
    assert profile.account_months.count == 6
    assert profile.outcome_months[3].count == 3
    assert profile.outcome_months[3].last == "2024-03"
    assert profile.outcome_months[12].count == 0
    assert profile.defaults.events == 1
    assert profile.defaults.months.first == "2024-05"
    assert profile.defaults.client_rate_by_segment == {"sme": 0.5, "corporate": 0.0}
    assert profile.adoptions["ACQUIRING"].count == 1
    assert profile.adoptions["TERM_LOAN"].count == 0
    assert profile.financials.clients == 3
    assert profile.financials.share_of_clients == 0.75
    assert profile.absent_tables == []
    assert not check.can_all_train
    can, why = _verdict(check, SME)
    assert not can
    assert "the data has 0 snapshot months with a complete 12-month outcome" in why
    assert "10 more months of history" in why
    can, why = _verdict(check, PERSONAL)
    assert not can
    assert "sme 2, corporate 2" in why
    assert "`segments`" in why


def test_optional_tables_left_out_are_listed(tiny_bank: Path) -> None:
    (tiny_bank / "financials.csv").unlink()
    profile = check_data(tiny_bank, SPECS).profile
    assert profile.absent_tables == ["financials"]
    assert "financials" not in profile.tables
    assert profile.financials.clients == 0
    assert profile.financials.first_year is None


@pytest.fixture(scope="module")
def bank_without_persons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feasibility") / "bank"
    generate_bank(out, n_clients=300, n_months=24, seed=11, personal_share=0.0)
    return out


def test_no_personal_clients_the_personal_spec_says_which_segments_the_data_has(
    bank_without_persons: Path,
) -> None:
    check = check_data(bank_without_persons, SPECS)
    segments = check.profile.clients_by_segment
    assert "personal" not in segments
    assert segments["sme"] > 0
    can, why = _verdict(check, PERSONAL)
    assert not can
    assert "no client of the spec's segments (personal)" in why
    assert f"sme {segments['sme']:,}" in why
    assert not check.can_all_train


def test_a_short_history_names_its_months_and_the_setting_that_fits(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    generate_bank(bank, n_clients=150, n_months=13, seed=5, personal_share=0.0)
    models = tmp_path / "models"
    models.mkdir()
    spec = yaml.safe_load((SPECS / "sme_credit_risk.yaml").read_text(encoding="utf-8"))
    spec["label"]["horizon_months"] = 3
    spec["name"] = "rmreco-sme-pd-3m"  # the name carries the horizon
    spec["split"]["test_months"] = 9
    (models / "sme_credit_risk.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    shutil.copy(SPECS / "cross_sell.yaml", models / "cross_sell.yaml")
    check = check_data(bank, models)
    assert check.profile.account_months.count == 13
    assert check.profile.outcome_months[3].count == 10
    can, why = _verdict(check, "rmreco-sme-pd-3m")
    assert not can
    assert "the data has 10 snapshot months with a complete 3-month outcome" in why
    assert "needs at least 13 (9 test, 3 calibration, 1 fit)" in why
    assert "set split.test_months <= 6" in why
    assert "3 more months of history" in why
