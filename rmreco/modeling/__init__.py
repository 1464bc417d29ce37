"""Each model family's home: the served models (``credit_model``, ``propensity``) and the
estimators that fit them (``credit_estimator``, ``propensity_estimator``), with the scorecard,
calibration, the master scale, reason codes, metrics, decisioning and the one MLflow pyfunc
wrapper. Used by training and serving."""
