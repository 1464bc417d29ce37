"""Reasons in a banker's words on a batch of about a thousand clients of a small synthetic bank:
every decline states one to four adverse-action reasons, the knock-out rules that declined it
first, then features that pushed the PD up, each with its code and a text that says the value
with its unit; no reason is a feature that describes the extract. For the served LightGBM
model and its scorecard alike, through batch scoring's own functions (the service's financing
answer calls the same ``decide_financing``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rmreco.features.inputs import read_feature_inputs
from rmreco.features.reasons import entry_for, explain
from rmreco.modeling.credit_estimator import CreditRiskEstimator, credit_feature_config
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.policy import load_policy
from rmreco.modeling.spec import CreditRiskSpec
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import split_out_of_time
from rmreco.training.scoring import (
    CreditChampion,
    financing_decisions,
    score_table,
    scored_clients,
)

ROOT = Path(__file__).resolve().parents[2]
CURRENCY = "EUR"
NOT_REASONS = ("history_months", "fin_age_months")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Batch:
    model: CreditRiskModel
    credit: pd.DataFrame  # score_table: one row per client
    financing: pd.DataFrame  # one row per client (its decision)
    raised_by_history: int  # clients whose PD history_months raised


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[Batch]:
    bank = tmp_path_factory.mktemp("reasons") / "bank"
    generate_bank(bank, n_clients=1300, n_months=30, seed=11)
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 80
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    spec = CreditRiskSpec.model_validate(raw)
    inputs, _ = read_feature_inputs(bank)
    split = split_out_of_time(credit_feature_config(spec).credit_panel(inputs), spec)
    estimator = CreditRiskEstimator(spec).fit(split.fit, split.calibration)
    as_of = pd.Timestamp(inputs.account_months["month"].max()).date()
    policy = load_policy(ROOT / "models" / "credit_policy.yaml")
    out = []
    for model in (estimator.lightgbm_, estimator.scorecard_):
        scored = scored_clients(
            [CreditChampion("reasons-test", "1", model)], inputs, [as_of], currency=CURRENCY
        )
        financing = financing_decisions(scored, inputs, as_of, policy, None)
        contrib = model.contributions(model.encoder.transform(scored[0].frame))
        history = contrib[:, model.features.index("history_months")]
        out.append(
            Batch(
                model,
                score_table(scored),
                financing.drop_duplicates("client_id"),
                int((history > 1e-6).sum()),
            )
        )
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _says_its_unit(reason: dict[str, Any]) -> bool:
    """The text states the value with its unit (or the catalogue's words for none, zero or
    never, which need no unit)."""
    entry = entry_for(reason["feature"])
    text, unit, value = reason["text"], reason["unit"], reason["value"]
    if value is None:
        return bool(text == explain(reason["feature"], None).text)
    if text in (entry.zero, entry.never):
        return True
    if unit == "yes/no":
        return text == entry.template
    if isinstance(value, str):
        return value in text
    token = unit.split()[0].rstrip("s")  # "days" -> "day", "months of inflows" -> "month"
    return token in text and any(ch.isdigit() for ch in text)


def test_the_batch_holds_about_a_thousand_clients_and_some_declines(batches: list[Batch]) -> None:
    for batch in batches:
        assert len(batch.financing) >= 1000
        assert (batch.financing["decision"] == "decline").sum() >= 5


def test_every_decline_has_one_to_four_adverse_reasons_that_raised_the_pd(
    batches: list[Batch],
) -> None:
    for batch in batches:
        declines = batch.financing[batch.financing["decision"] == "decline"]
        for row in _records(declines):
            adverse = json.loads(row["adverse_action_reasons"])
            assert 1 <= len(adverse) <= 4, (batch.model.kind, row["client_id"], adverse)
            assert list(row["adverse_reason_codes"]) == [r["code"] for r in adverse]
            # the knock-out rules that declined the client come first (modeling/adverse.py)
            rules = [r for r in adverse if r["source"] == "policy"]
            assert all(r["code"] in row["decision_reason_codes"] for r in rules), adverse
            features = adverse[len(rules) :]
            contributions = [r["contribution"] for r in features]
            assert contributions == sorted(contributions, reverse=True)
            for reason in features:
                assert reason["source"] == "model", reason
                assert reason["code"] == entry_for(reason["feature"]).code
                assert reason["contribution"] > 0
                assert reason["direction"] == "raises the PD"
                assert reason["feature"] not in NOT_REASONS
                assert _says_its_unit(reason), reason
                if reason["unit"] == CURRENCY:
                    assert reason["text"].endswith(f" {CURRENCY}")
            assert json.loads(row["decision_reasons"])
            assert all(code.startswith("POL_") for code in row["decision_reason_codes"])
        not_declined = batch.financing[batch.financing["decision"] != "decline"]
        assert all(len(codes) == 0 for codes in not_declined["adverse_reason_codes"])


def test_no_reason_of_any_client_describes_the_extract(batches: list[Batch]) -> None:
    # the models weigh history_months, and it raised some PDs: never as a reason
    assert sum(batch.raised_by_history for batch in batches) > 0
    for batch in batches:
        seen = 0
        for reasons, codes in zip(
            batch.credit["reasons"], batch.credit["reason_codes"], strict=True
        ):
            rows = json.loads(reasons)
            assert [r["code"] for r in rows] == list(codes)
            assert len(rows) <= batch.model.top_reasons
            for reason in rows:
                assert reason["feature"] not in NOT_REASONS
                assert reason["contribution"] > 0
                assert _says_its_unit(reason), reason
                seen += 1
        assert seen > len(batch.credit)  # most clients have reasons: the check is not vacuous
