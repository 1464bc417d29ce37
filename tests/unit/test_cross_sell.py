"""Cross-sell: panel rows and labels (held products never rows, no leakage from after t,
eligibility), the value ranking and the credit gate, ranking metrics by hand, per-product
calibration, the propensity model's save/load round trip, the spec and the gate."""

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
from rmreco.features.builder import NEVER
from rmreco.features.config import FeatureConfig
from rmreco.features.cross_sell import (
    LABEL,
    PRODUCT,
    CatalogError,
    build_cross_sell_panel,
    holdings_feature_names,
)
from rmreco.modeling.boosting import fit_binary_booster
from rmreco.modeling.calibration import sigmoid
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.metrics import lift_at, ranking_metrics
from rmreco.modeling.propensity import (
    POOLED,
    ProductTerms,
    PropensityModel,
    annual_turnover,
    credit_allows,
    expected_value,
    rank_offers,
    value_order,
)
from rmreco.modeling.propensity_estimator import (
    PopularityBaseline,
    fit_calibrators,
)
from rmreco.modeling.spec import load_cross_sell_spec
from rmreco.training.registry import decide_gate

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "models" / "cross_sell.yaml"
M = months(12)


def _bank(holdings: list[tuple[str, str, date, date | None]], **client: object) -> FeatureInputs:
    """Two clients (A: sme, B: corporate), 12 months, a catalog of four products."""
    rows = [
        {
            "client_id": cid,
            "month": m,
            "balance_avg": 1000.0,
            "credit_turnover": 100.0,
            "debit_turnover": 90.0,
        }
        for cid in ("A", "B")
        for m in M
    ]
    clients = pd.DataFrame(
        {
            "client_id": ["A", "B"],
            "segment": ["sme", "corporate"],
            "sector": ["C", "G"],
            "region": ["North", "South"],
            "founded": [client.get("founded", date(2015, 1, 1)), date(2010, 1, 1)],
            "employees": [10, 300],
            "turnover": [1.0e6, 5.0e7],
            "rm_id": ["RM1", "RM2"],
        }
    )
    products = pd.DataFrame(
        {
            "product_code": ["overdraft", "payroll", "fx_hedging", "cash_pool"],
            "name": ["Overdraft", "Payroll", "FX hedging", "Cash pooling"],
            "kind": ["financing", "service", "service", "service"],
            "segments": ["sme|corporate", "sme|corporate", "sme|corporate", "corporate"],
            "margin_rate": [0.02, None, None, None],
            "annual_fee": [None, 900.0, 3500.0, 2400.0],
            "min_age_months": [6, None, 12, None],
            "limit_turnover_share": [0.1, None, None, None],
        }
    )
    holdings_frame = pd.DataFrame(
        holdings, columns=["client_id", "product_code", "start_month", "end_month"]
    )
    return FeatureInputs(
        account_months=pd.DataFrame(rows),
        clients=clients,
        holdings=holdings_frame,
        credit_events=pd.DataFrame(columns=["client_id", "month", "event_type"]),
        products=products,
    )


def _rows(panel: pd.DataFrame, client: str, product: str) -> pd.DataFrame:
    rows = panel[(panel["client_id"] == client) & (panel[PRODUCT] == product)]
    return rows.set_index("month")


def test_held_products_are_never_rows_and_labels_mark_starts_in_the_next_three_months() -> None:
    bank = _bank(
        [
            ("A", "overdraft", date(2019, 1, 1), None),  # held throughout
            ("A", "payroll", M[5], None),  # adopted in month 5
            ("A", "fx_hedging", M[1], M[3]),  # held months 1..3, then closed
        ]
    )
    panel = build_cross_sell_panel(bank)
    assert _rows(panel, "A", "overdraft").empty
    payroll = _rows(panel, "A", "payroll")
    assert [d.date() for d in payroll.index] == M[:5]  # a row until it is held
    assert list(payroll[LABEL]) == [0, 0, 1, 1, 1]  # t+1..t+3 reach month 5 from month 2
    fx = _rows(panel, "A", "fx_hedging")
    assert pd.Timestamp(M[2]) not in fx.index  # held at month 2
    assert fx.loc[pd.Timestamp(M[0]), LABEL] == 1
    assert fx.loc[pd.Timestamp(M[5]), "product_closed_12m"] == 1.0
    assert fx.loc[pd.Timestamp(M[5]), "product_months_since_held"] == 2.0
    assert fx.loc[pd.Timestamp(M[0]), "product_months_since_held"] == NEVER
    # holdings features of the client at t, for every catalog product
    at5 = panel[(panel["client_id"] == "A") & (panel["month"] == pd.Timestamp(M[5]))].iloc[0]
    assert at5["holds_overdraft"] == 1.0
    assert at5["holds_payroll"] == 1.0
    assert at5["months_held_payroll"] == 1.0
    assert at5["holds_fx_hedging"] == 0.0
    at4 = panel[(panel["client_id"] == "A") & (panel["month"] == pd.Timestamp(M[4]))].iloc[0]
    assert at4["holds_payroll"] == 0.0
    assert at4["months_held_payroll"] == 0.0
    # the label is final only when the data reaches t+3
    assert not payroll["label_complete"].iloc[-1] or payroll.index[-1] <= pd.Timestamp(M[8])
    complete = panel.groupby("month")["label_complete"].first()
    assert complete.loc[pd.Timestamp(M[8])]
    assert not complete.loc[pd.Timestamp(M[9])]


def test_eligibility_by_segment_and_business_age() -> None:
    bank = _bank([], founded=date(2021, 10, 1))  # A is 3 months old at the first month
    panel = build_cross_sell_panel(bank)
    assert _rows(panel, "A", "cash_pool").empty  # a corporate-only product
    assert not _rows(panel, "B", "cash_pool").empty
    overdraft = _rows(panel, "A", "overdraft")  # needs 6 months of age
    assert overdraft.index.min() == pd.Timestamp(M[3])
    assert (overdraft["business_age_months"] >= 6).all()
    fx = _rows(panel, "A", "fx_hedging")  # needs 12 months
    assert fx.index.min() == pd.Timestamp(M[9])


def test_clients_in_default_are_not_rows() -> None:
    bank = _bank([])
    bank = replace(
        bank,
        credit_events=pd.DataFrame(
            {"client_id": ["B"], "month": [M[6]], "event_type": ["default"]}
        ),
    )
    panel = build_cross_sell_panel(bank)
    b_months = set(panel.loc[panel["client_id"] == "B", "month"])
    assert pd.Timestamp(M[6]) not in b_months
    assert pd.Timestamp(M[5]) in b_months


def test_no_leakage_from_after_t() -> None:
    bank = random_bank(n_clients=30, n_months=30, seed=3)
    cutoff = months(30)[17]
    before = build_cross_sell_panel(bank, months=[cutoff])

    rng = np.random.default_rng(1)
    am = bank.account_months.copy()
    later = pd.to_datetime(am["month"]) > pd.Timestamp(cutoff)
    for name in am.columns:
        if name not in ("client_id", "month") and pd.api.types.is_numeric_dtype(am[name]):
            am.loc[later, name] = rng.permutation(am.loc[later, name].to_numpy()) * 3 + 7
    assert bank.holdings is not None
    after = pd.Timestamp(cutoff) + pd.DateOffset(months=1)
    holdings = pd.concat(
        [
            bank.holdings,
            pd.DataFrame(
                {
                    "client_id": ["C003", "C004", "C005"],
                    "product_code": ["overdraft", "term_loan", "payroll"],
                    "start_month": [after, after + pd.DateOffset(months=1), after],
                    "end_month": [None, None, None],
                }
            ),
        ],
        ignore_index=True,
    )
    # a spell open at t that ends after t is still held at t
    holdings.loc[holdings["end_month"].isna() & (holdings["client_id"] == "C000"), "end_month"] = (
        after
    )
    assert bank.credit_events is not None
    events = pd.concat(
        [
            bank.credit_events,
            pd.DataFrame({"client_id": ["C007"], "month": [after], "event_type": ["default"]}),
        ],
        ignore_index=True,
    )
    changed = replace(bank, account_months=am, holdings=holdings, credit_events=events)
    again = build_cross_sell_panel(changed, months=[cutoff])

    features = [c for c in before.columns if c not in (LABEL, "label_complete")]
    pd.testing.assert_frame_equal(before[features], again[features])
    # the labels do see the future: the new spells are adoptions
    new = again[(again["client_id"] == "C003") & (again[PRODUCT] == "overdraft")]
    assert list(new[LABEL]) == [1]
    # and every product column is there for every row
    assert set(holdings_feature_names(["overdraft", "term_loan", "payroll"])) <= set(again.columns)


def test_the_catalog_is_required() -> None:
    bank = random_bank(n_clients=12, n_months=30, seed=0)
    with pytest.raises(CatalogError, match="products"):
        build_cross_sell_panel(replace(bank, products=None))


def test_ranking_metrics_by_hand() -> None:
    groups = np.array([1, 1, 1, 2, 2, 3, 3])
    y = np.array([0, 1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.6, 0.2, 0.1])
    m = ranking_metrics(groups, y, scores, k=5)
    # group 1: ranks 2 and 3 relevant: AP = (1/2 + 2/3) / 2; group 2: rank 2: AP = 1/2
    assert m["map_at_5"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)
    dcg1 = 1 / np.log2(3) + 1 / np.log2(4)
    ndcg1 = dcg1 / (1 + 1 / np.log2(3))
    assert m["ndcg_at_5"] == pytest.approx((ndcg1 + 1 / np.log2(3)) / 2)
    assert m["precision_at_1"] == 0.0
    assert m["groups"] == 2  # group 3 has no adoption and is left out
    perfect = ranking_metrics(groups, y, y.astype(float), k=5)
    assert perfect["map_at_5"] == pytest.approx(1.0)
    assert perfect["precision_at_1"] == 1.0
    # k cuts the list: an adoption ranked 3rd does not count at k=2
    assert ranking_metrics(np.zeros(3), np.array([0, 0, 1]), np.array([3, 2, 1]), k=2)[
        "map_at_2"
    ] == pytest.approx(0.0)
    assert lift_at(np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3]), 0.25) == 4.0


def test_calibration_per_product_makes_propensities_comparable() -> None:
    rng = np.random.default_rng(0)
    n = 40000
    codes = rng.choice(np.array(["a", "b"], dtype=object), size=n)
    raw = rng.normal(-3, 1, n)
    # same raw score, very different true rates by product
    true = sigmoid(raw + np.where(codes == "a", 1.5, -1.0))
    y = (rng.random(n) < true).astype(int)
    calibrators = fit_calibrators(raw, y, codes, min_adoptions=20)
    assert {"a", "b", POOLED} <= set(calibrators)
    for code in ("a", "b"):
        rows = codes == code
        p = calibrators[code].transform(raw[rows])
        assert p.mean() == pytest.approx(y[rows].mean(), rel=0.1)
    pooled = calibrators[POOLED].transform(raw)
    assert abs(pooled[codes == "a"].mean() - y[codes == "a"].mean()) > 0.01  # why per product
    # a product with too few adoptions falls back to the pooled calibrator
    few = fit_calibrators(raw, y, codes, min_adoptions=10**6)
    assert set(few) == {POOLED}


FEATURES = ["x1", "x2", "holds_payroll", "segment", PRODUCT]
CATALOG = {
    "loan": ProductTerms("loan", "Loan", "financing", margin_rate=0.02, limit_turnover_share=0.2),
    "payroll": ProductTerms("payroll", "Payroll", "service", annual_fee=900.0),
    "fx": ProductTerms("fx", "FX", "service", annual_fee=3500.0),
}


def _rows_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i // 3}" for i in range(n)],
            "month": pd.Timestamp("2024-01-01"),
            "x1": rng.normal(0, 1, n),
            "x2": rng.normal(0, 1, n),
            "holds_payroll": rng.integers(0, 2, n).astype(float),
            "segment": rng.choice(["sme", "corporate"], n),
            PRODUCT: np.tile(["loan", "payroll", "fx"], n // 3 + 1)[:n],
            "turnover_log": np.log1p(rng.uniform(5e5, 5e6, n)),
            "inflow_12m_log": np.log1p(rng.uniform(5e5, 5e6, n)),
        }
    )
    logit = np.where(
        frame[PRODUCT] == "loan",
        -3 + 1.5 * frame["x1"],
        np.where(frame[PRODUCT] == "fx", -3.5 + 1.5 * frame["x2"], -2.5 - frame["holds_payroll"]),
    )
    return frame, (rng.random(n) < sigmoid(logit)).astype(int)


@pytest.fixture(scope="module", params=["stacked", "per_product"])
def fitted(request: pytest.FixtureRequest) -> PropensityModel:
    frame, y = _rows_frame(15000, seed=1)
    cal, y_cal = _rows_frame(6000, seed=2)
    encoder = FeatureEncoder.fit(frame, FEATURES, categorical=("segment", PRODUCT))
    X, X_cal = encoder.transform(frame), encoder.transform(cal)
    params = {"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50, "num_threads": 1}

    def fit(rows: np.ndarray, val: np.ndarray) -> object:
        return fit_binary_booster(
            X[rows], y[rows], X_cal[val], y_cal[val], encoder=encoder, params=params,
            num_boost_round=80, early_stopping_rounds=10, seed=3,
        )  # fmt: skip

    if request.param == "stacked":
        boosters = {POOLED: fit(np.ones(len(y), bool), np.ones(len(y_cal), bool))}
    else:
        boosters = {
            code: fit((frame[PRODUCT] == code).to_numpy(), (cal[PRODUCT] == code).to_numpy())
            for code in CATALOG
        }
    model = PropensityModel(
        kind=request.param,
        config=FeatureConfig(
            family="cross_sell",
            horizon_months=3,
            segments=("sme", "corporate"),
            features=tuple(encoder.features),
        ),
        encoder=encoder,
        boosters=boosters,  # type: ignore[arg-type]
        calibrators={
            POOLED: fit_calibrators(np.zeros(4), np.array([0, 1, 0, 1]), np.zeros(4))[POOLED]
        },
        catalog=CATALOG,
        descriptions={"holds_payroll": "holds Payroll", "x1": "need one", "x2": "need two"},
        max_credit_grade="2",
        ungraded="exclude",
        top_reasons=2,
    )
    model.calibrators = fit_calibrators(
        model.raw_score(X_cal), y_cal, cal[PRODUCT].to_numpy(object), min_adoptions=10
    )
    return model


def test_model_learns_each_products_signal(fitted: PropensityModel) -> None:
    frame, y = _rows_frame(6000, seed=4)
    p = fitted.predict(frame, with_reasons=False).propensity
    loan = (frame[PRODUCT] == "loan").to_numpy()
    assert np.corrcoef(p[loan], frame.loc[loan, "x1"])[0, 1] > 0.5
    fx = (frame[PRODUCT] == "fx").to_numpy()
    assert np.corrcoef(p[fx], frame.loc[fx, "x2"])[0, 1] > 0.5
    for code in CATALOG:  # calibrated per product: mean propensity near the observed rate
        rows = (frame[PRODUCT] == code).to_numpy()
        assert p[rows].mean() == pytest.approx(y[rows].mean(), abs=0.02)
    unknown = fitted.predict(frame.head(3).assign(**{PRODUCT: "nothing"})).propensity
    assert np.isnan(unknown).all()


def test_reasons_name_the_need_in_words(fitted: PropensityModel) -> None:
    frame, _ = _rows_frame(30, seed=5)
    row = frame[frame[PRODUCT] == "loan"].head(1).assign(x1=3.0)
    reasons = fitted.predict(row).reasons[0]
    assert reasons
    assert reasons[0].feature == "x1"
    assert reasons[0].text.startswith("need one")
    assert all(r.feature != PRODUCT for r in reasons)


def test_saved_model_predicts_the_same(fitted: PropensityModel, tmp_path: Path) -> None:
    frame, _ = _rows_frame(90, seed=6)
    loaded = PropensityModel.load(fitted.save(tmp_path / "m"))
    a, b = fitted.predict(frame), loaded.predict(frame)
    assert b.propensity == pytest.approx(a.propensity)
    assert b.expected_value == pytest.approx(a.expected_value)
    assert [[r.text for r in row] for row in b.reasons] == [
        [r.text for r in row] for row in a.reasons
    ]
    assert loaded.kind == fitted.kind
    assert loaded.catalog == fitted.catalog
    assert loaded.max_credit_grade == "2"
    with pytest.raises(ValueError, match=r"model\.json"):
        PropensityModel.load(tmp_path / "empty")


def test_expected_value_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "turnover_log": [np.log1p(1_000_000.0), np.nan],
            "inflow_12m_log": [np.log1p(400_000.0), np.log1p(400_000.0)],
        }
    )
    turnover = annual_turnover(frame)
    assert turnover == pytest.approx([1_000_000.0, 400_000.0])  # declared, else observed
    value = expected_value(
        ["loan", "loan", "payroll"], np.array([0.1, 0.1, 0.5]), np.r_[turnover, 0.0], CATALOG
    )
    # financing: propensity x margin_rate x limit share x turnover; service: x annual fee
    assert value == pytest.approx([0.1 * 0.02 * 0.2 * 1e6, 0.1 * 0.02 * 0.2 * 4e5, 450.0])


def test_unknown_margin_is_unknown_value_ranked_last_by_propensity() -> None:
    # a catalog that leaves the terms empty says nothing about value: not zero, unknown
    bare = {
        "loan": ProductTerms(code="loan", name="Loan", kind="financing", margin_rate=0.02),
        "payroll": ProductTerms(code="payroll", name="Payroll", kind="service"),
        "fx": ProductTerms(code="fx", name="FX", kind="service", annual_fee=100.0),
    }
    value = expected_value(
        ["loan", "payroll", "fx", "fx"],
        np.array([0.3, 0.2, 0.1, 0.05]),
        np.array([1e6, 1e6, 1e6, 1e6]),
        bare,
    )
    assert np.isnan(value[0])  # no limit_turnover_share
    assert np.isnan(value[1])  # no annual_fee
    assert value[2:] == pytest.approx([10.0, 5.0])
    order = value_order(value, np.array([0.3, 0.2, 0.1, 0.05]))
    # known values first (by value), then the unknown ones by propensity
    assert list(np.argsort(-order)) == [2, 3, 0, 1]


def test_value_ranking_and_credit_gate(fitted: PropensityModel) -> None:
    frame, _ = _rows_frame(60, seed=7)
    grades = np.array([["1", "3", None][i % 3] for i in range(len(frame) // 3) for _ in range(3)])
    scale = MasterScale.from_bands([("1", 0.01), ("2", 0.03), ("3", None)])
    ranked = rank_offers(fitted, frame, grades=grades, scale=scale)
    assert list(ranked.columns[:6]) == [
        "client_id",
        "month",
        PRODUCT,
        "propensity",
        "expected_value",
        "rank",
    ]
    # loan (financing) survives only for grade 1 (max grade 2; ungraded excluded by this model)
    loan_grades = {grades[r] for r in ranked.loc[ranked[PRODUCT] == "loan", "row"]}
    assert loan_grades == {"1"}
    assert len(ranked[ranked[PRODUCT] != "loan"]) == 2 * len(frame) // 3
    for _, offers in ranked.groupby("client_id"):
        assert list(offers["rank"]) == list(range(1, len(offers) + 1))
        assert offers["expected_value"].is_monotonic_decreasing
    assert list(credit_allows(["1", "2", "3", None], scale=scale, max_grade="2")) == [
        True,
        True,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="master scale"):
        credit_allows(["1"], scale=scale, max_grade="9")


def test_popularity_baseline_rates_by_segment_and_product() -> None:
    segments = np.array(["sme"] * 4 + ["corporate"] * 4)
    codes = np.array(["a", "a", "b", "b"] * 2)
    y = np.array([1, 0, 0, 0, 1, 1, 0, 1])
    weight = np.array([1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    base = PopularityBaseline(prior_rows=0.0).fit(segments, codes, y, weight)
    assert base.score(np.array(["sme", "corporate"]), np.array(["a", "b"])) == pytest.approx(
        [0.25, 0.5]
    )


def test_the_shipped_spec_loads() -> None:
    spec = load_cross_sell_spec(SPEC)
    assert spec.name == "rmreco-sme-corporate-cross-sell-3m"
    assert spec.gates.metric == "oot_map_at_5"
    assert "intl_share_3m" in spec.features


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["features"].append("no_such_feature"), "no_such_feature"),
        (lambda s: s["model"].update(choose="both"), "model.choose"),
        (lambda s: s["split"].update(negative_sample=0), "split.negative_sample"),
        (lambda s: s.update(colour="blue"), "colour"),
    ],
)
def test_bad_spec_is_refused_naming_the_field(tmp_path: Path, change: object, message: str) -> None:
    raw = yaml.safe_load(SPEC.read_text())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigurationError, match=message):
        load_cross_sell_spec(path)


def test_gate_on_a_ranking_metric() -> None:
    worse = decide_gate(
        0.30,
        metric="oot_map_at_5",
        min_value=0.2,
        max_drop=0.01,
        champion_value=0.35,
        champion_version="2",
    )
    assert not worse.passed
    assert "MAP@5" in worse.reason
    assert worse.metric == "oot_map_at_5"
    first = decide_gate(
        0.30,
        metric="oot_map_at_5",
        min_value=0.2,
        max_drop=0.01,
        champion_value=None,
        champion_version=None,
    )
    assert first.passed


def test_split_leaves_a_gap_so_no_adoption_labels_both_fit_and_calibration_rows() -> None:
    from rmreco.training.cross_sell_split import snapshot_months

    spec = load_cross_sell_spec(SPEC)
    bank = random_bank(n_clients=12, n_months=30, seed=0)
    horizon = spec.label.horizon_months
    split = snapshot_months(bank, horizon, spec.split.test_months, spec.split.calibration_months)
    last_data = months(30)[-1]
    assert split["test"][-1] == months(30)[-1 - horizon]  # the latest complete outcome
    assert last_data > split["test"][-1]
    assert len(split["test"]) == spec.split.test_months
    assert len(split["calibration"]) == spec.split.calibration_months

    def index(d: date) -> int:
        return d.year * 12 + d.month

    # a fit row's label window (t+1 .. t+h) ends before any calibration row's begins
    assert index(split["fit"][-1]) + horizon < index(split["calibration"][0]) + 1
    assert index(split["calibration"][-1]) < index(split["test"][0])


def test_the_sample_of_non_adoptions_does_not_depend_on_the_order_of_the_rows() -> None:
    """The builder numbers clients by first appearance; the sample is drawn by client id, so
    the same rows are kept when the history lists B before A (and in each part of a
    partitioned book, whose numbers start from 0)."""
    bank = _bank([("A", "payroll", M[5], None)])
    flipped = replace(bank, account_months=bank.account_months.iloc[::-1].reset_index(drop=True))

    def kept(inputs: FeatureInputs) -> set[tuple[str, pd.Timestamp, str]]:
        panel = build_cross_sell_panel(inputs, negative_sample=0.5, seed=7)
        ids, products = panel["client_id"].astype(str), panel[PRODUCT].astype(str)
        return set(zip(ids, panel["month"], products, strict=True))

    whole = build_cross_sell_panel(bank)
    assert 0 < len(kept(bank)) < len(whole)
    assert kept(bank) == kept(flipped)
