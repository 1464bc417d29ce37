"""Estimators and decisioning: the PD model, the scorecard baseline, calibration, the master
scale, reason codes, metrics and the one MLflow pyfunc wrapper. Used by training and serving."""
