"""Small books and rare products never degenerate in silence: tree parameters scaled to the fit
set, warnings for a tiny fit set, the gate's refusals of a model without a split, of constant
scores, of a ranking without two candidates to rank or without lift over popularity, and a
catalog product nobody took in the fit window left out of the model with a warning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from rmreco.domain.errors import ConfigurationError
from rmreco.features.cross_sell import LABEL, PRODUCT, WEIGHT
from rmreco.modeling.boosting import (
    FitRows,
    GroupCount,
    HeldFitSet,
    fit_binary_booster,
    fit_set_warnings,
    has_split,
)
from rmreco.modeling.calibration import sigmoid
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.propensity_estimator import PropensityEstimator, ranking
from rmreco.modeling.spec import CrossSellSpec, LightGbmSpec, load_credit_risk_spec
from rmreco.training.cross_sell import ranking_vetoes
from rmreco.training.registry import (
    constant_score_veto,
    decide_gate,
    lift_veto,
    no_split_veto,
    ranking_groups_veto,
)

ROOT = Path(__file__).resolve().parents[2]


def test_min_data_in_leaf_as_a_share_scales_with_the_fit_set_and_has_a_floor() -> None:
    spec = LightGbmSpec(min_data_in_leaf_share=0.1, min_data_in_leaf_floor=50)
    assert spec.min_data_in_leaf(10_726) == 1073
    assert spec.min_data_in_leaf(3_000) == 300
    assert spec.min_data_in_leaf(200) == 50  # the floor
    assert spec.resolved_params(3_000)["min_data_in_leaf"] == 300
    fixed = LightGbmSpec(params={"min_data_in_leaf": 60})
    assert fixed.min_data_in_leaf(10) == 60
    assert fixed.resolved_params(10) == {"min_data_in_leaf": 60}
    assert LightGbmSpec().min_data_in_leaf(5) == 20  # LightGBM's own default


def test_a_share_and_a_count_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="keep one"):
        LightGbmSpec(min_data_in_leaf_share=0.1, params={"min_data_in_leaf": 60})


def test_the_shipped_sme_spec_gives_a_small_book_leaves_it_can_split() -> None:
    spec = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml")
    assert spec.model.registered == "best"
    for rows in (1_500, 3_000, 4_444):
        assert 2 * spec.model.lightgbm.min_data_in_leaf(rows) < rows
    # the demo-size bank keeps the order of value it had (a fixed 1,000)
    assert 900 <= spec.model.lightgbm.min_data_in_leaf(10_726) <= 1_200


def test_a_share_with_a_count_in_a_spec_file_names_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"]["params"]["min_data_in_leaf"] = 1000
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigurationError, match=r"model\.lightgbm"):
        load_credit_risk_spec(path)


def test_a_tiny_fit_set_is_warned_about() -> None:
    tiny = fit_set_warnings(400, 12, 20, "credit fit set")
    assert len(tiny) == 1
    assert "tiny fit set (400 rows, 12 events" in tiny[0]
    unsplittable = fit_set_warnings(1_300, 40, 1000, "credit fit set")
    assert len(unsplittable) == 1
    assert "no tree can split" in unsplittable[0]
    assert fit_set_warnings(20_000, 400, 1000, "credit fit set") == []


def _booster(min_data_in_leaf: int) -> object:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    y = (rng.random(600) < sigmoid(2 * X[:, 0] - 2)).astype(int)
    frame = pd.DataFrame(X, columns=["a", "b"])
    encoder = FeatureEncoder.fit(frame, ["a", "b"])
    return fit_binary_booster(
        X,
        y,
        X,
        y,
        encoder=encoder,
        params={"min_data_in_leaf": min_data_in_leaf, "num_leaves": 4},
        num_boost_round=10,
        early_stopping_rounds=None,
        seed=0,
    ), X


def test_a_model_without_a_split_is_found_and_refused_by_the_gate() -> None:
    splits, _ = _booster(20)
    flat, X = _booster(1000)  # leaves of 1,000 rows on 600: no split possible
    assert has_split(splits)  # type: ignore[arg-type]
    assert not has_split(flat)  # type: ignore[arg-type]
    assert no_split_veto(True, "the LightGBM model", 20, 600) is None
    veto = no_split_veto(False, "the LightGBM model", 1000, 600)
    assert veto is not None
    gate = decide_gate(
        0.5,
        min_value=0.0,
        max_drop=0.01,
        champion_value=None,
        champion_version=None,
        vetoes=[veto],
    )
    assert not gate.passed
    assert gate.reason.startswith("refused: the LightGBM model has no split")
    assert "min_data_in_leaf 1,000 on 600 fit rows" in gate.reason
    # and its scores are constant, which the other veto finds too
    assert constant_score_veto(flat.predict(X), "the lightgbm model") is not None  # type: ignore[attr-defined]


def test_constant_scores_are_refused_and_varying_ones_are_not() -> None:
    veto = constant_score_veto(np.full(50, 0.03), "the scorecard model")
    assert veto is not None
    assert "same score (1 distinct value" in veto
    assert constant_score_veto(np.r_[np.full(49, 0.03), np.nan], "m") is not None
    assert constant_score_veto(np.linspace(0.01, 0.2, 50), "m") is None
    gate = decide_gate(
        0.9,
        min_value=0.7,
        max_drop=0.01,
        champion_value=None,
        champion_version=None,
        vetoes=[veto],
    )
    assert not gate.passed
    assert "same score" in gate.reason


def _groups_frame(candidates: list[int], adopted_first: bool = True) -> pd.DataFrame:
    rows = []
    for g, n in enumerate(candidates):
        for j in range(n):
            rows.append(
                {
                    "client_id": f"C{g}",
                    "month": pd.Timestamp("2024-01-01"),
                    PRODUCT: f"P{j}",
                    LABEL: int(j == (0 if adopted_first else n - 1)),
                }
            )
    return pd.DataFrame(rows)


def test_map_counts_only_client_snapshots_with_two_candidates() -> None:
    single = _groups_frame([1, 1, 1])
    constant = np.zeros(len(single))
    m = ranking(single, constant, 5, "oot_")
    assert m["oot_ranking_groups"] == 0.0
    assert m["oot_map_at_5"] == 0.0  # not the 1.0 a constant model used to get
    veto = ranking_groups_veto(m["oot_ranking_groups"], 5)
    assert veto is not None
    assert "two or more candidate products" in veto
    gate = decide_gate(
        m["oot_map_at_5"],
        metric="oot_map_at_5",
        min_value=0.0,
        max_drop=0.01,
        champion_value=None,
        champion_version=None,
        vetoes=[veto],
    )
    assert not gate.passed
    assert "MAP@5 measures no ranking" in gate.reason
    # one-candidate groups are left out; the two-candidate group, ranked wrong, counts
    mixed = _groups_frame([1, 1, 2], adopted_first=False)
    m = ranking(mixed, np.array([0.0, 0.0, 0.9, 0.1]), 5, "")
    assert m["ranking_groups"] == 1.0
    assert m["map_at_5"] == pytest.approx(0.5)
    assert ranking_groups_veto(1.0, 5) is None


def test_a_model_that_does_not_beat_popularity_is_refused() -> None:
    veto = lift_veto(0.30, 0.30, 0.0, "oot_map_at_5")
    assert veto is not None
    assert "does not beat popularity" in veto
    assert lift_veto(0.32, 0.30, 0.05, "oot_map_at_5") is not None
    assert lift_veto(0.32, 0.30, 0.0, "oot_map_at_5") is None


CATALOG = pd.DataFrame(
    {
        PRODUCT: ["loan", "payroll", "fx"],
        "name": ["Loan", "Payroll", "FX"],
        "kind": ["financing", "service", "service"],
        "annual_fee": [np.nan, 300.0, 200.0],
        "margin_rate": [0.02, np.nan, np.nan],
        "limit_turnover_share": [0.2, np.nan, np.nan],
    }
)


def _window(n_clients: int, month: str, seed: int, fx_taken: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 3 * n_clients
    frame = pd.DataFrame(
        {
            "client_id": np.repeat([f"C{i}" for i in range(n_clients)], 3),
            "month": pd.Timestamp(month),
            "segment": "sme",
            "turnover_log": rng.normal(13, 1, n),
            "inflow_12m_log": rng.normal(13, 1, n),
            PRODUCT: np.tile(["loan", "payroll", "fx"], n_clients),
            WEIGHT: 1.0,
        }
    )
    logit = -1.5 + 1.5 * (frame["turnover_log"] - 13)
    frame[LABEL] = (rng.random(n) < sigmoid(logit.to_numpy())).astype(int)
    if not fx_taken:
        frame.loc[frame[PRODUCT] == "fx", LABEL] = 0
    return frame


def test_a_product_nobody_took_in_the_fit_window_is_left_out_with_a_warning() -> None:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["features"] = ["turnover_log", "inflow_12m_log"]
    raw["holdings_features"] = False
    raw["model"]["lightgbm"].update(num_boost_round=10, early_stopping_rounds=None)
    raw["model"]["lightgbm"]["params"].update(min_data_in_leaf=20)
    raw["model"]["per_product_params"] = {"min_data_in_leaf": 10}
    spec = CrossSellSpec.model_validate(raw)
    fit = _window(300, "2024-01-01", 0, fx_taken=False)
    calibration = _window(200, "2024-06-01", 1, fx_taken=True)
    fitted = PropensityEstimator(spec, CATALOG).fit(fit, calibration)
    assert fitted.left_out_ == {"fx": 0}
    assert any("product fx left out" in w and "0 adoptions" in w for w in fitted.warnings_)
    for model in (fitted.model_, fitted.stacked_, fitted.per_product_):
        assert "fx" not in model.products
        assert "fx" not in model.catalog
        assert set(model.products) == {"loan", "payroll"}
    # its rows are not scored (batch scoring and the list drop them)
    p = fitted.model_.predict_propensity(fitted.encoder_.transform(calibration))
    is_fx = calibration[PRODUCT].to_numpy() == "fx"
    assert np.isnan(p[is_fx]).all()
    assert not np.isnan(p[~is_fx]).any()


def test_a_product_taken_fewer_times_than_the_spec_setting_is_left_out_naming_its_count() -> None:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["features"] = ["turnover_log", "inflow_12m_log"]
    raw["holdings_features"] = False
    raw["model"]["lightgbm"].update(num_boost_round=10, early_stopping_rounds=None)
    raw["model"]["min_fit_adoptions"] = 3
    spec = CrossSellSpec.model_validate(raw)
    fit = _window(300, "2024-01-01", 0, fx_taken=False)
    fx = np.flatnonzero(fit[PRODUCT].to_numpy() == "fx")[:2]
    fit.loc[fx, LABEL] = 1
    fitted = PropensityEstimator(spec, CATALOG).fit(fit, _window(200, "2024-06-01", 1, True))
    assert fitted.left_out_ == {"fx": 2}
    assert any("2 adoptions in the fit window" in w for w in fitted.warnings_)


def test_the_cross_sell_job_refuses_one_candidate_books_and_no_lift_naming_the_cause() -> None:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["features"] = ["turnover_log", "inflow_12m_log"]
    raw["holdings_features"] = False
    raw["model"]["lightgbm"].update(num_boost_round=10, early_stopping_rounds=None)
    raw["model"]["lightgbm"]["params"].update(min_data_in_leaf=20)
    spec = CrossSellSpec.model_validate(raw)
    fit = _window(300, "2024-01-01", 0, fx_taken=True)
    test = _window(200, "2024-06-01", 1, fx_taken=True)
    fitted = PropensityEstimator(spec, CATALOG).fit(fit, test)
    scores = fitted.model_.predict_propensity(fitted.encoder_.transform(test))
    metrics = {
        **ranking(test, scores, 5, "oot_"),
        "popularity_oot_map_at_5": 0.0,
    }
    assert ranking_vetoes(fitted.model_, metrics, scores, spec, len(fit)) == []
    metrics["popularity_oot_map_at_5"] = metrics["oot_map_at_5"]
    (lift,) = ranking_vetoes(fitted.model_, metrics, scores, spec, len(fit))
    assert "does not beat popularity" in lift
    # one candidate per client-snapshot: nothing to rank, refused naming it
    single = test.groupby("client_id").head(1).reset_index(drop=True)
    one = ranking(single, np.zeros(len(single)), 5, "oot_")
    (groups,) = ranking_vetoes(
        fitted.model_, {**metrics, **one}, np.zeros(len(single)), spec, len(fit)
    )
    assert "two or more candidate products" in groups
    # constant propensities are refused too
    constant = ranking_vetoes(
        fitted.model_,
        metrics | {"popularity_oot_map_at_5": 0.0},
        np.full(len(test), 0.1),
        spec,
        len(fit),
    )
    assert any("same score" in v for v in constant)


@dataclass(frozen=True)
class _FitterOf:
    """A fit set held by someone else, as a cluster holds one: fits on its own rows."""

    frame: pd.DataFrame

    def __call__(
        self,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        encoder: FeatureEncoder,
        params: dict[str, Any],
        num_boost_round: int,
        early_stopping_rounds: int | None,
        seed: int,
        monotone: Sequence[int] | None = None,
        rows: FitRows | None = None,
    ) -> lgb.Booster:
        fit = self.frame
        if rows is not None:
            fit = fit[fit[rows.column].astype(str).isin(rows.values)]
        return fit_binary_booster(
            encoder.transform(fit),
            fit[LABEL].to_numpy(int),
            X_val,
            y_val,
            encoder=encoder,
            params={"num_threads": 1, **params},
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            seed=seed,
            weight=fit[WEIGHT].to_numpy(float),
            monotone=monotone,
        )


def _held(fit: pd.DataFrame) -> HeldFitSet:
    by = fit.groupby(PRODUCT)[LABEL]
    y = fit[LABEL].to_numpy(int)
    return HeldFitSet(
        rows=len(fit),
        events=int(min(y.sum(), len(y) - y.sum())),
        levels={"segment": ("sme",), PRODUCT: tuple(sorted(fit[PRODUCT].unique()))},
        fit_booster=_FitterOf(fit),
        groups={
            str(code): GroupCount(int(n), int(taken))
            for code, n, taken in zip(by.size().index, by.size(), by.sum(), strict=True)
        },
    )


def test_a_fit_set_held_elsewhere_gives_the_models_fitted_on_all_of_it() -> None:
    """The estimator fitted through a held fit set (a cluster's) of which it sees a sample:
    the same LightGBM models, products left out and sizes as fitted on the whole set here."""
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["features"] = ["turnover_log", "inflow_12m_log"]
    raw["holdings_features"] = False
    raw["model"]["lightgbm"].update(num_boost_round=30, early_stopping_rounds=5)
    raw["model"]["lightgbm"]["params"].update(min_data_in_leaf=20)
    raw["model"]["per_product_params"] = {"min_data_in_leaf": 10}
    spec = CrossSellSpec.model_validate(raw)
    fit = _window(400, "2024-01-01", 0, fx_taken=False)
    fit[WEIGHT] = np.where(fit[LABEL] > 0, 1.0, 2.0)
    calibration = _window(300, "2024-06-01", 1, fx_taken=True)
    whole = PropensityEstimator(spec, CATALOG).fit(fit, calibration)
    sample = fit[fit["client_id"].isin([f"C{i}" for i in range(150)])]
    held = PropensityEstimator(spec, CATALOG).fit(sample, calibration, held=_held(fit))
    assert held.left_out_ == whole.left_out_ == {"fx": 0}
    assert held.fit_rows_ == whole.fit_rows_ == 800  # loan and payroll rows
    assert held.warnings_ == whole.warnings_
    assert held.encoder_ == whole.encoder_
    for kind in ("stacked_", "per_product_"):
        mine, theirs = getattr(held, kind), getattr(whole, kind)
        assert set(mine.boosters) == set(theirs.boosters)
        for code, booster in theirs.boosters.items():
            assert mine.boosters[code].model_to_string() == booster.model_to_string(), code
    X = whole.encoder_.transform(calibration)
    np.testing.assert_array_equal(
        held.model_.predict_propensity(X), whole.model_.predict_propensity(X)
    )
    # the baselines read the sample only
    assert held.popularity_.rates_ != whole.popularity_.rates_
