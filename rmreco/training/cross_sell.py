"""The cross-sell training job: panel, split (out-of-time, or a stratified hold-out by client for
data with one outcome window: ``split.kind``), fit, choose, calibrate, evaluate, gate.

One run, on the same rows:

- fits two LightGBM set-ups on the fit window: one model over stacked (client, product) rows
  with the product as a feature, and one model per product. The calibration window's clients
  are halved by a hash of their id: both set-ups stop early, and are calibrated per product, on
  one half; the set-up that ranks better (MAP@5) on the other half is registered (unless the
  spec fixes it), recalibrated per product on the whole window. The test window never chooses.
- fits two baselines: product popularity (adoption rate among eligible non-holders by segment
  and product, from the fit window) and one logistic regression per product (standardised
  features, imputed missing values, calibrated per product like the model);
- validates the chosen model per product on the test window (the latest snapshots whose
  3-month outcome is complete, or with ``split.kind: client`` the held-out test clients;
  :func:`rmreco.training.validation.product_validation`): its AUC
  with a bootstrap interval and its top-decile lift against popularity; a product the model
  ranks no better than chance is ranked by its popularity rate instead, in the saved model
  (``gates.min_product_auc``);
- evaluates the model so served on the test window: MAP@5, NDCG@5 and precision@1 of each
  client's ranked products (see :func:`rmreco.modeling.metrics.ranking_metrics`:
  client-snapshots without an adoption are left out), AUC and top-decile lift per product,
  population stability, and, on a synthetic bank, the same ranking by the true probabilities
  (``oracle_oot_map_at_5``);
- hands the chosen model to :func:`rmreco.training.run.record_training`, which logs it all to
  MLflow, registers the model and moves ``champion`` only through the gates.

The fitting itself is :class:`rmreco.modeling.propensity_estimator.PropensityEstimator`.

Given a Dask client, the panels, the split and the LightGBM fits run on the cluster over a
client-partitioned bank (:mod:`rmreco.training.distributed_cross_sell`): the same rows, the same
functions; the baselines read the driver's rows (all of the fit window's, or a sample of whole
clients when it is large), and everything after the fits is the code below.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rmreco.config import Settings
from rmreco.domain.contract import TRUTH_CROSS_SELL, TRUTH_DIR
from rmreco.features import FEATURE_DESCRIPTIONS
from rmreco.features.builder import month_start
from rmreco.features.cross_sell import LABEL, PRODUCT, WEIGHT
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.boosting import HeldFitSet, has_split
from rmreco.modeling.metrics import auc, gains_table, lift_at, score_psi
from rmreco.modeling.propensity import PropensityModel, rank_offers, value_order
from rmreco.modeling.propensity_estimator import (
    PropensityEstimator,
    ranking,
)
from rmreco.modeling.pyfunc import RmrecoModel
from rmreco.modeling.spec import CrossSellSpec, load_cross_sell_spec
from rmreco.training import distributed_cross_sell, plots, run
from rmreco.training.agreement import Agreement, agreement_on_truth
from rmreco.training.cross_sell_split import (
    build_split,
    complete_months,
    split_note,
    test_months_of,
    validation_window,
    window_name,
)
from rmreco.training.data_features import choose_features
from rmreco.training.registry import (
    GateDecision,
    constant_score_veto,
    lift_veto,
    ranking_groups_veto,
)
from rmreco.training.scoring import credit_grades, load_credit_models
from rmreco.training.splits import (
    SampledSplit,
    Split,
    TrainingDataError,
)
from rmreco.training.validation import (
    CrossSellValidation,
    cross_sell_card_section,
    product_validation,
    psi_against,
    validate_cross_sell,
)

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "rmreco-cross-sell"


@dataclass(frozen=True)
class _Book:
    """What the job reads of the whole bank besides its panels."""

    products: pd.DataFrame
    extra_columns: Mapping[str, Mapping[str, str]]
    currency: str | None
    fingerprint: str


def _oracle(data: Path, test: pd.DataFrame) -> tuple[np.ndarray | None, float]:
    """The synthetic bank's true p_3m of the test rows (0 where none), and its coverage."""
    path = data / TRUTH_DIR / f"{TRUTH_CROSS_SELL}.parquet"
    if not path.exists():  # a client-partitioned folder holds the truth in parts
        path = data / TRUTH_DIR / TRUTH_CROSS_SELL
    if not path.exists() or test.empty:
        return None, 0.0
    months = sorted({m.date() for m in pd.to_datetime(test["month"]).unique()})
    truth = pd.read_parquet(
        path,
        columns=["client_id", "month", "product_code", "p_3m"],
        filters=[("month", "in", months)],  # the test months' only: the truth is large
    )
    truth["client_id"] = truth["client_id"].astype(str)
    truth["month"] = pd.to_datetime(truth["month"])
    truth["product_code"] = truth["product_code"].astype(str)
    keys = pd.DataFrame(
        {
            "client_id": test["client_id"].astype(str).to_numpy(),
            "month": pd.to_datetime(test["month"]).to_numpy(),
            "product_code": test[PRODUCT].astype(str).to_numpy(),
        }
    )
    rows = keys.merge(truth, on=["client_id", "month", "product_code"], how="left")
    p = rows["p_3m"].to_numpy(dtype=float)
    return np.nan_to_num(p, nan=0.0), float(np.mean(~np.isnan(p)))


def _evaluate(
    fitted: PropensityEstimator,
    split: Split,
    spec: CrossSellSpec,
    data: Path,
    scores: dict[str, np.ndarray],
) -> dict[str, float]:
    """Ranking metrics of the served model (``scores["model"]``) and of the set-ups and
    baselines in ``scores`` on the test window; adds the oracle's scores to ``scores``."""
    test, k = split.test, spec.ranking_k
    y = test[LABEL].to_numpy(int)
    codes = test[PRODUCT].astype(str).to_numpy(object)
    metrics = ranking(test, np.nan_to_num(scores["model"], nan=-1.0), k, "oot_")
    for name in ("stacked", "per_product", "popularity", "logistic"):
        metrics[f"{name}_oot_map_at_{k}"] = ranking(
            test, np.nan_to_num(scores[name], nan=-1.0), k, ""
        )[f"map_at_{k}"]
    # how well the propensities separate the adoptions over every (client, product) row, in
    # one AUC: across products, it rewards propensities that compare between them
    if len(np.unique(y)) == 2:
        for name in ("model", "stacked", "per_product", "popularity", "logistic"):
            prefix = "" if name == "model" else f"{name}_"
            metrics[f"{prefix}pooled_oot_auc"] = auc(y, np.nan_to_num(scores[name], nan=0.0))
    # the order the RM's list and score-batch's ``rank`` use: expected value, not propensity
    valued = fitted.model_.predict(test, with_reasons=False)
    order = value_order(valued.expected_value, np.nan_to_num(valued.propensity, nan=-1.0))
    metrics[f"value_oot_map_at_{k}"] = ranking(test, order, k, "")[f"map_at_{k}"]
    metrics.update(fitted.choice_metrics_)
    oracle, coverage = _oracle(data, test)
    if oracle is not None:
        scores["oracle"] = oracle
        metrics[f"oracle_oot_map_at_{k}"] = ranking(test, oracle, k, "")[f"map_at_{k}"]
        metrics["oracle_oot_ndcg_at_5"] = ranking(test, oracle, k, "")[f"ndcg_at_{k}"]
        metrics["oracle_coverage"] = coverage
    p = np.nan_to_num(scores["model"], nan=0.0)
    metrics["oot_adoption_rate"] = float(y.mean())
    metrics["oot_mean_propensity"] = float(p.mean())
    metrics["oot_rows"] = float(len(test))
    for code in fitted.model_.products:
        rows = codes == code
        if rows.sum() == 0 or len(np.unique(y[rows])) < 2:
            continue
        metrics[f"oot_auc_{code}"] = auc(y[rows], p[rows])
        metrics[f"oot_lift_top10_{code}"] = lift_at(y[rows], p[rows], 0.1)
        metrics[f"oot_adoption_rate_{code}"] = float(y[rows].mean())
        metrics[f"oot_mean_propensity_{code}"] = float(p[rows].mean())
    return metrics


def train_cross_sell(
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
    must be client-partitioned: the panels, the split and LightGBM's fits run on the cluster
    (:mod:`rmreco.training.distributed_cross_sell`), everything after the fits as in one
    process.

    Raises:
        ConfigurationError: the spec is invalid.
        DataContractError: the data folder breaks the contract (or, with ``client``, is not
            client-partitioned).
        TrainingDataError: the data cannot support the split.
    """
    step = on_step or (lambda message: log.info(message))
    spec = load_cross_sell_spec(spec_path)
    held: HeldFitSet | None = None
    if client is None:
        step("reading and validating the data")
        inputs, validated = read_feature_inputs(data)
        step("building the cross-sell panel (point-in-time features and adoption labels)")
        split: Split = build_split(inputs, spec)
        assert inputs.products is not None  # the panel refused a missing catalog
        book = _Book(
            inputs.products, inputs.extra_columns, validated.currency, validated.fingerprint
        )
        trained_on = "one process"
    else:
        step("reading the parts and building their cross-sell panels on the cluster")
        on_cluster = distributed_cross_sell.cross_sell_split(client, data, spec)
        split, held = on_cluster.split.split, on_cluster.held(client)
        book = _Book(
            on_cluster.products,
            on_cluster.extra_columns,
            on_cluster.currency,
            on_cluster.fingerprint,
        )
        trained_on = on_cluster.split.trained_on()
        if split.is_fit_sampled:
            step(
                f"note: the baselines, the choice of features and the stability profile read "
                f"a sample of {len(split.fit):,} of the {split.fit_rows:,} fit rows (whole "
                f"clients); LightGBM reads them all"
            )
    choice = choose_features(
        spec.features, split.fit, book.extra_columns, bank_columns=spec.bank_columns
    )
    spec = spec.model_copy(update={"features": choice.used})
    for note in choice.notes():
        step(f"note: {note}")
    step(f"fitting on {split.fit_rows:,} rows ({trained_on})")
    try:
        fitted = PropensityEstimator(spec, book.products, threads=settings.resolved_threads).fit(
            split.fit,
            split.calibration,
            metadata={
                **split.describe(),
                "test_months": test_months_of(split, spec),
                "ranking_k": spec.ranking_k,
                "currency": book.currency or settings.currency,
                "trained_on": trained_on,
            },
            on_step=step,
            held=held,
        )
    except ValueError as exc:
        if not str(exc).startswith("every catalog product"):
            raise
        raise TrainingDataError(str(exc)) from None
    for warning in fitted.warnings_:
        log.warning(warning)
        step(f"warning: {warning}")
    split = _without(split, fitted.left_out_, fitted.fit_rows_)
    model, test = fitted.model_, split.test
    window = validation_window(split, spec)
    step(f"validating per product on the {window_name(spec)}")
    scores = fitted.baseline_scores(test)  # every set-up as fitted, before any fallback
    products = product_validation(
        test[LABEL].to_numpy(int),
        scores["model"],
        scores["popularity"],
        test[PRODUCT].astype(str).to_numpy(object),
        test["client_id"].astype(str).to_numpy(object),
        model.products,
        spec,
    )
    fitted.rank_by_popularity([str(c) for c, r in products["ranker"].items() if r == "popularity"])
    scores["model"] = model.predict_propensity(model.encoder.transform(test))
    validation = validate_cross_sell(
        model,
        split.fit,
        test,
        products,
        spec=spec,
        window=window,
        weight=WEIGHT,
    )
    step(f"evaluating on the {window_name(spec)}")
    metrics = _evaluate(fitted, split, spec, data, scores)
    metrics.update(validation.metrics())
    step("measuring the financing order against the data's truth of take-up, if it has one")
    if client is None:
        agreement = agreement_on_truth(
            data,
            inputs,
            model,
            pd.Timestamp(test["month"].max()).date(),
            settings=settings,
            tracking_uri=tracking_uri,
        )
    else:  # the whole book is not read in this process: its first part is a block of clients
        agreement = agreement_on_truth(
            data,
            read_feature_inputs(data, part=0)[0],
            model,
            pd.Timestamp(test["month"].max()).date(),
            settings=settings,
            tracking_uri=tracking_uri,
            part=0,
        )
    if agreement[0] is not None:
        metrics["financing_ndcg_at_3"] = agreement[0].ranked
        metrics["financing_ndcg_at_3_by_profit"] = agreement[0].by_profit
    rounds = [b.best_iteration or b.current_iteration() for b in model.boosters.values()]
    metrics["best_iteration"] = float(np.mean(rounds))
    metrics["products_left_out"] = float(len(fitted.left_out_))
    comparison = (
        fitted.comparison_
        + f"\n{split_note(spec)}"
        + "".join(f"\nwarning: {w}" for w in fitted.warnings_)
    )
    trained = run.TrainedModel(
        source=run.Source("train_cross_sell", spec, spec_path, data, book.fingerprint),
        model=model,
        test=test,
        registered_kind=model.kind,
        comparison=comparison,
        metrics=metrics,
        params=_params(spec, split, model.kind) | {"trained_on": trained_on},
        output_example=pd.DataFrame(
            {"propensity": [0.01], "expected_value": [10.0], "reasons": ["[]"]}
        ),
        gate=run.Gate(spec.gates.metric, spec.gates.min_value, spec.gates.max_drop),
        score_on_test=lambda champion: _test_value(champion, test, spec.gates.metric, spec),
        write_report=lambda folder, champion: _report(
            folder, fitted, test, scores, validation, champion
        ),
        model_card=lambda report, gate, version: _model_card(
            spec,
            book.fingerprint,
            data,
            split,
            metrics,
            report,
            gate,
            version,
            fitted,
            validation,
            agreement,
        ),
        vetoes=tuple(ranking_vetoes(model, metrics, scores["model"], spec, fitted.fit_rows_)),
    )
    return run.record_training(
        trained, settings=settings, tracking_uri=tracking_uri, experiment=experiment, step=step
    )


def _without(split: Split, products: dict[str, int], fit_rows: int) -> Split:
    """The split without the rows of ``products`` (those left out of the run's model), whose
    fit set (sampled or not) keeps ``fit_rows`` rows."""
    if not products:
        return split

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~frame[PRODUCT].astype(str).isin(products)].reset_index(drop=True)

    kept = replace(
        split, fit=keep(split.fit), calibration=keep(split.calibration), test=keep(split.test)
    )
    return replace(kept, whole_fit_rows=fit_rows) if isinstance(kept, SampledSplit) else kept


def ranking_vetoes(
    model: PropensityModel,
    metrics: dict[str, float],
    scores: np.ndarray,
    spec: CrossSellSpec,
    fit_rows: int,
) -> list[str]:
    """The gate's refusals of a ranking model whatever its MAP@k: no client-snapshot with two
    candidates to rank, no split in any of its LightGBM models, constant propensities on the
    test window, or no lift over popularity (``gates.min_lift_over_popularity``)."""
    k = spec.ranking_k
    groups = ranking_groups_veto(metrics["oot_ranking_groups"], k)
    if groups:
        return [groups]
    vetoes = []
    if not any(has_split(b) for b in model.boosters.values()):
        min_leaf = spec.model.lightgbm.min_data_in_leaf(fit_rows)
        vetoes.append(
            f"the {model.kind} model has no split in any of its LightGBM models (every tree a "
            f"single leaf; model.lightgbm min_data_in_leaf {min_leaf:,} or "
            "per_product_params): it ranks by nothing but its calibrators"
        )
    constant = constant_score_veto(scores, f"the {model.kind} model")
    if constant:
        vetoes.append(constant)
    metric = f"oot_map_at_{k}"
    lift = lift_veto(
        metrics[metric],
        metrics[f"popularity_oot_map_at_{k}"],
        spec.gates.min_lift_over_popularity,
        metric,
    )
    if lift:
        vetoes.append(lift)
    return vetoes


def _params(spec: CrossSellSpec, split: Split, kind: str) -> dict[str, object]:
    """What the run logs besides the model's feature configuration (``run`` logs that)."""
    holdout = {"holdout_share": spec.split.holdout_share} if spec.split.kind == "client" else {}
    return {
        "choose": spec.model.choose,
        "registered": kind,
        "calibration": spec.model.calibration,
        "split_kind": spec.split.kind,
        **holdout,
        "negative_sample": spec.split.negative_sample,
        "rows_fit": split.fit_rows,
        "baseline_fit_rows": len(split.fit),
        "rows_calibration": len(split.calibration),
        "rows_test": len(split.test),
        **split.describe(),
        **{f"lgb_{k}": v for k, v in spec.model.lightgbm.resolved_params(split.fit_rows).items()},
        "lgb_min_data_in_leaf": spec.model.lightgbm.min_data_in_leaf(split.fit_rows),
        "lgb_num_boost_round": spec.model.lightgbm.num_boost_round,
    }


def _test_value(model: RmrecoModel, test: pd.DataFrame, metric: str, spec: CrossSellSpec) -> float:
    if not isinstance(model, PropensityModel):
        raise ValueError("the champion is not a propensity model")
    propensity = model.predict(test, with_reasons=False).propensity
    return ranking(test, np.nan_to_num(propensity, nan=-1.0), spec.ranking_k, "oot_")[metric]


def _report(
    folder: Path,
    fitted: PropensityEstimator,
    test: pd.DataFrame,
    scores: dict[str, np.ndarray],
    validation: CrossSellValidation,
    champion: run.ChampionProfile,
) -> run.Report:
    """Charts, tables, the validation documents and the test window's propensities of a run
    (``by_product``: the served model, fallbacks included; ``product_validation``: the model
    before them, against popularity)."""
    y = test[LABEL].to_numpy(int)
    codes = test[PRODUCT].astype(str).to_numpy(object)
    p = np.nan_to_num(scores["model"], nan=0.0)
    gains: dict[str, pd.DataFrame] = {}
    rows = []
    for code in fitted.model_.products:
        mask = codes == code
        if mask.sum() == 0 or y[mask].sum() == 0:
            continue
        gains[code] = gains_table(y[mask], p[mask])
        rows.append(
            {
                "product_code": code,
                "rows": int(mask.sum()),
                "adoptions": int(y[mask].sum()),
                "adoption_rate": float(y[mask].mean()),
                "mean_propensity": float(p[mask].mean()),
                "auc": auc(y[mask], p[mask]) if len(np.unique(y[mask])) > 1 else np.nan,
                "lift_top10": lift_at(y[mask], p[mask], 0.1),
            }
        )
    by_product = pd.DataFrame(rows).set_index("product_code")
    reliability = _reliability(codes, y, p)
    charts = [
        plots.gains_by_product_chart(gains, folder / "gains_by_product.png"),
        plots.lift_by_product_chart(by_product["lift_top10"], folder / "lift_by_product.png"),
        plots.calibration_by_product_chart(
            by_product, reliability, folder / "calibration_by_product.png"
        ),
    ]
    importance = _importance(fitted.model_)
    charts.append(
        plots.bar_chart(
            importance, "LightGBM feature importance", "total gain", folder / "importance.png"
        )
    )
    psi = psi_against(validation.psi, champion.profile, test, scores["model"])
    charts += [
        plots.product_validation_chart(
            validation.products, validation.min_auc, folder / "product_validation.png"
        ),
        plots.psi_chart(
            psi,
            {"psi": "fit window", "champion_psi": champion.note}
            if champion.profile is not None
            else {"psi": "fit window"},
            folder / "psi.png",
        ),
    ]
    tables = {
        "by_product": by_product,
        "product_validation": validation.products,
        "psi": psi,
        "reliability": reliability,
        "feature_importance": importance.sort_values(ascending=False).to_frame(),
    }
    metrics = {}
    if champion.profile is not None:
        metrics["psi_champion_score"] = score_psi(psi, "champion_psi")
    document = {
        **validation.document(),
        "champion": {"version": champion.version, "note": champion.note},
    }
    return run.Report.write(
        folder,
        charts=charts,
        tables=tables,
        documents={"validation.json": document, run.REFERENCE_PROFILE: validation.reference},
        metrics=metrics,
        scores=pd.DataFrame(
            {
                "client_id": test["client_id"].astype(str).to_numpy(),
                "month": pd.to_datetime(test["month"]).to_numpy(),
                PRODUCT: test[PRODUCT].astype(str).to_numpy(),
                "propensity": scores["model"],
            }
        ),
    )


def _reliability(codes: np.ndarray, y: np.ndarray, p: np.ndarray, bins: int = 5) -> pd.DataFrame:
    """Per product: mean propensity and adoption rate by propensity quintile."""
    frame = pd.DataFrame({"product_code": codes, "y": y, "p": p})
    frame["bin"] = frame.groupby("product_code")["p"].transform(
        lambda s: pd.qcut(s.rank(method="first"), bins, labels=False)
    )
    return (
        frame.groupby(["product_code", "bin"])
        .agg(rows=("y", "size"), mean_propensity=("p", "mean"), adoption_rate=("y", "mean"))
        .reset_index()
    )


def _importance(model: PropensityModel) -> pd.Series:
    total = np.zeros(len(model.features))
    for booster in model.boosters.values():
        total += booster.feature_importance(importance_type="gain")
    return pd.Series(total, index=list(model.features), name="gain")


def _model_card(
    spec: CrossSellSpec,
    fingerprint: str,
    data: Path,
    split: Split,
    metrics: dict[str, float],
    report: run.Report,
    gate: GateDecision,
    version: str,
    fitted: PropensityEstimator,
    validation: CrossSellValidation,
    agreement: tuple[Agreement | None, str],
) -> str:
    tables = report.tables
    champion = report.documents["validation.json"]["champion"]
    has_champion = bool(tables["psi"]["champion_psi"].notna().any())
    section = cross_sell_card_section(validation, tables["psi"], champion["note"], has_champion)
    periods = split.describe()
    name = window_name(spec)
    k = spec.ranking_k
    shown = [
        f"oot_map_at_{k}",
        f"oot_ndcg_at_{k}",
        "oot_precision_at_1",
        f"stacked_oot_map_at_{k}",
        f"per_product_oot_map_at_{k}",
        f"popularity_oot_map_at_{k}",
        f"logistic_oot_map_at_{k}",
        f"oracle_oot_map_at_{k}",
        f"value_oot_map_at_{k}",
        "oot_adoption_rate",
        "oot_mean_propensity",
    ]
    metric_rows = "\n".join(f"| {m} | {metrics[m]:.4f} |" for m in shown if m in metrics)
    descriptions = {**FEATURE_DESCRIPTIONS, **fitted.model_.descriptions}
    drivers = "\n".join(
        f"| {name} | {descriptions.get(str(name), name)} | {gain:,.0f} |"
        for name, gain in tables["feature_importance"]["gain"].head(12).items()
    )
    return f"""# Model card: {spec.name} v{version}

{spec.description}

## Intended use
Rank, for each performing client, the catalog products it does not hold and may be offered, by
the expected annual margin of an offer (calibrated propensity x the product's annual margin),
for relationship managers' call lists. Propensities are not promises: a list is a prompt for a
conversation. Financing products are listed only when the client's credit grade is no worse than
{spec.credit_gate.max_grade} and the credit policy would not decline the client (clients the
credit model does not grade: {spec.credit_gate.ungraded}). The same propensities rank a client's
financing options (expected profit x propensity).

## Data
- folder: `{data}`; content fingerprint `{fingerprint[:16]}`
- fit period {periods["fit_period"]} ({split.fit_rows:,} rows, non-adopters sampled at
  {spec.split.negative_sample:g} and weighted back), calibration period
  {periods["calibration_period"]} ({len(split.calibration):,}), {name} period
  {periods["test_period"]} ({len(split.test):,}); {split_note(spec)}
- rows: (client, month, product) for performing clients and eligible products not held;
  label: the product started in the {spec.label.horizon_months} months after the snapshot
- trained on: {fitted.model_.metadata.get("trained_on", "one process")}{_sampled_note(split)}

## Model
{fitted.comparison_}. Calibration: {spec.model.calibration} per product on the calibration window
(products with fewer than {spec.model.min_calibration_adoptions} adoptions there share a pooled
calibrator). MAP@{k}: mean over client-snapshots with at least one adoption and two or more
candidate products of the average precision of the top {k} products; client-snapshots without
an adoption, or with a single candidate (which any model ranks first), are left out.

## Warnings
{"".join(f"- {w}{chr(10)}" for w in fitted.warnings_) or "- none"}

## {name[0].upper() + name[1:]} metrics
Measured on the {validation.window.describe()}, as served (products ranked by popularity
included).

| metric | value |
| --- | --- |
{metric_rows}

{section}
{_agreement_section(agreement)}
## Main drivers (LightGBM total gain)
| feature | meaning | gain |
| --- | --- | --- |
{drivers}

## Promotion
{gate.reason}

## Limits
- Learned from one bank's adoptions over one period; campaigns, pricing and new products move
  adoption rates, so recalibrate when observed rates drift from the propensities.
- Adoption is what the bank saw happen, with its past sales effort; a high propensity may
  reflect where RMs already push, not only where clients need a product.
- Reasons are the features that raised the score most (TreeSHAP), not causes.
- Specification: {json.dumps(spec.name)} fingerprint {spec.fingerprint()}.
"""


def _sampled_note(split: Split) -> str:
    """What the model card says of a fit window the driver held a sample of."""
    if not split.is_fit_sampled:
        return ""
    return (
        f"; the baselines, the choice of features and the stability profile read "
        f"{len(split.fit):,} of the {split.fit_rows:,} fit rows (whole clients, by a hash of "
        "their id), LightGBM all of them"
    )


def _agreement_section(agreement: tuple[Agreement | None, str]) -> str:
    found, note = agreement
    head = "## Financing order against the truth of take-up\n"
    if found is None:
        return head + f"Not measured: {note}.\n"
    lines = "\n".join(f"- {line}" for line in found.lines())
    return (
        head + f"The financing options batch scoring ranks with this model's propensities, {note}, "
        "against the data's own truth of each client's 3-month take-up (NDCG@3, relevance = "
        "the true probability):\n\n" + lines + "\n"
    )


@dataclass(frozen=True)
class CrossSellEvaluation:
    model_version: str
    #: the credit champions that graded the rows, by registered name
    credit_versions: dict[str, str]
    test_period: str
    rows: int
    metrics: dict[str, float]
    #: The same figures from the version's own training run (its out-of-time test), where
    #: that run logged them: what "as good on this bank" is measured against.
    reference: dict[str, float]


def evaluate_cross_sell(
    data: Path,
    *,
    model_name: str,
    settings: Settings,
    tracking_uri: str | None = None,
    version: str | None = None,
    credit_models: Sequence[str] = (),
    on_step: run.Progress | None = None,
) -> CrossSellEvaluation:
    """Score another bank's (or a later period's) test window as batch scoring would, and
    measure the ranking against the adoptions that followed; ``on_step`` is told each step as
    it starts.

    The rows are those ``score-batch`` writes at each test month, built with the model's own
    feature configuration (eligible, not held, financing only where the grade of the credit
    champion of the client's segment allows, among ``credit_models`` that have a champion).
    Metrics (k as in training): ``oot_map_at_k`` etc. of the propensity order (comparable to the
    training run's), ``value_oot_map_at_k`` of the expected-value order (the list's ``rank``),
    and ``oracle_oot_map_at_k`` on a synthetic bank. Reads the registry, writes nothing.

    Raises:
        ConfigurationError, DataContractError, TrainingDataError: as for training.
        RegistryError: no such version, or no champion when ``version`` is None.
    """
    step = on_step or (lambda message: None)
    step(f"loading {model_name} {f'v{version}' if version else 'champion'}")
    model, chosen = run.load_registered(
        model_name, version, settings=settings, tracking_uri=tracking_uri
    )
    if not isinstance(model, PropensityModel):
        raise TrainingDataError(f"model {model_name!r} is not a propensity model")
    config = model.config
    window = int(model.metadata.get("test_months", 3))
    step(f"reading and validating {data}")
    inputs, _ = read_feature_inputs(data)
    # nothing is fitted here: the latest ``window`` months whose outcome is complete suffice
    complete = complete_months(inputs, config.horizon_months)
    if len(complete) < window:
        raise TrainingDataError(
            f"the data has {len(complete)} snapshot months with a complete "
            f"{config.horizon_months}-month adoption outcome; the model's test window needs "
            f"{window}: give the data {window - len(complete)} more months of history, or the "
            "adoptions of the months after its last account month"
        )
    months = [month_start(m) for m in complete[-window:]]
    step(f"building the cross-sell features of {months[0]:%Y-%m}..{months[-1]:%Y-%m}")
    test = config.cross_sell_panel(inputs, months=months)
    step("grading the clients with the credit champions")
    credit = load_credit_models(credit_models, settings=settings, tracking_uri=tracking_uri)
    grades = credit_grades(credit, inputs, test) if credit else None
    scale = credit[0].model.scale if credit else None
    step(f"ranking {len(test):,} offers and measuring against the adoptions that followed")
    ranked = rank_offers(model, test, grades=grades, scale=scale)
    rows = test.loc[ranked["row"]].reset_index(drop=True)
    k = int(model.metadata.get("ranking_k", 5))
    metrics = ranking(rows, ranked["propensity"].to_numpy(), k, "oot_")
    metrics[f"value_oot_map_at_{k}"] = ranking(rows, -ranked["rank"].to_numpy(float), k, "")[
        f"map_at_{k}"
    ]
    oracle, coverage = _oracle(data, rows)
    if oracle is not None:
        metrics[f"oracle_oot_map_at_{k}"] = ranking(rows, oracle, k, "")[f"map_at_{k}"]
        metrics["oracle_coverage"] = coverage
    metrics["rows_not_offered"] = float(len(test) - len(ranked))
    logged = run.logged_metrics(model_name, chosen)
    reference = {
        name: float(logged[name])
        for name in (f"oot_map_at_{k}", f"value_oot_map_at_{k}", f"oracle_oot_map_at_{k}")
        if name in logged
    }
    return CrossSellEvaluation(
        model_version=chosen,
        credit_versions={c.name: c.version for c in credit},
        test_period=f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}",
        rows=len(rows),
        metrics=metrics,
        reference=reference,
    )
