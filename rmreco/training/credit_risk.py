"""The credit-risk training job: panel, split (out-of-time, or a stratified hold-out by client
for data with one outcome window: ``split.kind``), fit, evaluate, report.

One run fits the LightGBM PD model and the WoE scorecard baseline on the same rows
(:class:`~rmreco.modeling.credit_estimator.CreditRiskEstimator`), calibrates both on the period
after fitting, evaluates both on the latest period whose outcome is complete, validates the
registered model there (:func:`rmreco.training.validation.validate_credit`: intervals,
calibration per grade, stability, monotonicity, the scorecard's tables), and hands it to
:func:`rmreco.training.run.record_training`, which logs the run and the report, registers the
model and moves ``champion`` only when the gates pass (a violated monotone constraint vetoes).

Given a Dask client, the panel, the split and LightGBM's fit run on the cluster over a
client-partitioned bank (:mod:`rmreco.training.distributed`): the same rows, the same functions;
everything after the fit is the code below.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rmreco.config import Settings
from rmreco.domain.contract import TRUTH_CREDIT_PD, TRUTH_DIR
from rmreco.features import FEATURE_DESCRIPTIONS
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import LABEL
from rmreco.modeling.boosting import HeldFitSet
from rmreco.modeling.credit_estimator import CreditRiskEstimator
from rmreco.modeling.credit_model import CreditRiskModel, pd_column
from rmreco.modeling.metrics import auc, credit_metrics, gains_table, score_psi
from rmreco.modeling.pyfunc import RmrecoModel
from rmreco.modeling.spec import CreditRiskSpec, FeatureSpec, load_credit_risk_spec
from rmreco.training import distributed, plots, run
from rmreco.training.credit_split import build_split as build_split
from rmreco.training.credit_split import holdout_clients as holdout_clients
from rmreco.training.credit_split import split_by_client as split_by_client
from rmreco.training.credit_split import split_credit_panel as split_credit_panel
from rmreco.training.credit_split import split_out_of_time as split_out_of_time
from rmreco.training.data_features import FeatureChoice, choose_features
from rmreco.training.registry import GateDecision, constant_score_veto, no_split_veto
from rmreco.training.splits import Split, TrainingDataError
from rmreco.training.validation import (
    CreditValidation,
    TestWindow,
    credit_card_section,
    monotonicity_table,
    psi_against,
    split_window,
    validate_credit,
)

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "rmreco-credit-risk"


def _oracle_auc(data: Path, test: pd.DataFrame) -> tuple[float | None, float]:
    """AUC of the synthetic bank's true PD on the test rows, and the share of rows it covers."""
    path = data / TRUTH_DIR / f"{TRUTH_CREDIT_PD}.parquet"
    if not path.exists():  # a client-partitioned folder holds the truth in parts
        path = data / TRUTH_DIR / TRUTH_CREDIT_PD
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


def train_credit_risk(
    data: Path,
    *,
    spec_path: Path,
    settings: Settings,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    on_step: run.Progress | None = None,
    client: Client | None = None,
) -> run.TrainingResult:
    """Run the whole job; see the module docstring. With ``client`` (a Dask client), ``data``
    must be client-partitioned: the panel, the split and LightGBM's fit run on the cluster
    (:mod:`rmreco.training.distributed`), everything after the fit as in one process.

    Raises:
        ConfigurationError: the spec is invalid.
        DataContractError: the data folder breaks the contract (or, with ``client``, is not
            client-partitioned).
        TrainingDataError: the data cannot support the split.
    """
    step = on_step or (lambda message: log.info(message))
    spec = load_credit_risk_spec(spec_path)
    held: HeldFitSet | None = None
    if client is None:
        step("reading and validating the data")
        inputs, validated = read_feature_inputs(data)
        step("building point-in-time features and labels")
        split = build_split(inputs, spec)
        extra_columns, currency, fingerprint = (
            inputs.extra_columns,
            validated.currency,
            validated.fingerprint,
        )
        trained_on = "one process"
    else:
        step("reading the parts and building their features and labels on the cluster")
        book = distributed.credit_panels(client, data, spec)
        step("splitting the parts on the cluster")
        on_cluster = distributed.credit_split(client, book, spec)
        split, held = on_cluster.split, distributed.held_fit_set(client, on_cluster)
        extra_columns, currency, fingerprint = book.extra_columns, book.currency, book.fingerprint
        trained_on = on_cluster.trained_on()
        if split.is_fit_sampled:
            step(
                f"note: the scorecard, the choice of features and the stability profile read "
                f"a sample of {len(split.fit):,} of the {split.fit_rows:,} fit rows (whole "
                f"clients); LightGBM reads them all"
            )
    choice = choose_features(
        spec.feature_names, split.fit, extra_columns, bank_columns=spec.bank_columns
    )
    spec = fitted_spec(spec, choice)
    for note in choice.notes():
        step(f"note: {note}")
    step(f"fitting LightGBM and the scorecard on {split.fit_rows:,} snapshots ({trained_on})")
    estimator = CreditRiskEstimator(spec, threads=settings.resolved_threads).fit(
        split.fit,
        split.calibration,
        # the data's currency, named after amounts in the reasons of every path that does not
        # pass its own (training's test scores, the registered pyfunc model)
        metadata={
            **split.describe(),
            **_windows(spec),
            "currency": currency or settings.currency,
            "trained_on": trained_on,
        },
        held=held,
    )
    for warning in estimator.warnings_:
        log.warning(warning)
        step(f"warning: {warning}")
    step("evaluating on the out-of-time test window")
    if spec.model.registered == "best":
        estimator.register(_better_kind(estimator, split.test))
    metrics = _evaluate(estimator, split, data)
    model, test = estimator.model_, split.test
    y_test = test[LABEL].to_numpy(dtype=int)
    step("validating: intervals, calibration per grade, stability, monotonicity")
    validation = _validate(estimator, split, spec)
    metrics.update(validation.metrics())
    vetoes = degenerate_vetoes(estimator, split)
    if validation.veto:
        vetoes.append(validation.veto)
    comparison = _comparison(metrics, spec.model.registered, estimator.warnings_)
    trained = run.TrainedModel(
        source=run.Source("train_credit_risk", spec, spec_path, data, fingerprint),
        model=model,
        test=test,
        registered_kind=model.kind,
        comparison=comparison,
        metrics=metrics,
        params=_params(spec, split, estimator)
        | _choice_params(choice)
        | _where_params(trained_on, held),
        output_example=pd.DataFrame(
            {pd_column(spec.label.horizon_months): [0.01], "grade": ["5"], "reasons": ["[]"]}
        ),
        gate=run.Gate("oot_auc", spec.gates.min_auc, spec.gates.max_auc_drop),
        score_on_test=lambda champion: _auc_of(champion, test, y_test),
        write_report=lambda folder, champion: _report(
            folder, estimator, test, validation, champion
        ),
        model_card=lambda report, gate, version: _model_card(
            spec,
            choice,
            fingerprint,
            data,
            split,
            metrics,
            report,
            gate,
            version,
            validation,
            estimator,
        ),
        vetoes=tuple(vetoes),
    )
    return run.record_training(
        trained, settings=settings, tracking_uri=tracking_uri, experiment=experiment, step=step
    )


def _validate(
    estimator: CreditRiskEstimator, split: Split, spec: CreditRiskSpec
) -> CreditValidation:
    """The validation of the registered model on the test window (see ``validation``)."""
    scorecard = estimator.scorecard_.scorecard
    assert scorecard is not None  # a scorecard model always has one
    window = validation_window(split, spec)
    return validate_credit(
        estimator.model_, scorecard, split.fit, split.test, LABEL, spec=spec, window=window
    )


def validation_window(split: Split, spec: CreditRiskSpec) -> TestWindow:
    """What the report and the model card say the test figures are measured on: the
    out-of-time window, or (``split.kind: client``) the weaker stratified hold-out."""
    return split_window(
        split.test,
        split.describe()["test_period"],
        by_client=spec.split.kind == "client",
        holdout_share=spec.split.holdout_share,
        seed=spec.seed,
        rows="",
        strata="defaulters and non-defaulters",
        out_of_time=f"clients never fitted on ({spec.split.holdout_share:.0%} of clients, held "
        "out by a hash of their id)",
    )


def _better_kind(estimator: CreditRiskEstimator, test: pd.DataFrame) -> str:
    """``lightgbm`` or ``scorecard``: the one with the better out-of-time AUC on ``test`` (a
    tie goes to the scorecard, the simpler model): what ``registered: best`` registers."""
    y = test[LABEL].to_numpy(dtype=int)
    gbm = auc(y, estimator.lightgbm_.predict(test, with_reasons=False).pd)
    card = auc(y, estimator.scorecard_.predict(test, with_reasons=False).pd)
    return "lightgbm" if gbm > card else "scorecard"


def degenerate_vetoes(estimator: CreditRiskEstimator, split: Split) -> list[str]:
    """The gate's refusals of a degenerate registered model: a LightGBM model without a single
    split, or PDs that do not vary over the test window (see
    :func:`rmreco.training.registry.constant_score_veto`)."""
    vetoes = []
    model = estimator.model_
    if model.kind == "lightgbm":
        lgb_spec = estimator.spec.model.lightgbm
        no_split = no_split_veto(
            estimator.has_split_,
            "the LightGBM model",
            lgb_spec.min_data_in_leaf(split.fit_rows),
            split.fit_rows,
        )
        if no_split:
            vetoes.append(no_split)
    constant = constant_score_veto(estimator.predict_pd(split.test), f"the {model.kind} model")
    if constant and not vetoes:  # a model without a split is constant too: say it once
        vetoes.append(constant)
    return vetoes


def _windows(spec: CreditRiskSpec) -> dict[str, int | str]:
    """The split settings a backtest of the model reuses (``rmreco evaluate``)."""
    return {"test_months": spec.split.test_months, "split_kind": spec.split.kind}


def _params(
    spec: CreditRiskSpec, split: Split, estimator: CreditRiskEstimator
) -> dict[str, object]:
    """What the run logs besides the model's feature configuration (``run`` logs that);
    LightGBM's parameters as fitted (``min_data_in_leaf`` resolved for the fit set)."""
    lgb_spec = spec.model.lightgbm
    shares = (
        {
            "lgb_min_data_in_leaf_share": lgb_spec.min_data_in_leaf_share,
            "lgb_min_data_in_leaf_floor": lgb_spec.min_data_in_leaf_floor,
        }
        if lgb_spec.min_data_in_leaf_share is not None
        else {}
    )
    return {
        "registered": estimator.model_.kind,
        "registered_rule": spec.model.registered,
        "calibration": spec.model.calibration,
        "rows_fit": split.fit_rows,
        "scorecard_fit_rows": estimator.scorecard_rows_,
        "rows_calibration": len(split.calibration),
        "rows_test": len(split.test),
        **split.describe(),
        **{f"lgb_{k}": v for k, v in estimator.lightgbm_params_.items()},
        "lgb_min_data_in_leaf": lgb_spec.min_data_in_leaf(split.fit_rows),
        **shares,
        "lgb_num_boost_round": lgb_spec.num_boost_round,
    }


def _auc_of(model: RmrecoModel, test: pd.DataFrame, y: np.ndarray) -> float:
    if not isinstance(model, CreditRiskModel):
        raise ValueError("the champion is not a credit-risk model")
    return auc(y, model.predict(test, with_reasons=False).pd)


def _evaluate(estimator: CreditRiskEstimator, split: Split, data: Path) -> dict[str, float]:
    """Out-of-time metrics of the registered model and its baseline on the test window."""
    test, cal = split.test, split.calibration
    y_test, y_cal = test[LABEL].to_numpy(dtype=int), cal[LABEL].to_numpy(dtype=int)
    pd_model = estimator.predict_pd(test)
    pd_base = np.asarray(estimator.baseline_.predict(test, with_reasons=False).pd)
    metrics = credit_metrics(y_test, pd_model, prefix="oot_")
    metrics.update(
        {
            f"baseline_{k}": v
            for k, v in credit_metrics(y_test, pd_base, prefix="oot_").items()
            if k in ("oot_auc", "oot_gini", "oot_ks", "oot_brier", "oot_logloss")
        }
    )
    by_kind = {estimator.model_.kind: pd_model, estimator.baseline_.kind: pd_base}
    metrics["lightgbm_oot_auc"] = auc(y_test, by_kind["lightgbm"])
    metrics["scorecard_oot_auc"] = auc(y_test, by_kind["scorecard"])
    metrics["calibration_auc"] = auc(y_cal, estimator.predict_pd(cal))
    metrics["best_iteration"] = float(estimator.best_iteration_)
    oracle, coverage = _oracle_auc(data, test)
    if oracle is not None:
        metrics["oracle_oot_auc"] = oracle
        metrics["oracle_coverage"] = coverage
    return metrics


@dataclass(frozen=True)
class CreditEvaluation:
    model_version: str
    test_period: str
    rows: int
    metrics: dict[str, float]


def evaluate_credit_model(
    data: Path,
    *,
    model_name: str,
    settings: Settings,
    tracking_uri: str | None = None,
    version: str | None = None,
    test_months: int | None = None,
    on_step: run.Progress | None = None,
) -> CreditEvaluation:
    """Score another bank's (or a later period's) test window with a registered version;
    ``on_step`` is told each step as it starts.

    The panel is built with the model's own feature configuration (horizon, label events,
    cure months, financials lag, segments); the window is the latest ``test_months`` (default:
    the model's own test window; every month for a model trained on one outcome window, with
    ``split.kind: client``) whose outcome is complete, every client. The result says how
    the model holds up on data it never saw: a backtest, or a check that it carries to another
    population. Reads the registry, writes nothing.

    Raises:
        DataContractError, TrainingDataError: as for training.
        RegistryError: no such version, or no champion when ``version`` is None.
    """
    step = on_step or (lambda message: None)
    step(f"loading {model_name} {f'v{version}' if version else 'champion'}")
    model, chosen = run.load_registered(
        model_name, version, settings=settings, tracking_uri=tracking_uri
    )
    if not isinstance(model, CreditRiskModel):
        raise TrainingDataError(f"model {model_name!r} is not a credit-risk model")
    step(f"reading and validating {data}")
    inputs, _ = read_feature_inputs(data)
    step("building point-in-time features and labels with the version's settings")
    panel = model.config.credit_panel(inputs)
    # another bank's clients (or later data) were never fitted on: every client counts
    complete = panel[panel["label_complete"]]
    months = sorted(complete["month"].unique())
    if test_months is None and model.metadata.get("split_kind") == "client":
        # trained on one outcome window: the data to evaluate on has one too, all of it tested
        window = max(len(months), 1)
    else:
        window = test_months or int(model.metadata.get("test_months", 6))
    if len(months) < window:
        raise TrainingDataError(
            f"the data has {len(months)} snapshot months with a complete "
            f"{model.config.horizon_months}-month outcome; the test window needs {window}"
        )
    test = complete[complete["month"].isin(months[-window:])]
    step(f"scoring {len(test):,} snapshots of the test window")
    y = test[LABEL].to_numpy(dtype=int)
    metrics = credit_metrics(y, model.predict(test, with_reasons=False).pd, prefix="oot_")
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


def _comparison(metrics: dict[str, float], registered: str, warnings: Sequence[str] = ()) -> str:
    """The two models' out-of-time AUCs and which is registered (``registered``: the spec's
    rule), then the run's warnings, one a line."""
    gbm, card = metrics["lightgbm_oot_auc"], metrics["scorecard_oot_auc"]
    better = "lightgbm" if gbm > card else "scorecard"
    text = f"out-of-time AUC: lightgbm {gbm:.4f}, scorecard {card:.4f}; {better} is better"
    if registered == "best":
        text += f"; registered: {better} (model.registered: best)"
    elif better != registered:
        text += f"; the spec registers {registered}: consider model.registered: best"
    return text + "".join(f"\nwarning: {w}" for w in warnings)


def _report(
    folder: Path,
    estimator: CreditRiskEstimator,
    test: pd.DataFrame,
    validation: CreditValidation,
    champion: run.ChampionProfile,
) -> run.Report:
    """Charts, tables, the validation documents and the test window's scores of a run."""
    chosen, gbm = estimator.model_, estimator.lightgbm_
    X_test = chosen.encoder.transform(test)
    y_test = test[LABEL].to_numpy(dtype=int)
    scored = chosen.predict_matrix(X_test)
    pd_chosen = scored.pd
    pd_gbm = gbm.predict_pd(X_test)
    pd_card = estimator.scorecard_.predict_pd(X_test)
    features = list(chosen.features)
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
    psi = psi_against(validation.psi, champion.profile, test, pd_chosen)
    d = validation.discrimination
    charts = [
        plots.roc_chart(y_test, {"lightgbm": pd_gbm, "scorecard": pd_card}, folder / "roc.png"),
        plots.calibration_by_grade_chart(
            validation.by_grade, folder / "calibration_by_grade.png", "out-of-time test window"
        ),
        plots.gains_chart(gains, folder / "gains.png"),
        plots.bar_chart(
            importance,
            "LightGBM feature importance",
            "total gain",
            folder / "feature_importance.png",
        ),
        plots.shap_summary_chart(contrib, X_test[sample], features, folder / "shap_summary.png"),
        plots.bootstrap_chart(
            d.replicates,
            {k: (iv.value, iv.low, iv.high) for k, iv in d.intervals().items()},
            folder / "bootstrap.png",
        ),
        plots.psi_chart(
            psi,
            {"psi": "fit window", "champion_psi": champion.note}
            if champion.profile is not None
            else {"psi": "fit window"},
            folder / "psi.png",
        ),
        plots.monotonicity_chart(validation.sweeps, folder / "monotonicity.png"),
    ]
    scores = pd.DataFrame(
        {
            "client_id": test["client_id"].astype(str).to_numpy(),
            "month": pd.to_datetime(test["month"]).to_numpy(),
            scored.pd_column: pd_chosen,
            "grade": scored.grade.astype(str),
            "reasons": [json.dumps([r.to_dict() for r in row]) for row in scored.reasons],
        }
    )
    tables = {
        "grade_table": validation.by_grade,
        "discrimination_ci": d.table(),
        "psi": psi,
        "monotonicity": monotonicity_table(validation.sweeps),
        "scorecard_bins": validation.bins,
        "scorecard_points": validation.points,
        "gains_lightgbm": gains["lightgbm"],
        "feature_importance": importance.sort_values(ascending=False).to_frame(),
        "mean_abs_shap": mean_shap.sort_values(ascending=False).to_frame(),
    }
    document = {
        **validation.document(),
        "champion": {"version": champion.version, "note": champion.note},
    }
    metrics = {}
    if champion.profile is not None:
        metrics["psi_champion_score"] = score_psi(psi, "champion_psi")
    return run.Report.write(
        folder,
        charts=charts,
        tables=tables,
        scores=scores,
        documents={"validation.json": document, run.REFERENCE_PROFILE: validation.reference},
        metrics=metrics,
    )


def fitted_spec(spec: CreditRiskSpec, choice: FeatureChoice) -> CreditRiskSpec:
    """``spec`` with the features this run fits on (see :mod:`rmreco.training.data_features`):
    the model carries it, so scoring computes exactly these."""
    listed = {f.name: f for f in spec.features}
    features = tuple(listed.get(name) or FeatureSpec(name=name) for name in choice.used)
    return spec.model_copy(update={"features": features})


def _where_params(trained_on: str, held: HeldFitSet | None) -> dict[str, object]:
    """Where the run was trained; on a cluster, what LightGBM's data-parallel learner changes
    (it supports basic monotone constraints only)."""
    params: dict[str, object] = {"trained_on": trained_on}
    if held is not None:
        params["lgb_monotone_constraints_method"] = distributed.CLUSTER_MONOTONE_METHOD
    return params


def _choice_params(choice: FeatureChoice) -> dict[str, object]:
    return {
        "features_left_out": ", ".join(choice.left_out) or "none",
        "features_added": ", ".join(choice.added) or "none",
    }


def _model_card(
    spec: CreditRiskSpec,
    choice: FeatureChoice,
    fingerprint: str,
    data: Path,
    split: Split,
    metrics: dict[str, float],
    report: run.Report,
    gate: GateDecision,
    version: str,
    validation: CreditValidation,
    estimator: CreditRiskEstimator,
) -> str:
    tables = report.tables
    champion = report.documents["validation.json"]["champion"]
    has_champion = bool(tables["psi"]["champion_psi"].notna().any())
    section = credit_card_section(validation, tables["psi"], champion["note"], has_champion)
    comparison = _comparison(metrics, spec.model.registered)
    periods = split.describe()
    test_name = (
        "out-of-time test"
        if validation.window.kind == "out_of_time"
        else "stratified hold-out test"
    )
    warnings = "".join(f"- {w}\n" for w in estimator.warnings_) or "- none\n"
    feature_notes = "".join(f"- {n}\n" for n in choice.notes()) or "- every feature of the spec\n"
    min_leaf = estimator.model_.metadata.get("min_data_in_leaf")
    sampled = (
        f"The scorecard, the choice of features and the fit window's stability profile read "
        f"{estimator.scorecard_rows_:,} of the {split.fit_rows:,} fit rows (whole clients, by a "
        f"hash of their id; at most {distributed.SAMPLE_ROWS:,}); LightGBM read them all, on a "
        "Dask cluster.\n"
        if split.is_fit_sampled
        else ""
    )
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
- fit period {periods["fit_period"]} ({split.fit_rows:,} snapshots), calibration period
  {periods["calibration_period"]} ({len(split.calibration):,}), {test_name} period
  {periods["test_period"]} ({len(split.test):,}); split: {spec.split.kind}
- label: a {", ".join(str(e) for e in spec.label.events)} event in the
  {spec.label.horizon_months} months after the snapshot month; clients in default at the
  snapshot are excluded

## Model
{estimator.model_.kind} ({comparison}); calibration: {spec.model.calibration} on the
calibration period; {len(spec.features)} features, monotone where the direction is known.
Trained on: {estimator.model_.metadata.get("trained_on", "one process")}.
LightGBM min_data_in_leaf {min_leaf} for {split.fit_rows:,} fit rows.
{sampled}
Features fitted to this data:
{feature_notes}

## Warnings
{warnings}
## {test_name.capitalize()} metrics
Measured on the {validation.window.describe()}.

| metric | value |
| --- | --- |
{metric_rows}

{section}
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
