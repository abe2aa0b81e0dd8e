"""The report: GitHub outputs stay parseable and under GitHub's limits, whatever the run produced."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from orchestrator.contract import (
    DeploymentDetails,
    HardeningOutcome,
    HealthProbe,
    LogEntry,
    Result,
    RollbackOutcome,
)
from orchestrator.report import OUTPUT_LIMIT, outputs, summary_markdown, validate_result, write_outputs

NOW = "2026-11-24T22:00:00.000Z"


def result(logs: int = 1, probes: int = 1, message: str = "line") -> Result:
    return Result(
        deployment_id=str(uuid.uuid4()),
        validation_run_id="run-1",
        deployed_at=NOW,
        status="success",
        deployment_details=DeploymentDetails("blue_green", "local", "v1", "v2", 1.5),
        health_checks=tuple(HealthProbe("/health", 200, 1.0, True, NOW) for _ in range(probes)),
        migrations_applied=(),
        rollback=RollbackOutcome(triggered=False),
        hardening=HardeningOutcome(),
        logs=tuple(LogEntry("info", message, NOW) for _ in range(logs)),
    )


def test_a_huge_result_still_fits_githubs_output_limit_and_stays_valid() -> None:
    big = result(logs=5000, probes=2000, message="x" * 400)
    value = outputs(big, ".deploy-orchestrator/result.json")["result"]
    assert len(value.encode()) < OUTPUT_LIMIT
    data = json.loads(value)
    validate_result(data)
    assert "logs cut" in data["logs"][0]["message"]


def test_multiline_outputs_use_a_delimiter_that_is_not_in_the_value(tmp_path: Path) -> None:
    target = tmp_path / "out"
    env = {"GITHUB_OUTPUT": str(target), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    write_outputs(result(message="ghadelimiter_line\nsecond"), tmp_path, env)
    text = target.read_text()
    assert "status=success\n" in text
    assert "rolled-back=false\n" in text


def test_the_summary_is_cut_below_githubs_limit() -> None:
    text = summary_markdown(result(logs=20000, message="y" * 200))
    assert len(text.encode()) < 1_048_576
    assert text.endswith("(cut: the full result is in result-file)\n")
