"""The credit-risk training job: panel, out-of-time split, fit, calibrate, evaluate, log, gate.

One run fits the LightGBM PD model and the WoE scorecard baseline on the same rows, calibrates
both on the period after fitting, evaluates both on the latest period whose outcome is complete,
logs everything to MLflow, registers the model the spec names, and moves ``champion`` only when
the gates pass.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import rmreco
from rmreco.config import Settings
from rmreco.domain.contract import TRUTH_CREDIT_PD, TRUTH_DIR
from rmreco.domain.errors import RmrecoError
from rmreco.features import FEATURE_DESCRIPTIONS, build_credit_panel
from rmreco.features.builder import CATEGORICAL_FEATURES
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import LABEL
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.credit_model import CreditRiskModel, fit_lightgbm
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import DEFAULT_GRADE, MasterScale
from rmreco.modeling.metrics import auc, credit_metrics, gains_table, grade_table
from rmreco.modeling.pyfunc import MODEL_ARTIFACT, RmrecoCreditModel, load_credit_model
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.modeling.spec import CreditRiskSpec, load_credit_risk_spec
from rmreco.training import plots
from rmreco.training.registry import (
    GateDecision,
    RegistryError,
    champion_version,
    decide_gate,
    mark_challenger,
    promote,
)
from rmreco.training.splits import Split
from rmreco.training.tracking import (
    configure_mlflow,
    ensure_experiment,
    git_commit,
    start_run,
)

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "rmreco-credit-risk"
Progress = Callable[[str], None]


class TrainingDataError(RmrecoError):
    """The data cannot support the requested training (too short a history, no defaults...)."""


@dataclass(frozen=True)
class CreditTrainingResult:
    run_id: str
    model_name: str
    version: str
    registered_kind: str
    metrics: dict[str, float]
    gate: GateDecision
    comparison: str


def holdout_clients(client_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for the clients kept out of fitting: a stable hash of the id, the same every run."""
    keys = client_ids.astype(str) + f"|{seed}"
    hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)
    return np.asarray(hashes / float(2**64) < share)


def split_out_of_time(panel: pd.DataFrame, spec: CreditRiskSpec) -> Split:
    """Fit on early snapshots of some clients; calibrate on the next period and test on the
    latest complete one, both on the other clients (``split.holdout_share``).

    Raises:
        TrainingDataError: too few labelled months, or a period without defaulters.
    """
    complete = panel[panel["label_complete"]]
    months = sorted(complete["month"].unique())
    need = spec.split.test_months + spec.split.calibration_months + 1
    if len(months) < need:
        raise TrainingDataError(
            f"the data has {len(months)} snapshot months with a complete "
            f"{spec.label.horizon_months}-month outcome; the split needs at least {need} "
            f"({spec.split.test_months} test, {spec.split.calibration_months} calibration, 1 fit)"
        )
    test_months = months[-spec.split.test_months :]
    cal_months = months[-need + 1 : -spec.split.test_months]
    fit_months = months[: -need + 1]
    held_out = holdout_clients(complete["client_id"], spec.split.holdout_share, spec.seed)
    fit = complete[
        complete["month"].isin(fit_months)
        & ~held_out
        & (complete["history_months"] >= spec.split.min_history_months)
    ]
    split = Split(
        fit=fit,
        calibration=complete[complete["month"].isin(cal_months) & held_out],
        test=complete[complete["month"].isin(test_months) & held_out],
    )
    for name, frame in (
        ("fit", split.fit),
        ("calibration", split.calibration),
        ("test", split.test),
    ):
        positives = int(frame[LABEL].sum())
        if positives == 0 or positives == len(frame):
            raise TrainingDataError(
                f"the {name} period has {len(frame)} rows and {positives} defaults; "
                "both outcomes are needed"
            )
    return split


def _oracle_auc(data: Path, test: pd.DataFrame) -> tuple[float | None, float]:
    """AUC of the synthetic bank's true PD on the test rows, and the share of rows it covers."""
    path = data / TRUTH_DIR / f"{TRUTH_CREDIT_PD}.parquet"
    if not path.exists():
        return None, 0.0
    truth = pd.read_parquet(path, columns=["client_id", "month", "pd_12m"])
    truth["client_id"] = truth["client_id"].astype(str)
    truth["month"] = pd.to_datetime(truth["month"])
    rows = test[["client_id", "month", LABEL]].merge(truth, on=["client_id", "month"], how="inner")
    coverage = len(rows) / max(len(test), 1)
    if rows[LABEL].nunique() < 2:
        return None, coverage
    return auc(rows[LABEL].to_numpy(), rows["pd_12m"].to_numpy()), coverage


def _input_example(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    example = frame[features].head(5).copy()
    for name in features:
        if name in CATEGORICAL_FEATURES:
            example[name] = example[name].astype(object).where(example[name].notna(), None)
    return example.reset_index(drop=True)


def _pip_requirements() -> list[str]:
    return [
        f"rmreco=={rmreco.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lgb.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scikit-learn=={sklearn.__version__}",
    ]


def train_credit_risk(
    data: Path,
    *,
    spec_path: Path,
    settings: Settings,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    on_step: Progress | None = None,
) -> CreditTrainingResult:
    """Run the whole job; see the module docstring.

    Raises:
        ConfigurationError: the spec is invalid.
        DataContractError: the data folder breaks the contract.
        TrainingDataError: the data cannot support the split.
    """
    step = on_step or (lambda message: log.info(message))
    spec = load_credit_risk_spec(spec_path)
    step("reading and validating the data")
    inputs, validated = read_feature_inputs(data)
    step("building point-in-time features and labels")
    panel = build_credit_panel(
        inputs,
        horizon_months=spec.label.horizon_months,
        label_events=[str(e) for e in spec.label.events],
        cure_months=spec.label.cure_months,
        financials_lag_months=spec.financials_lag_months,
    )
    panel = panel[panel["segment"].astype(str).isin([str(s) for s in spec.segments])]
    split = split_out_of_time(panel, spec)

    features = spec.feature_names
    encoder = FeatureEncoder.fit(split.fit, features)
    X_fit, X_cal, X_test = (
        encoder.transform(f) for f in (split.fit, split.calibration, split.test)
    )
    y_fit, y_cal, y_test = (
        f[LABEL].to_numpy(dtype=int) for f in (split.fit, split.calibration, split.test)
    )
    scale = MasterScale.from_bands(spec.master_scale_bands)
    metadata = {
        "name": spec.name,
        "horizon_months": spec.label.horizon_months,
        "segments": [str(s) for s in spec.segments],
        "spec_fingerprint": spec.fingerprint(),
        **split.describe(),
    }

    step(f"fitting LightGBM on {len(X_fit):,} snapshots")
    booster = fit_lightgbm(
        X_fit,
        y_fit,
        X_cal,
        y_cal,
        encoder=encoder,
        monotone=[f.direction for f in spec.features],
        params={"num_threads": settings.resolved_threads, **spec.model.lightgbm.params},
        num_boost_round=spec.model.lightgbm.num_boost_round,
        early_stopping_rounds=spec.model.lightgbm.early_stopping_rounds,
        seed=spec.seed,
    )
    gbm = CreditRiskModel(
        kind="lightgbm",
        encoder=encoder,
        booster=booster,
        scale=scale,
        calibrator=Calibrator.fit(
            np.asarray(booster.predict(X_cal, raw_score=True)), y_cal, spec.model.calibration
        ),
        top_reasons=spec.reasons.top,
        metadata=metadata,
    )
    step("fitting the scorecard baseline")
    card = WoeScorecard(
        bins=spec.model.scorecard.bins, C=spec.model.scorecard.C, random_state=spec.seed
    ).fit(X_fit, y_fit, encoder.categorical_indices)
    scorecard = CreditRiskModel(
        kind="scorecard",
        encoder=encoder,
        scorecard=card,
        scale=scale,
        calibrator=Calibrator.fit(card.raw_score(X_cal), y_cal, spec.model.calibration),
        top_reasons=spec.reasons.top,
        metadata=metadata,
    )

    step("evaluating on the out-of-time test window")
    pd_gbm, pd_card = gbm.predict_pd(X_test), scorecard.predict_pd(X_test)
    chosen = gbm if spec.model.registered == "lightgbm" else scorecard
    pd_chosen = pd_gbm if chosen is gbm else pd_card
    other_pd, other_name = (pd_card, "scorecard") if chosen is gbm else (pd_gbm, "lightgbm")
    metrics = credit_metrics(y_test, pd_chosen, prefix="oot_")
    metrics.update(
        {
            f"baseline_{k}": v
            for k, v in credit_metrics(y_test, other_pd, prefix="oot_").items()
            if k in ("oot_auc", "oot_gini", "oot_ks", "oot_brier", "oot_logloss")
        }
    )
    metrics["lightgbm_oot_auc"] = auc(y_test, pd_gbm)
    metrics["scorecard_oot_auc"] = auc(y_test, pd_card)
    metrics["calibration_auc"] = auc(y_cal, chosen.predict_pd(X_cal))
    metrics["best_iteration"] = float(booster.best_iteration or booster.current_iteration())
    oracle, coverage = _oracle_auc(data, split.test)
    if oracle is not None:
        metrics["oracle_oot_auc"] = oracle
        metrics["oracle_coverage"] = coverage
    comparison = _comparison(metrics, spec.model.registered, other_name)

    settings_uri = configure_mlflow(settings, tracking_uri)
    experiment_id = ensure_experiment(experiment, settings)
    client = MlflowClient()
    with start_run(experiment_id, f"{spec.name} {split.describe()['test_period']}") as run:
        step("logging the run to MLflow")
        mlflow.set_tags(
            {
                "rmreco.job": "train_credit_risk",
                "rmreco.version": rmreco.__version__,
                "git_commit": git_commit(),
                "data_fingerprint": validated.fingerprint,
                "data_dir": str(Path(data).resolve()),
                "spec_fingerprint": spec.fingerprint(),
                "registered_kind": spec.model.registered,
                "comparison": comparison,
            }
        )
        mlflow.log_params(
            {
                "seed": spec.seed,
                "horizon_months": spec.label.horizon_months,
                "segments": ",".join(str(s) for s in spec.segments),
                "n_features": len(features),
                "registered": spec.model.registered,
                "calibration": spec.model.calibration,
                "rows_fit": len(split.fit),
                "rows_calibration": len(split.calibration),
                "rows_test": len(split.test),
                **split.describe(),
                **{f"lgb_{k}": v for k, v in spec.model.lightgbm.params.items()},
                "lgb_num_boost_round": spec.model.lightgbm.num_boost_round,
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(spec.model_dump(mode="json"), "spec/resolved_spec.json")
        mlflow.log_artifact(str(spec_path), "spec")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            tables = _log_charts_and_tables(
                folder, gbm, chosen, X_test, y_test, pd_chosen, pd_gbm, pd_card, features, scale
            )
            step("registering the model")
            model_dir = chosen.save(folder / MODEL_ARTIFACT)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RmrecoCreditModel(),
                artifacts={MODEL_ARTIFACT: str(model_dir)},
                signature=infer_signature(
                    _input_example(split.test, features),
                    pd.DataFrame({"pd_12m": [0.01], "grade": ["5"], "reasons": ["[]"]}),
                ),
                input_example=_input_example(split.test, features),
                pip_requirements=_pip_requirements(),
                registered_model_name=spec.name,
                metadata={"rmreco_kind": "credit_risk", **{k: str(v) for k, v in metadata.items()}},
            )
            version = str(info.registered_model_version)
            step("applying the promotion gates")
            gate = _gate(client, spec, version, split.test, y_test, metrics["oot_auc"])
            if gate.champion_value is not None:
                mlflow.log_metric("champion_oot_auc", gate.champion_value)
            mlflow.set_tags(
                {
                    "gate": gate.reason,
                    "gate_passed": str(gate.passed),
                    "registered_version": version,
                }
            )
            card_text = _model_card(
                spec, validated.fingerprint, data, split, metrics, tables, gate, version, comparison
            )
            (folder / "model_card.md").write_text(card_text, encoding="utf-8")
            mlflow.log_artifact(str(folder / "model_card.md"))
        if gate.passed:
            promote(client, spec.name, version, reason=gate.reason)
        else:
            mark_challenger(client, spec.name, version, reason=gate.reason)
        log.info("run %s logged to %s", run.info.run_id, settings_uri)
        return CreditTrainingResult(
            run_id=run.info.run_id,
            model_name=spec.name,
            version=version,
            registered_kind=spec.model.registered,
            metrics=metrics,
            gate=gate,
            comparison=comparison,
        )


@dataclass(frozen=True)
class CreditEvaluation:
    model_version: str
    test_period: str
    rows: int
    metrics: dict[str, float]


def evaluate_credit_model(
    data: Path,
    *,
    spec_path: Path,
    settings: Settings,
    tracking_uri: str | None = None,
    version: str | None = None,
) -> CreditEvaluation:
    """Score another bank's (or a later period's) test window with a registered version.

    The window is the one training would test on (the spec's latest months, every client); the
    result says how the
    model holds up on data it never saw: a backtest, or a check that it carries to another
    population. Reads the registry, writes nothing.

    Raises:
        ConfigurationError, DataContractError, TrainingDataError: as for training.
        RegistryError: no such version, or no champion when ``version`` is None.
    """
    spec = load_credit_risk_spec(spec_path)
    inputs, _ = read_feature_inputs(data)
    panel = build_credit_panel(
        inputs,
        horizon_months=spec.label.horizon_months,
        label_events=[str(e) for e in spec.label.events],
        cure_months=spec.label.cure_months,
        financials_lag_months=spec.financials_lag_months,
    )
    panel = panel[panel["segment"].astype(str).isin([str(s) for s in spec.segments])]
    # another bank's clients (or later data) were never fitted on: every client counts
    complete = panel[panel["label_complete"]]
    months = sorted(complete["month"].unique())
    if len(months) < spec.split.test_months:
        raise TrainingDataError(
            f"the data has {len(months)} snapshot months with a complete outcome; the test "
            f"window needs {spec.split.test_months}"
        )
    test = complete[complete["month"].isin(months[-spec.split.test_months :])]
    configure_mlflow(settings, tracking_uri)
    client = MlflowClient()
    chosen = version or champion_version(client, spec.name)
    if chosen is None:
        raise RegistryError(f"model {spec.name!r} has no champion to evaluate")
    try:
        model = load_credit_model(f"models:/{spec.name}/{chosen}")
    except MlflowException as exc:
        raise RegistryError(
            f"model {spec.name!r} version {chosen} could not be loaded: {exc}"
        ) from None
    y = test[LABEL].to_numpy(dtype=int)
    metrics = credit_metrics(y, model.predict(test, with_reasons=False).pd_12m, prefix="oot_")
    oracle, coverage = _oracle_auc(data, test)
    if oracle is not None:
        metrics["oracle_oot_auc"] = oracle
        metrics["oracle_coverage"] = coverage
    return CreditEvaluation(
        model_version=chosen,
        test_period=Split(test, test, test).describe()["test_period"],
        rows=len(test),
        metrics=metrics,
    )


def _comparison(metrics: dict[str, float], registered: str, other: str) -> str:
    gbm, card = metrics["lightgbm_oot_auc"], metrics["scorecard_oot_auc"]
    better = "lightgbm" if gbm >= card else "scorecard"
    text = f"out-of-time AUC: lightgbm {gbm:.4f}, scorecard {card:.4f}; {better} is better"
    if better != registered:
        text += f"; the spec registers {registered}: consider model.registered: {better}"
    return text


def _gate(
    client: MlflowClient,
    spec: CreditRiskSpec,
    version: str,
    test: pd.DataFrame,
    y_test: np.ndarray,
    challenger_auc: float,
) -> GateDecision:
    current = champion_version(client, spec.name)
    if current is None or current == version:
        return decide_gate(
            challenger_auc,
            metric="oot_auc",
            min_value=spec.gates.min_auc,
            max_drop=spec.gates.max_auc_drop,
            champion_value=None,
            champion_version=None,
        )
    try:
        champion = load_credit_model(f"models:/{spec.name}/{current}")
        champion_auc = auc(y_test, champion.predict(test, with_reasons=False).pd_12m)
        error = None
    except (MlflowException, ValueError, RmrecoError) as exc:
        champion_auc, error = None, str(exc)
    return decide_gate(
        challenger_auc,
        metric="oot_auc",
        min_value=spec.gates.min_auc,
        max_drop=spec.gates.max_auc_drop,
        champion_value=champion_auc,
        champion_version=current,
        champion_error=error,
    )


def _log_charts_and_tables(
    folder: Path,
    gbm: CreditRiskModel,
    chosen: CreditRiskModel,
    X_test: np.ndarray,
    y_test: np.ndarray,
    pd_chosen: np.ndarray,
    pd_gbm: np.ndarray,
    pd_card: np.ndarray,
    features: list[str],
    scale: MasterScale,
) -> dict[str, pd.DataFrame]:
    grades = scale.grade(pd_chosen)
    by_grade = grade_table(y_test, pd_chosen, grades, [*scale.grades, DEFAULT_GRADE])
    gains = {"lightgbm": gains_table(y_test, pd_gbm), "scorecard": gains_table(y_test, pd_card)}
    assert gbm.booster is not None
    importance = pd.Series(
        gbm.booster.feature_importance(importance_type="gain"), index=features, name="gain"
    )
    sample = np.random.default_rng(0).choice(
        len(X_test), size=min(20000, len(X_test)), replace=False
    )
    contrib = gbm.contributions(X_test[sample])[:, :-1]
    mean_shap = pd.Series(np.abs(contrib).mean(axis=0), index=features, name="mean_abs_shap")
    charts = [
        plots.roc_chart(y_test, {"lightgbm": pd_gbm, "scorecard": pd_card}, folder / "roc.png"),
        plots.calibration_by_grade_chart(by_grade, folder / "calibration_by_grade.png"),
        plots.gains_chart(gains, folder / "gains.png"),
        plots.bar_chart(
            importance,
            "LightGBM feature importance",
            "total gain",
            folder / "feature_importance.png",
        ),
        plots.shap_summary_chart(contrib, X_test[sample], features, folder / "shap_summary.png"),
    ]
    for chart in charts:
        mlflow.log_artifact(str(chart), "charts")
    tables = {
        "grade_table": by_grade,
        "gains_lightgbm": gains["lightgbm"],
        "feature_importance": importance.sort_values(ascending=False).to_frame(),
        "mean_abs_shap": mean_shap.sort_values(ascending=False).to_frame(),
    }
    for name, table in tables.items():
        path = folder / f"{name}.csv"
        table.to_csv(path)
        mlflow.log_artifact(str(path), "tables")
    return tables


def _model_card(
    spec: CreditRiskSpec,
    fingerprint: str,
    data: Path,
    split: Split,
    metrics: dict[str, float],
    tables: dict[str, pd.DataFrame],
    gate: GateDecision,
    version: str,
    comparison: str,
) -> str:
    periods = split.describe()
    shown = [
        "oot_auc",
        "oot_gini",
        "oot_ks",
        "oot_brier",
        "oot_logloss",
        "oot_mean_pd",
        "oot_default_rate",
        "baseline_oot_auc",
        "oracle_oot_auc",
        "calibration_auc",
    ]
    metric_rows = "\n".join(f"| {k} | {metrics[k]:.4f} |" for k in shown if k in metrics)
    grade_rows = "\n".join(
        f"| {g} | {int(r.clients):,} | {r.mean_pd:.4f} | {r.default_rate:.4f} |"
        for g, r in tables["grade_table"].iterrows()
    )
    top = tables["mean_abs_shap"].head(10)
    driver_rows = "\n".join(
        f"| {name} | {FEATURE_DESCRIPTIONS.get(str(name), name)} | {row.mean_abs_shap:.4f} |"
        for name, row in top.iterrows()
    )
    return f"""# Model card: {spec.name} v{version}

{spec.description}

## Intended use
Estimate the {spec.label.horizon_months}-month probability of default of performing clients of
the segments {", ".join(str(s) for s in spec.segments)}, for relationship managers' financing
conversations and credit officers' reviews, next to (not instead of) credit judgement. Not for
clients already in default, for segments it was not trained on, or for automated decisions
without the policy rules and a human in the loop.

## Data
- folder: `{data}`; content fingerprint `{fingerprint[:16]}`
- fit period {periods["fit_period"]} ({len(split.fit):,} snapshots), calibration period
  {periods["calibration_period"]} ({len(split.calibration):,}), out-of-time test period
  {periods["test_period"]} ({len(split.test):,})
- label: a {", ".join(str(e) for e in spec.label.events)} event in the
  {spec.label.horizon_months} months after the snapshot month; clients in default at the
  snapshot are excluded

## Model
{spec.model.registered} ({comparison}); calibration: {spec.model.calibration} on the
calibration period; {len(spec.features)} features, monotone where the direction is known.

## Out-of-time metrics
| metric | value |
| --- | --- |
{metric_rows}

## Calibration by grade (test period)
| grade | clients | mean PD | default rate |
| --- | --- | --- | --- |
{grade_rows}

## Main drivers (mean absolute TreeSHAP contribution)
| feature | meaning | mean abs contribution |
| --- | --- | --- |
{driver_rows}

## Promotion
{gate.reason}

## Limits
- Trained on the account behaviour of one bank over one period; a change of products, of
  policy or of the economy moves default rates, so recalibrate when observed rates drift.
- Short histories (recently onboarded clients) have fewer features; their scores lean on
  firmographics and are less certain.
- Reasons are the features that raised the score most (TreeSHAP), not causes.
- Specification: {json.dumps(spec.name)} fingerprint {spec.fingerprint()}.
"""


def describe_result(result: CreditTrainingResult) -> dict[str, Any]:
    """A plain summary for the CLI and the MLproject log."""
    return {
        "run_id": result.run_id,
        "model": result.model_name,
        "version": result.version,
        "promoted": result.gate.passed,
        "gate": result.gate.reason,
        "comparison": result.comparison,
        **{k: round(v, 4) for k, v in result.metrics.items()},
    }
