"""Point-in-time features of clients, the same code for training, batch scoring and the service.

A feature at snapshot month t reads months <= t only. Frames enter and leave as pandas; the
rolling windows are computed with polars (measured: ~15x faster than pandas ``rolling`` on a
client-month panel).
"""

from rmreco.features.builder import FEATURE_DESCRIPTIONS, build_features, feature_names
from rmreco.features.inputs import FeatureInputs
from rmreco.features.labels import build_credit_panel, default_status

__all__ = [
    "FEATURE_DESCRIPTIONS",
    "FeatureInputs",
    "build_credit_panel",
    "build_features",
    "default_status",
    "feature_names",
]
