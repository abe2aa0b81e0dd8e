"""Rollback: the automatic one that answers a failed rollout (`automatic.py`) and the manual one that
`mode: rollback` asks for (`manual.py`). Both see only the platform protocols, never an adapter."""

from orchestrator.rollback.automatic import RollbackReport, roll_back, start_rollback

__all__ = ["RollbackReport", "roll_back", "start_rollback"]
