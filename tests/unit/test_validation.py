"""The validation report's parts: bootstrap intervals, the Jeffreys test per grade, PSI, the
monotonicity check and its veto at the gate, the scorecard's tables, and the cross-sell
products a model ranks no better than chance falling back to popularity inside the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from rmreco.features.config import FeatureConfig
from rmreco.features.cross_sell import PRODUCT
from rmreco.modeling.boosting import fit_binary_booster
from rmreco.modeling.calibration import Calibrator, sigmoid
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.metrics import (
    SCORE,
    bootstrap_discrimination,
    calibration_by_grade,
    credit_metrics,
    lift_at,
    profile,
    profile_frame,
    psi,
    psi_band,
    psi_table,
)
from rmreco.modeling.propensity import POOLED, ProductTerms, PropensityModel
from rmreco.modeling.propensity_estimator import fit_calibrators
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.modeling.spec import CrossSellSpec
from rmreco.training.registry import decide_gate
from rmreco.training.validation import (
    TestWindow,
    choose_rankers,
    monotonicity_check,
    monotonicity_table,
    monotonicity_veto,
    product_table,
    product_validation,
    psi_against,
    scorecard_bins,
    scorecard_points,
)

SCALE = MasterScale.from_bands([("1", 0.01), ("2", 0.05), ("3", None)])


# --- discrimination --------------------------------------------------------------------------


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clients = np.repeat(np.arange(n // 4), 4)
    risk = np.repeat(rng.normal(0, 1, n // 4), 4)
    y = (rng.random(n) < sigmoid(-2 + 1.2 * risk)).astype(int)
    score = np.round(risk + rng.normal(0, 0.5, n), 1)  # rounded: many ties
    return y, score, clients


def test_bootstrap_point_values_are_the_usual_auc_gini_and_ks() -> None:
    y, score, clients = _scored(4000, seed=1)
    found = bootstrap_discrimination(y, score, groups=clients, resamples=200, seed=7)
    usual = credit_metrics(y, sigmoid(score))
    assert found.auc.value == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert found.gini.value == pytest.approx(2 * found.auc.value - 1)
    assert found.ks.value == pytest.approx(usual["oot_ks"], abs=1e-9)
    for interval in (found.auc, found.gini, found.ks):
        assert interval.low < interval.value < interval.high
    assert found.unit == "clients"
    assert len(found.replicates["auc"]) == 200
    again = bootstrap_discrimination(y, score, groups=clients, resamples=200, seed=7)
    assert (again.auc.low, again.auc.high) == (found.auc.low, found.auc.high)
    metrics = found.metrics("oot_")
    assert metrics["oot_auc_ci_low"] == found.auc.low
    assert metrics["oot_ks_ci_high"] == found.ks.high


def test_resampling_clients_widens_the_interval_when_a_clients_rows_agree() -> None:
    """Four snapshots of a client share its outcome and score: resampling rows would count
    each client four times over and claim more certainty than the data holds."""
    rng = np.random.default_rng(2)
    risk = rng.normal(0, 1, 600)
    y = np.repeat((rng.random(600) < sigmoid(-1.5 + risk)).astype(int), 4)
    score = np.repeat(risk, 4)
    clients = np.repeat(np.arange(600), 4)
    by_row = bootstrap_discrimination(y, score, resamples=300, seed=1)
    by_client = bootstrap_discrimination(y, score, groups=clients, resamples=300, seed=1)
    assert by_client.auc.high - by_client.auc.low > 1.5 * (by_row.auc.high - by_row.auc.low)


def test_bootstrap_refuses_a_single_class() -> None:
    with pytest.raises(ValueError, match="single outcome"):
        bootstrap_discrimination(np.zeros(10), np.arange(10.0))


def test_lift_shares_ties_at_the_cut() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    assert lift_at(y, np.ones(10), 0.2) == pytest.approx(1.0)
    assert lift_at(y, np.arange(10.0)[::-1], 0.1) == pytest.approx(5.0)


# --- calibration per grade -------------------------------------------------------------------


def test_jeffreys_test_flags_a_grade_whose_pd_is_underestimated() -> None:
    y = np.r_[np.ones(2), np.zeros(98), np.ones(12), np.zeros(88)]
    pd_values = np.r_[np.full(100, 0.02), np.full(100, 0.03)]
    grades = np.r_[np.full(100, "2"), np.full(100, "3")].astype(object)
    table = calibration_by_grade(y, pd_values, grades, ["1", "2", "3", "D"], level=0.05)
    assert list(table.index) == ["2", "3"]
    assert table.loc["2", "clients"] == 100
    assert table.loc["3", "defaults"] == 12
    assert table.loc["3", "default_rate"] == pytest.approx(0.12)
    assert table.loc["3", "p_value"] == pytest.approx(beta.cdf(0.03, 12.5, 88.5))
    assert table.loc["3", "underestimated"]  # 12 defaults where the PD says 3
    assert not table.loc["2", "underestimated"]  # 2 where it says 2
    low, high = table.loc["3", ["jeffreys_low", "jeffreys_high"]]
    assert low < 0.12 < high
    assert (low, high) == pytest.approx(tuple(beta.ppf([0.025, 0.975], 12.5, 88.5)))


# --- population stability -------------------------------------------------------------------


def test_psi_is_near_zero_for_the_same_population_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(3)
    before = rng.normal(0, 1, 20000)
    reference = profile(before, categorical=False)
    assert psi(reference, rng.normal(0, 1, 20000)) < 0.01
    assert psi(reference, rng.normal(1, 1, 20000)) > 0.25
    assert psi_band(0.05) == "stable"
    assert psi_band(0.2) == "watch"
    assert psi_band(0.3) == "shift"
    assert psi_band(float("nan")) == ""


def test_psi_keeps_missing_values_and_unseen_levels_in_bins_of_their_own() -> None:
    before = pd.Series(["A", "B", None, "A", "B", "A"] * 100)
    reference = profile(before, categorical=True)
    assert reference["levels"] == ["A", "B"]
    assert reference["shares"] == pytest.approx([0.5, 1 / 3, 0.0, 1 / 6])
    assert psi(reference, before) == pytest.approx(0.0)
    # the same levels, but the missing ones became a new level: both bins move
    after = before.fillna("C")
    assert psi(reference, after) > 0.25
    numbers = profile(np.r_[np.arange(100.0), np.full(20, np.nan)], categorical=False)
    assert numbers["shares"][-1] == pytest.approx(20 / 120)
    assert psi(numbers, np.arange(100.0)) > 0.1  # the missing bin emptied


def test_profiles_travel_as_json_and_compare_a_later_window() -> None:
    rng = np.random.default_rng(4)
    fit = pd.DataFrame({"x": rng.normal(0, 1, 5000), "sector": rng.choice(["C", "F"], 5000)})
    test = fit.assign(x=fit["x"] + 2.0)
    score_fit, score_test = rng.random(5000), rng.random(5000)
    stored = profile_frame(fit, ["x", "sector"], ["sector"], score=score_fit)
    reference = json.loads(json.dumps(stored))
    table = psi_table(reference, test, score=score_test)
    assert table.loc["x", "band"] == "shift"
    assert table.loc["sector", "psi"] == pytest.approx(0.0)
    assert table.loc[SCORE, "band"] == "stable"
    # against a champion profile that lacked a feature: that feature has no figure
    champion = {**reference, "variables": {"x": reference["variables"]["x"]}}
    both = psi_against(table, champion, test, score_test)
    assert both.loc["x", "champion_psi"] == pytest.approx(table.loc["x", "psi"])
    assert np.isnan(both.loc["sector", "champion_psi"])
    assert np.isnan(psi_against(table, None, test, score_test)["champion_psi"]).all()


# --- monotonicity and the gate -------------------------------------------------------------

FEATURES = ["dpd_12m", "turnover_log"]


def _reversed(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Data where default risk FALLS as days past due rise (the spec says it must not)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "dpd_12m": rng.choice([0.0, 5, 15, 35, 65, 95], size=n),
            "turnover_log": rng.normal(14, 1, size=n),
        }
    )
    logit = -1.5 - 0.03 * frame["dpd_12m"] + 0.3 * (frame["turnover_log"] - 14)
    return frame, (rng.random(n) < sigmoid(logit.to_numpy())).astype(int)


def _credit_model(monotone: list[int]) -> tuple[CreditRiskModel, np.ndarray]:
    frame, y = _reversed(6000, seed=1)
    cal, y_cal = _reversed(3000, seed=2)
    encoder = FeatureEncoder.fit(frame, FEATURES)
    X, X_cal = encoder.transform(frame), encoder.transform(cal)
    booster = fit_binary_booster(
        X, y, X_cal, y_cal, encoder=encoder, monotone=monotone,
        params={"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50},
        num_boost_round=60, early_stopping_rounds=None, seed=3,
    )  # fmt: skip
    model = CreditRiskModel(
        kind="lightgbm",
        config=FeatureConfig("credit_risk", 12, ("sme",), tuple(FEATURES)),
        encoder=encoder,
        booster=booster,
        calibrator=Calibrator.fit(np.asarray(booster.predict(X_cal, raw_score=True)), y_cal),
        scale=SCALE,
    )
    return model, X_cal


def _gate(sweeps: list) -> tuple[bool, str]:  # type: ignore[type-arg]
    veto = monotonicity_veto(sweeps)
    decision = decide_gate(
        0.8, min_value=0.7, max_drop=0.01, champion_value=None, champion_version=None,
        vetoes=(veto,) if veto else (),
    )  # fmt: skip
    return decision.passed, decision.reason


def test_a_model_that_breaks_its_monotone_constraint_is_refused_naming_the_feature() -> None:
    """LightGBM fitted without the spec's constraint on data where the relation is reversed:
    the sweep finds the PD falling as days past due rise, and the gate refuses the model."""
    model, X = _credit_model(monotone=[0, 0])
    constraints = {0: ("dpd_12m", 1)}
    sweeps = monotonicity_check(model.predict_pd, X[:200], X, constraints, grid_points=11)
    table = monotonicity_table(sweeps)
    assert table.loc["dpd_12m", "clients_violating"] > 100
    assert table.loc["dpd_12m", "worst_move"] > 0.01
    passed, reason = _gate(sweeps)
    assert not passed
    assert reason.startswith("refused: monotone constraint violated")
    assert "dpd_12m" in reason
    assert "turnover_log" not in reason


def test_the_same_model_fitted_with_its_constraint_passes() -> None:
    model, X = _credit_model(monotone=[1, 0])
    sweeps = monotonicity_check(model.predict_pd, X[:200], X, {0: ("dpd_12m", 1)})
    assert monotonicity_table(sweeps).loc["dpd_12m", "clients_violating"] == 0
    assert monotonicity_veto(sweeps) is None
    passed, reason = _gate(sweeps)
    assert passed, reason


def _hand_scorecard(woe_dpd: list[float]) -> tuple[CreditRiskModel, WoeScorecard]:
    card = WoeScorecard.from_dict(
        {
            "bins": 4,
            "C": 1.0,
            "categorical": [],
            "edges": [[5.0, 35.0], [13.0, 15.0]],
            # bin 0 missing, then < first edge, between, >= last edge
            "woe": [[0.0, *woe_dpd], [0.0, 0.3, 0.0, -0.3]],
            "coef": [1.0, 1.0],
            "intercept": -3.0,
        }
    )
    encoder = FeatureEncoder(features=tuple(FEATURES))
    model = CreditRiskModel(
        kind="scorecard",
        config=FeatureConfig("credit_risk", 12, ("sme",), tuple(FEATURES)),
        encoder=encoder,
        scorecard=card,
        calibrator=Calibrator(method="platt"),
        scale=SCALE,
    )
    return model, card


def test_a_scorecard_whose_points_run_the_wrong_way_is_refused() -> None:
    rows = np.column_stack([np.array([0.0, 10, 40, 90] * 10), np.full(40, 14.0)])
    wrong, _ = _hand_scorecard([0.8, 0.0, -0.8])  # more arrears, fewer risk points
    right, _ = _hand_scorecard([-0.8, 0.0, 0.8])
    directions = {0: ("dpd_12m", 1), 1: ("turnover_log", -1)}
    passed, reason = _gate(monotonicity_check(wrong.predict_pd, rows[:8], rows, directions))
    assert not passed
    assert "dpd_12m (increasing" in reason
    assert "turnover_log" not in reason
    passed, reason = _gate(monotonicity_check(right.predict_pd, rows[:8], rows, directions))
    assert passed, reason


def test_a_feature_without_range_cannot_be_violated() -> None:
    model, X = _credit_model(monotone=[0, 0])
    flat = X.copy()
    flat[:, 0] = 0.0
    sweeps = monotonicity_check(model.predict_pd, flat[:20], flat, {0: ("dpd_12m", 1)})
    assert len(sweeps[0].grid) == 1
    assert monotonicity_veto(sweeps) is None


# --- the scorecard's tables ------------------------------------------------------------------


def test_scorecard_bins_recount_the_stored_woe_and_points_add_up_to_the_score() -> None:
    frame, y = _reversed(5000, seed=5)
    frame["sector"] = np.where(np.arange(5000) % 3 == 0, "F", "C")
    features = [*FEATURES, "sector"]
    encoder = FeatureEncoder.fit(frame, features)
    X = encoder.transform(frame)
    card = WoeScorecard(bins=5).fit(X, y, encoder.categorical_indices)
    bins = scorecard_bins(card, X, y, features, encoder.categories)
    assert set(bins["feature"]) == set(features)
    assert bins.groupby("feature")["count"].sum().eq(5000).all()
    assert (bins["iv"] >= 0).all()
    # the counts behind each bin give back the WoE the scorecard stored (same smoothing)
    bad, good = y.sum(), len(y) - y.sum()
    seen = bins[bins["count"] > 0]
    recounted = np.log((seen["events"] + 0.5) / (bad + 0.5)) - np.log(
        (seen["count"] - seen["events"] + 0.5) / (good + 0.5)
    )
    assert recounted.to_numpy() == pytest.approx(seen["woe"].to_numpy())
    sector = bins[bins["feature"] == "sector"]
    assert {"C", "F"} <= set(sector["bin"])
    points = scorecard_points(card, bins, features, base_score=600, base_odds=50, pdo=20)
    # a client's points: 600 at odds 50:1, 20 more for each doubling of the odds of good
    factor = 20 / np.log(2)
    client = X[:1]
    mine = 0.0
    for j, name in enumerate(features):
        index = np.flatnonzero(card.woe_matrix(client)[0, j] == np.asarray(card.woe_[j]))[0]
        mine += points[points["feature"] == name]["points"].to_numpy()[index]
    expected = 600 - factor * np.log(50) - factor * card.raw_score(client)[0]
    assert mine == pytest.approx(expected)


# --- cross-sell: per product, and the popularity fallback inside the model -------------------

PRODUCTS = ["loan", "fx", "noise"]
CATALOG = {
    "loan": ProductTerms("loan", "Loan", "financing", margin_rate=0.02, limit_turnover_share=0.2),
    "fx": ProductTerms("fx", "FX", "service", annual_fee=3500.0),
    "noise": ProductTerms("noise", "Noise", "service", annual_fee=500.0),
}


def _offers(n_clients: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Each client x each product; ``noise`` adoptions are unrelated to anything."""
    rng = np.random.default_rng(seed)
    n = n_clients * 3
    frame = pd.DataFrame(
        {
            "client_id": np.repeat([f"C{i}" for i in range(n_clients)], 3),
            "month": pd.Timestamp("2024-01-01"),
            "x1": rng.normal(0, 1, n),
            "x2": rng.normal(0, 1, n),
            "segment": rng.choice(["sme", "corporate"], n),
            PRODUCT: np.tile(PRODUCTS, n_clients),
            "turnover_log": np.log1p(rng.uniform(5e5, 5e6, n)),
        }
    )
    logit = np.select(
        [frame[PRODUCT] == "loan", frame[PRODUCT] == "fx"],
        [-2.5 + 1.5 * frame["x1"], -2.5 + 1.5 * frame["x2"]],
        -2.5,
    )
    return frame, (rng.random(n) < sigmoid(logit)).astype(int)


@pytest.fixture(scope="module")
def offers_model() -> PropensityModel:
    frame, y = _offers(4000, seed=1)
    cal, y_cal = _offers(2000, seed=2)
    features = ["x1", "x2", "segment", PRODUCT]
    encoder = FeatureEncoder.fit(frame, features, categorical=("segment", PRODUCT))
    X, X_cal = encoder.transform(frame), encoder.transform(cal)
    booster = fit_binary_booster(
        X, y, X_cal, y_cal, encoder=encoder,
        params={"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20},
        num_boost_round=80, early_stopping_rounds=None, seed=3,
    )  # fmt: skip
    model = PropensityModel(
        kind="stacked",
        config=FeatureConfig("cross_sell", 3, ("sme", "corporate"), tuple(features)),
        encoder=encoder,
        boosters={POOLED: booster},
        calibrators={POOLED: Calibrator(method="platt")},
        catalog=CATALOG,
        descriptions={"x1": "need one", "x2": "need two"},
    )
    model.calibrators = fit_calibrators(
        model.raw_score(X_cal), y_cal, cal[PRODUCT].to_numpy(object), min_adoptions=10
    )
    return model


def test_a_product_at_chance_falls_back_to_popularity_and_the_others_keep_their_model(
    offers_model: PropensityModel,
) -> None:
    test, y = _offers(1500, seed=3)
    p = offers_model.predict(test, with_reasons=False).propensity
    popularity = np.select(
        [test[PRODUCT] == c for c in PRODUCTS], [0.1, 0.12, 0.08], 0.0
    )  # a rate per product, as the popularity baseline gives within a segment
    spec = CrossSellSpec(name="t-sme-corporate-3m", features=("history_months",), seed=1)
    table = product_validation(
        y, p, popularity, test[PRODUCT].to_numpy(object), test["client_id"].to_numpy(object),
        PRODUCTS, spec,
    )  # fmt: skip
    assert table.loc["loan", "ranker"] == "model"
    assert table.loc["fx", "ranker"] == "model"
    assert table.loc["noise", "ranker"] == "popularity"
    assert table.loc["noise", "auc_low"] <= 0.5 < table.loc["loan", "auc_low"]
    assert "no better than chance" in table.loc["noise", "ranker_reason"]
    assert table.loc["loan", "lift_vs_popularity"] > 1.5
    assert table.loc["noise", "popularity_lift_top10"] == pytest.approx(1.0)  # ties shared


def test_rankers_need_both_outcomes_and_a_floor_above_chance() -> None:
    y = np.r_[np.zeros(50), np.zeros(45), np.ones(5)]
    model = np.r_[np.linspace(0, 1, 50), np.linspace(0, 1, 50)]
    codes = np.r_[np.full(50, "never"), np.full(50, "good")].astype(object)
    clients = np.arange(100).astype(str)
    products = ["never", "good", "absent"]
    table = product_table(y, model, np.zeros(100), codes, clients, products, resamples=50)
    assert table.loc["absent", "rows"] == 0
    choices = choose_rankers(table, min_auc=0.5, confidence=0.95)
    for code in ("never", "absent"):
        assert choices[code].ranker == "popularity"
        assert "cannot be shown better than chance" in choices[code].reason
    assert choices["good"].ranker == "model"  # the 5 adopters score highest
    strict = choose_rankers(table, min_auc=1.0, confidence=0.95)  # it must lie above
    assert strict["good"].ranker == "popularity"


def test_the_fallback_lives_in_the_model_on_every_predict_path_and_is_saved(
    offers_model: PropensityModel, tmp_path: Path
) -> None:
    frame, _ = _offers(50, seed=4)
    model = PropensityModel.load(offers_model.save(tmp_path / "before"))
    assert set(model.rankers.values()) == {"model"}
    before = model.predict(frame).propensity
    model.use_popularity({"noise": 0.031})
    assert model.rankers == {"fx": "model", "loan": "model", "noise": "popularity"}
    noise = (frame[PRODUCT] == "noise").to_numpy()
    served = model.predict(frame)
    assert served.propensity[noise] == pytest.approx(0.031)
    assert served.propensity[~noise] == pytest.approx(before[~noise])
    assert all(not served.reasons[i] for i in np.flatnonzero(noise))
    # the service explains a list's page through reasons() alone: the same rule holds there
    explained = model.reasons(model.encoder.transform(frame))
    assert all(not explained[i] for i in np.flatnonzero(noise))
    assert [r.code for r in explained[int(np.flatnonzero(~noise)[0])]] == [
        r.code for r in served.reasons[int(np.flatnonzero(~noise)[0])]
    ]
    fast = model.predict_propensity(model.encoder.transform(frame))
    records = model.predict_records(frame.to_dict("records"))
    assert fast == pytest.approx(served.propensity)
    assert records.propensity == pytest.approx(served.propensity)
    assert served.expected_value[noise] == pytest.approx(0.031 * 500.0)
    loaded = PropensityModel.load(model.save(tmp_path / "after"))
    assert loaded.rankers == model.rankers
    assert loaded.predict(frame).propensity == pytest.approx(served.propensity)
    with pytest.raises(ValueError, match="not products of this model"):
        model.use_popularity({"unknown": 0.1})
    with pytest.raises(ValueError, match="not probabilities"):
        model.use_popularity({"fx": 1.5})


def test_a_format_2_model_reads_as_every_product_by_its_model(
    offers_model: PropensityModel, tmp_path: Path
) -> None:
    folder = offers_model.save(tmp_path / "m")
    data = json.loads((folder / "model.json").read_text())
    assert data["format_version"] == 3
    data["format_version"] = 2
    del data["popularity"]
    (folder / "model.json").write_text(json.dumps(data))
    assert set(PropensityModel.load(folder).rankers.values()) == {"model"}
    data["format_version"] = 1
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="formats 2, 3"):
        PropensityModel.load(folder)


def test_the_test_window_says_what_it_is() -> None:
    window = TestWindow("out_of_time", "2024-01..2024-03", 1200, "clients never fitted on")
    assert window.describe().startswith("out-of-time test window 2024-01..2024-03 (1,200 rows)")
    assert "clients never fitted on" in window.describe()
    weaker = TestWindow("stratified_holdout", "2024-01..2024-03", 1200).describe()
    assert "stratified hold-out" in weaker
    assert "weaker test" in weaker
