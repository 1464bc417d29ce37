"""The MLflow pyfunc wrappers of rmreco's models, at one stable import path.

MLflow stores the model's own files (JSON and LightGBM text, see ``credit_model`` and
``propensity``) as the artifact ``model``; :class:`RmrecoCreditModel` answers ``predict`` with
PD, grade and reason codes, :class:`RmrecoPropensityModel` with propensity, expected value and
reasons of (client, product) rows. The service does not go through ``predict``: it loads the
same files with :func:`load_credit_model` / :func:`load_propensity_model` and scores on its own
fast path.

The logged signature (:func:`model_signature`) types every numeric input as "a number or
null" (MLflow's ``Any``), not as the float32 of the training frame: a caller sends the stored
audit features as they are (JSON numbers are float64 or int, a missing value is null), and
MLflow's schema enforcement refused both float64 for float32 and a null in a number column.
The pyfunc faces check those columns themselves (:func:`numbers_only`).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.propensity import PropensityModel

MODEL_ARTIFACT = "model"
RmrecoModel = CreditRiskModel | PropensityModel


def read_model(folder: Path) -> RmrecoModel:
    """Read either family's files (``model.json`` says which).

    Raises:
        ValueError: the folder holds no model of a family and format this code reads.
    """
    path = folder / "model.json"
    if not path.exists():
        raise ValueError(f"{folder} holds no rmreco model (model.json missing)")
    family = json.loads(path.read_text(encoding="utf-8")).get("family")
    if family == "cross_sell":
        return PropensityModel.load(folder)
    return CreditRiskModel.load(folder)


#: MLflow column types the signature relaxes to "a number or null".
_NUMERIC_TYPES = (DataType.float, DataType.double, DataType.integer, DataType.long)


def model_signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The signature a model is logged with: ``example``'s columns, the numeric ones typed
    ``Any`` (a number or null, checked by :func:`numbers_only`), the others as inferred."""
    inferred = infer_signature(example, output)
    columns = [
        ColSpec(AnyType(), spec.name, required=spec.required)
        if isinstance(spec, ColSpec) and spec.type in _NUMERIC_TYPES
        else spec
        for spec in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs, params=inferred.params)


def numbers_only(frame: pd.DataFrame, model: RmrecoModel) -> pd.DataFrame:
    """``frame`` with every numeric input column of ``model`` as float64 (null as NaN).

    Raises:
        ValueError: a value of such a column is not a number (text, for one, is refused rather
            than read as a number or as missing); the message names the column and the value.
    """
    out = frame.copy(deep=False)
    for name in model.input_columns:
        if name not in frame or name in model.encoder.categories:
            continue
        column = frame[name]
        if column.dtype.kind in "biuf":
            out[name] = column.astype(np.float64)
            continue
        for value in column:
            missing = (
                value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            )
            if not missing and not isinstance(value, numbers.Real | np.bool_):
                raise ValueError(f"{name}: {value!r} is not a number")
        out[name] = pd.to_numeric(column, errors="raise").astype(np.float64)
    return out


def python_model_for(model: RmrecoModel) -> PythonModel:
    """The pyfunc face that serves ``model`` in MLflow."""
    return RmrecoPropensityModel() if isinstance(model, PropensityModel) else RmrecoCreditModel()


def download_model(model_uri: str, *, dst: Path | None = None) -> RmrecoModel:
    """Download a logged model's files (e.g. ``models:/name@champion``) and read them.

    Raises:
        mlflow.exceptions.MlflowException: the URI names no model or the registry is unreachable.
        ValueError: the files are not a model this code reads.
    """
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, dst_path=str(dst) if dst else None
    )
    return read_model(Path(local) / "artifacts" / MODEL_ARTIFACT)


class RmrecoCreditModel(PythonModel):
    """pyfunc face of :class:`CreditRiskModel`: features in; the PD (named by the model's
    horizon: ``pd_12m`` for a 12-month model, ``pd_1m`` for a 1-month one), grade and reasons
    out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = CreditRiskModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        result = self.model.predict(numbers_only(model_input, self.model))
        return pd.DataFrame(
            {
                result.pd_column: result.pd,
                "grade": result.grade.astype(str),
                "reasons": [json.dumps([r.to_dict() for r in row]) for row in result.reasons],
            },
            index=model_input.index,
        )


def load_credit_model(model_uri: str, *, dst: Path | None = None) -> CreditRiskModel:
    """Download a logged credit model's files (e.g. ``models:/name@champion``) and load them.

    Raises:
        mlflow.exceptions.MlflowException: the URI names no model or the registry is unreachable.
        ValueError: the model's files are not a credit model this code reads.
    """
    model = download_model(model_uri, dst=dst)
    if not isinstance(model, CreditRiskModel):
        raise ValueError(f"{model_uri} is not a credit-risk model")
    return model


class RmrecoPropensityModel(PythonModel):
    """pyfunc face of :class:`PropensityModel`: (client, product) rows with their features in;
    propensity, expected_value and reasons out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = PropensityModel.load(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        result = self.model.predict(numbers_only(model_input, self.model))
        return pd.DataFrame(
            {
                "propensity": result.propensity,
                "expected_value": result.expected_value,
                "reasons": [json.dumps([r.to_dict() for r in row]) for row in result.reasons],
            },
            index=model_input.index,
        )


def load_propensity_model(model_uri: str, *, dst: Path | None = None) -> PropensityModel:
    """Download a logged propensity model's files (e.g. ``models:/name@champion``), load them.

    Raises:
        mlflow.exceptions.MlflowException: the URI names no model or the registry is unreachable.
        ValueError: the model's files are not a propensity model this code reads.
    """
    model = download_model(model_uri, dst=dst)
    if not isinstance(model, PropensityModel):
        raise ValueError(f"{model_uri} is not a propensity model")
    return model
