"""PD model parts: master scale, calibration, scorecard, the LightGBM model's behaviour, reasons,
persistence, the spec and the promotion gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rmreco.domain.errors import ConfigurationError
from rmreco.features.config import FeatureConfig
from rmreco.modeling.boosting import fit_binary_booster
from rmreco.modeling.calibration import Calibrator, sigmoid
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.encoding import FeatureEncoder, FeatureMismatchError
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.metrics import auc, credit_metrics, gains_table
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.modeling.spec import load_credit_risk_spec
from rmreco.training.registry import decide_gate

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "models" / "sme_credit_risk.yaml"
FEATURES = ["dpd_12m", "overdraft_months_12m", "balance_to_inflow_3m", "sector", "turnover_log"]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Clients whose default risk rises with days past due and overdraft use."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "dpd_12m": rng.choice([0, 0, 0, 0, 5, 15, 35, 65], size=n).astype(float),
            "overdraft_months_12m": rng.integers(0, 13, size=n).astype(float),
            "balance_to_inflow_3m": rng.normal(1.0, 0.8, size=n),
            "sector": pd.Categorical(rng.choice(["C", "F", "G"], size=n)),
            "turnover_log": rng.normal(14, 1, size=n),
            "region": rng.choice(["North", "South"], size=n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "balance_to_inflow_3m"] = np.nan
    logit = (
        -4.2
        + 0.04 * frame["dpd_12m"]
        + 0.12 * frame["overdraft_months_12m"]
        - 0.5 * frame["balance_to_inflow_3m"].fillna(0)
        + np.where(frame["sector"] == "F", 0.5, 0.0)
    )
    y = (rng.random(n) < sigmoid(logit.to_numpy())).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def fitted() -> CreditRiskModel:
    frame, y = _frame(12000, seed=1)
    cal, y_cal = _frame(6000, seed=2)
    encoder = FeatureEncoder.fit(frame, FEATURES)
    X, X_cal = encoder.transform(frame), encoder.transform(cal)
    booster = fit_binary_booster(
        X,
        y,
        X_cal,
        y_cal,
        encoder=encoder,
        monotone=[1, 1, 0, 0, 0],
        params={"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50},
        num_boost_round=120,
        early_stopping_rounds=20,
        seed=3,
    )
    return CreditRiskModel(
        kind="lightgbm",
        config=FeatureConfig(
            family="credit_risk", horizon_months=12, segments=("sme",), features=tuple(FEATURES)
        ),
        encoder=encoder,
        booster=booster,
        calibrator=Calibrator.fit(np.asarray(booster.predict(X_cal, raw_score=True)), y_cal),
        scale=MasterScale.from_bands([("1", 0.01), ("2", 0.03), ("3", 0.1), ("4", None)]),
        top_reasons=3,
    )


def test_master_scale_bands() -> None:
    scale = MasterScale.from_bands([("1", 0.001), ("2", 0.01), ("3", None)])
    assert list(scale.grade([0.0, 0.0009, 0.001, 0.005, 0.01, 0.5, 1.0])) == [
        "1",
        "1",
        "2",
        "2",
        "3",
        "3",
        "3",
    ]
    assert scale.band("2") == (0.001, 0.01)
    assert scale.rank("D") > scale.rank("3") > scale.rank("1")
    with pytest.raises(ValueError, match="increase"):
        MasterScale(grades=("1", "2", "3"), upper_bounds=(0.1, 0.01))


def test_platt_calibration_keeps_order_and_fixes_level() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(-3, 1, 20000)
    y = (rng.random(20000) < sigmoid(raw - 1.0)).astype(int)  # true level is one lower
    cal = Calibrator.fit(raw, y, "platt")
    p = cal.transform(raw)
    assert abs(p.mean() - y.mean()) < 0.1 * y.mean()
    assert np.all(np.diff(cal.transform(np.sort(raw))) >= 0)
    assert Calibrator.from_dict(cal.to_dict()).transform(raw[:5]) == pytest.approx(p[:5])
    iso = Calibrator.fit(raw, y, "isotonic")
    assert np.all(np.diff(iso.transform(np.sort(raw))) >= -1e-12)
    with pytest.raises(ValueError, match="single outcome"):
        Calibrator.fit(raw, np.zeros_like(y))


def test_scorecard_learns_direction_and_explains_itself() -> None:
    frame, y = _frame(8000, seed=4)
    encoder = FeatureEncoder.fit(frame, FEATURES)
    X = encoder.transform(frame)
    card = WoeScorecard(bins=6).fit(X, y, encoder.categorical_indices)
    raw = card.raw_score(X)
    assert auc(y, raw) > 0.7
    contrib = card.contributions(X)
    assert contrib.sum(axis=1) == pytest.approx(raw)
    high, low = X[:, 0] >= 35, X[:, 0] == 0
    assert contrib[high, 0].mean() > contrib[low, 0].mean()
    again = WoeScorecard.from_dict(card.to_dict())
    assert again.raw_score(X[:50]) == pytest.approx(raw[:50])


def test_pd_never_falls_when_days_past_due_rise(fitted: CreditRiskModel) -> None:
    frame, _ = _frame(300, seed=5)
    previous = None
    for dpd in (0.0, 5.0, 15.0, 35.0, 65.0, 120.0):
        pds = fitted.predict(frame.assign(dpd_12m=dpd), with_reasons=False).pd
        if previous is not None:
            assert np.all(pds >= previous - 1e-12)
        previous = pds
    low = fitted.predict(frame.assign(dpd_12m=0.0), with_reasons=False).pd
    assert np.all(previous > low)  # and the rise is real, not flat


def test_fields_the_model_does_not_read_do_not_move_scores(fitted: CreditRiskModel) -> None:
    frame, _ = _frame(200, seed=6)
    before = fitted.predict(frame, with_reasons=False).pd
    after = fitted.predict(frame.assign(region="Elsewhere"), with_reasons=False).pd
    assert after == pytest.approx(before)
    unknown_sector = fitted.predict(frame.assign(sector="Z"), with_reasons=False).pd
    assert np.all((unknown_sector > 0) & (unknown_sector < 1))


def test_pd_with_reasons_is_the_pd_without(fitted: CreditRiskModel) -> None:
    # with reasons the PD comes from the TreeSHAP contributions' sum: it must be the same PD
    frame, _ = _frame(300, seed=8)
    plain = fitted.predict(frame, with_reasons=False)
    explained = fitted.predict(frame, with_reasons=True)
    assert explained.pd == pytest.approx(plain.pd, rel=1e-9, abs=1e-12)
    assert list(explained.grade) == list(plain.grade)
    assert any(explained.reasons)


def test_reasons_name_what_raised_the_pd(fitted: CreditRiskModel) -> None:
    risky = pd.DataFrame(
        {
            "dpd_12m": [65.0],
            "overdraft_months_12m": [0.0],
            "balance_to_inflow_3m": [2.0],
            "sector": ["C"],
            "turnover_log": [14.0],
        }
    )
    result = fitted.predict(risky)
    reasons = result.reasons[0]
    assert reasons, "a risky client must get reasons"
    assert reasons[0].feature == "dpd_12m"
    assert reasons[0].code == "DPD12"
    assert reasons[0].text == "payments 65 days past due in the last 12 months"
    assert (reasons[0].value, reasons[0].unit) == (65.0, "days")
    assert all(r.contribution > 0 and r.direction == "raises the PD" for r in reasons)
    assert [r.contribution for r in reasons] == sorted(
        (r.contribution for r in reasons), reverse=True
    )


def test_saved_model_predicts_the_same(fitted: CreditRiskModel, tmp_path: Path) -> None:
    frame, _ = _frame(100, seed=7)
    loaded = CreditRiskModel.load(fitted.save(tmp_path / "m"))
    a, b = fitted.predict(frame), loaded.predict(frame)
    assert b.pd == pytest.approx(a.pd)
    assert a.horizon_months == b.horizon_months == fitted.config.horizon_months
    assert list(b.grade) == list(a.grade)
    assert [[r.to_dict() for r in row] for row in b.reasons] == [
        [r.to_dict() for r in row] for row in a.reasons
    ]
    with pytest.raises(ValueError, match=r"model\.json"):
        CreditRiskModel.load(tmp_path / "empty")


def test_missing_feature_is_named(fitted: CreditRiskModel) -> None:
    frame, _ = _frame(10, seed=8)
    with pytest.raises(FeatureMismatchError, match="dpd_12m"):
        fitted.predict(frame.drop(columns=["dpd_12m"]))


def test_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = credit_metrics(y, p)
    assert m["oot_auc"] == pytest.approx(0.75)
    assert m["oot_gini"] == pytest.approx(0.5)
    assert m["oot_ks"] == pytest.approx(0.5)
    assert m["oot_brier"] == pytest.approx(np.mean((p - y) ** 2))
    gains = gains_table(y, p, bins=2)
    assert list(gains["defaulters_caught"]) == [0.5, 1.0]


def test_gates() -> None:
    first = decide_gate(
        0.8, min_value=0.7, max_drop=0.01, champion_value=None, champion_version=None
    )
    assert first.passed
    assert "no champion" in first.reason
    floor = decide_gate(
        0.65, min_value=0.7, max_drop=0.01, champion_value=None, champion_version=None
    )
    assert not floor.passed
    assert "floor" in floor.reason
    within = decide_gate(
        0.795, min_value=0.7, max_drop=0.01, champion_value=0.80, champion_version="3"
    )
    assert within.passed
    worse = decide_gate(
        0.78, min_value=0.7, max_drop=0.01, champion_value=0.80, champion_version="3"
    )
    assert not worse.passed
    assert "v3" in worse.reason
    assert "0.0200" in worse.reason
    broken = decide_gate(
        0.9,
        min_value=0.7,
        max_drop=0.01,
        champion_value=None,
        champion_version="3",
        champion_error="feature gone",
    )
    assert not broken.passed
    assert "feature gone" in broken.reason


def test_the_shipped_spec_loads() -> None:
    spec = load_credit_risk_spec(SPEC)
    assert spec.name == "rmreco-sme-pd-12m"
    assert "dpd_12m" in spec.feature_names
    assert len(spec.fingerprint()) == 16


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["features"].append({"name": "no_such_feature"}), "no_such_feature"),
        (lambda s: s["features"].append({"name": "sector", "monotone": "increasing"}), "sector"),
        (lambda s: s["gates"].update(min_auc=1.5), "gates.min_auc"),
        (lambda s: s.update(colour="blue"), "colour"),
        (lambda s: s["grades"].reverse(), "grade"),
    ],
)
def test_bad_spec_is_refused_naming_the_field(tmp_path: Path, change: object, message: str) -> None:
    raw = yaml.safe_load(SPEC.read_text())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigurationError, match=message):
        load_credit_risk_spec(path)


@pytest.mark.parametrize(
    ("change", "lacks", "fits"),
    [
        # a 1-month model must not be registered under the 12-month name
        (lambda s: s["label"].update(horizon_months=1), "1m", "rmreco-sme-pd-1m"),
        (lambda s: s.update(segments=["corporate"]), "corporate", "rmreco-corporate-pd-12m"),
        (lambda s: s.update(name="rmreco-sme-credit-risk"), "12m", "rmreco-sme-pd-12m"),
        # a word of the name, not any substring: "112m" is not "12m", "smes" is not "sme"
        (lambda s: s.update(name="rmreco-smes-pd-112m"), "sme, 12m", "rmreco-sme-pd-12m"),
    ],
)
def test_a_registered_name_without_its_segments_and_horizon_is_refused(
    tmp_path: Path, change: object, lacks: str, fits: str
) -> None:
    raw = yaml.safe_load(SPEC.read_text())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigurationError) as refused:
        load_credit_risk_spec(path)
    message = str(refused.value)
    assert f"name {raw['name']!r} must carry" in message
    assert f"it lacks {lacks}." in message
    assert f"name: {fits}" in message
    raw["name"] = fits  # the name the error proposes is taken
    path.write_text(yaml.safe_dump(raw))
    assert load_credit_risk_spec(path).name == fits


def test_a_name_may_spell_segments_and_horizon_in_any_order_and_case(tmp_path: Path) -> None:
    raw = yaml.safe_load(SPEC.read_text())
    raw["name"] = "bank_12M.SME.default"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_credit_risk_spec(path).name == "bank_12M.SME.default"


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_credit_risk_spec(tmp_path / "nope.yaml")


def test_scorecard_keeps_the_spec_s_monotone_directions() -> None:
    """Noisy bins and a collinear twin would turn days past due around in a free scorecard;
    with the directions, its points never lower the risk as arrears rise."""
    rng = np.random.default_rng(6)
    n = 6000
    dpd = rng.choice([0, 0, 0, 5, 15, 35, 65, 95], size=n).astype(float)
    twin = dpd + rng.normal(0, 3, n)  # nearly the same column: coefficients can split any way
    y = (rng.random(n) < sigmoid(-3 + 0.01 * dpd + rng.normal(0, 1, n))).astype(int)
    X = np.column_stack([dpd, twin])
    card = WoeScorecard(bins=8).fit(X, y, monotone=[1, 1])
    grid = np.column_stack([np.linspace(0, 95, 50), np.linspace(0, 95, 50)])
    for j in range(2):
        swept = np.tile(np.median(X, axis=0), (50, 1))
        swept[:, j] = grid[:, j]
        assert np.all(np.diff(card.raw_score(swept)) >= -1e-12)
    assert (card.coef_ >= 0).all()
