"""Training jobs: splits, evaluation, charts and model cards of each model family (the fitting is
in ``rmreco.modeling``), the one MLflow run with its registration and gates (``run``), batch
scoring and the snapshot refresh that read the champions.

Only this package writes to MLflow tracking and the Model Registry.
"""
