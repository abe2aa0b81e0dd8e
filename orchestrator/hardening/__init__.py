"""The hardening loop: every failure becomes a DPO/ORPO preference pair, stored durably, then delivered.

pairs.py       FailureContext -> PreferencePair (pure; priority scale documented there)
outbox.py      the durable queue: ledger table, JSONL file when the database is down
agentbench.py  one HTTP delivery, with retries inside a deadline
delivery.py    flush() at the start of a run, emit() after a failure; neither raises
summary.py     the report's hardening section
"""

from orchestrator.hardening.agentbench import AgentbenchClient
from orchestrator.hardening.delivery import (
    DeliveryReport,
    HardeningReport,
    client_from_config,
    emit,
    flush,
    outbox_from_config,
)
from orchestrator.hardening.outbox import Outbox, OutboxEvent
from orchestrator.hardening.pairs import FailureContext, PreferencePair, build_pair, write_trl_jsonl
from orchestrator.hardening.summary import hardening_markdown

__all__ = [
    "AgentbenchClient",
    "DeliveryReport",
    "FailureContext",
    "HardeningReport",
    "Outbox",
    "OutboxEvent",
    "PreferencePair",
    "build_pair",
    "client_from_config",
    "emit",
    "flush",
    "hardening_markdown",
    "outbox_from_config",
    "write_trl_jsonl",
]
