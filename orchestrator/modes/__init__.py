"""The run's modes, each an order of the shared steps (`run_steps.py`): deploy and plan
(`deploy.py`), rollback and recover (`rollback.py`), preview, preview-teardown and delete
(`other_targets.py`). The pipeline picks one and wraps it in what every run does."""
