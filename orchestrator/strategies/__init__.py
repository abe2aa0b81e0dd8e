"""Rollout strategies: each turns the request into a plan (data); `base.execute` carries it out."""

from orchestrator.strategies.base import RolloutFailure, RolloutOutcome, RolloutPlan, execute, plan_rollout

__all__ = ["RolloutFailure", "RolloutOutcome", "RolloutPlan", "execute", "plan_rollout"]
