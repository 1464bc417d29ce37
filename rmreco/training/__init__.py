"""Training jobs: splits, fitting, evaluation, MLflow tracking and the registry's gates.

Only this package writes to MLflow tracking and the Model Registry.
"""
