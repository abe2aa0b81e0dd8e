"""The result, written where people and workflows read it.

- validated against `schema/deploy-result.schema.json` before anything is written;
- `$GITHUB_OUTPUT`: every output of action.yml, multi-line safe with a random delimiter;
- `$GITHUB_STEP_SUMMARY`: a readable Markdown report (capped below GitHub's 1 MiB);
- `result-file`: the same JSON under the workspace.
Outside Actions the JSON goes to stdout and the Markdown to a file beside it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from orchestrator.config import schema
from orchestrator.contract import Result
from orchestrator.redaction import redact, redact_data
from orchestrator.runner_files import WriteFailure, write_text

__all__ = ["OUTPUTS", "Written", "outputs", "result_json", "summary_markdown", "validate_result", "write_outputs"]

OUTPUTS: dict[str, str] = {
    "result": "The whole output contract (DeploymentOrchestratorOutput) as compact JSON.",
    "status": "success | failed | rolled_back.",
    "deployment-id": "UUID of this run.",
    "new-version": "The release this run deployed.",
    "previous-version": "The release that was live before ('none' on a first deploy).",
    "url": "The public URL of the live release.",
    "rolled-back": "true when a rollback ran.",
    "result-file": "Path of the result JSON under the workspace.",
    "app": "Platform digitalocean: the app as JSON after the run (app_action's `app`); empty elsewhere.",
    "build_logs": "Platform digitalocean: the deployment's build logs (newest 64 KiB, redacted); empty elsewhere.",
    "deploy_logs": "Platform digitalocean: the deployment's deploy logs (newest 64 KiB, redacted); empty elsewhere.",
}
"""The Action's outputs. A test keeps action.yml in step with this table."""

SUMMARY_LIMIT = 1_000_000
RESULT_FILE = ".deploy-orchestrator/result.json"
SUMMARY_FILE = ".deploy-orchestrator/summary.md"


def validate_result(data: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the result breaks the output contract."""
    jsonschema.Draft202012Validator(schema("deploy-result")).validate(data)


OUTPUT_LIMIT = 900_000
"""GitHub keeps 1 MB of outputs per job; past this the `result` output drops its logs (result-file keeps them)."""


def outputs(result: Result, result_file: str) -> dict[str, str]:
    data = result.to_dict()
    # The app and its logs have outputs of their own; the result file keeps them too.
    platform = data.pop("platform_outputs", None) or {}
    compact = _json_text(data)
    if len(compact.encode()) > OUTPUT_LIMIT:
        data["logs"] = [
            {
                "level": "warn",
                "message": f"logs cut to fit GitHub's output limit; see {result_file}",
                "timestamp": result.deployed_at,
            }
        ]
        data["health_checks"] = data["health_checks"][-50:]
        compact = _json_text(data)
    return {
        "result": compact,
        "status": result.status,
        "deployment-id": result.deployment_id,
        "new-version": result.deployment_details.new_version,
        "previous-version": result.deployment_details.previous_version,
        "url": result.url or "",
        "rolled-back": "true" if result.rollback.triggered else "false",
        "result-file": result_file,
        "app": redact(json.dumps(platform["app"], separators=(",", ":"), sort_keys=True)) if "app" in platform else "",
        "build_logs": redact(str(platform.get("build_logs", ""))),
        "deploy_logs": redact(str(platform.get("deploy_logs", ""))),
    }


@dataclass(frozen=True, slots=True)
class Written:
    """Where each channel went, and every channel that could not be written."""

    paths: dict[str, Path]
    failures: tuple[WriteFailure, ...]
    result_json: str = ""
    """The result as written to result-file (redacted), for whoever prints it too."""


def write_outputs(result: Result, workspace: Path, env: Mapping[str, str]) -> Written:
    """Write the result JSON, the summary, and the GitHub outputs. A channel that cannot be written
    is returned as a failure (the others are still written); nothing here raises for a full disk."""
    data = result.to_dict()
    validate_result(data)
    paths: dict[str, Path] = {}
    failures: list[WriteFailure] = []

    def write(key: str, channel: str, path: Path, text: str, *, append: bool) -> None:
        ours = path.is_relative_to(workspace / ".deploy-orchestrator")
        failure = write_text(channel, path, text, append=append, make_parents=ours)
        if failure is None:
            paths[key] = path
        else:
            failures.append(failure)

    text = result_json(data)
    write("result", "result-file", workspace / RESULT_FILE, text, append=False)
    summary_target = env.get("GITHUB_STEP_SUMMARY")
    summary_path = Path(summary_target) if summary_target else workspace / SUMMARY_FILE
    write("summary", "GITHUB_STEP_SUMMARY", summary_path, summary_markdown(result), append=bool(summary_target))
    output_target = env.get("GITHUB_OUTPUT")
    if output_target:
        lines = "".join(_output_line(name, value) for name, value in outputs(result, RESULT_FILE).items())
        write("outputs", "GITHUB_OUTPUT", Path(output_target), lines, append=True)
    return Written(paths, tuple(failures), text)


READABLE_LIMIT = 256 << 10
"""A result up to this size is written indented for a reader; past it (thousands of files on record), on
one line: indenting makes json use its pure-Python encoder, seconds for megabytes."""


def result_json(data: Any) -> str:
    """The result file's text: indented when small, compact when large; redacted either way."""
    compact = _json_text(data)
    if len(compact) > READABLE_LIMIT:
        return compact + "\n"
    return _json_text(data, indent=2) + "\n"


def _json_text(data: Any, *, indent: int | None = None) -> str:
    """JSON of `data` with every string redacted before it is escaped, and the text again after."""
    separators = (",", ":") if indent is None else None
    return redact(json.dumps(redact_data(data), indent=indent, separators=separators, sort_keys=True))


def _output_line(name: str, value: str) -> str:
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    while delimiter in value:
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


_ICON = {"success": "✅", "failed": "❌", "rolled_back": "↩️"}


def summary_markdown(result: Result) -> str:
    """A readable report: what changed, checks with timings, migrations, rollback, hardening."""
    d = result.deployment_details
    data = result.to_dict()
    lines = [
        f"## {_ICON.get(result.status, '')} deploy-orchestrator: {result.status.replace('_', ' ')}",
        "",
        "| | |",
        "|---|---|",
        f"| mode | `{result.mode}` |",
        f"| release | `{d.previous_version}` → `{d.new_version}` |",
        f"| strategy / platform | {d.strategy} on {d.platform} |",
        f"| duration | {d.duration_seconds:.1f} s |",
        f"| deployment id | `{result.deployment_id}` |",
        f"| validation run | `{result.validation_run_id or '—'}` |",
    ]
    if result.url:
        lines.append(f"| url | {result.url} |")
    if result.error:
        lines += ["", *_error_lines(result.failed_step or "error", result.error)]
    refused = data.get("refused")
    if refused:
        lines += ["", f"Refused by the **{refused.get('gate')}** gate; nothing was touched."]
    plan = data.get("plan")
    if plan:
        lines += ["", "### Plan", ""]
        lines += [_cell(step) for step in plan.get("rollout", [])]
        lines += ["", "```text", *plan.get("migrations", []), *plan.get("sqlagent", []), "```"]
    verdicts = data.get("canary_analysis") or []
    if verdicts:
        lines += [
            "",
            "### Canary analysis",
            "",
            "| step | look | verdict | canary / baseline requests | latency p95 | error rate |",
            "|---|---|---|---|---|---|",
        ]
        lines += [_verdict_row(v) for v in verdicts]
    hooks = data.get("webhooks") or []
    if hooks:
        lines += ["", "### Webhooks", "", "| hook | phase | answer | attempts |", "|---|---|---|---|"]
        lines += [
            f"| `{_cell(h['hook'])}` | {h['phase']} | {'approved' if h['approved'] else '**rejected**'}: "
            f"{_cell(h['detail'])} | {h['attempts']} |"
            for h in hooks
        ]
    gate_lines = (data.get("gates") or {}).get("lines") or []
    if gate_lines:
        lines += ["", "### Gates", ""] + [f"- {_cell(g)}" for g in gate_lines]
    if result.health_checks:
        lines += [
            "",
            "### Checks",
            "",
            "| release | phase | check | status | time (ms) | result | at |",
            "|---|---|---|---|---|---|---|",
        ]
        for probe in result.health_checks:
            outcome = "pass" if probe.passed else f"**fail** {_cell(probe.detail or '')}"
            lines.append(
                f"| `{_cell(probe.release or '—')}` | {_cell(probe.phase or '—')} | `{_cell(probe.endpoint)}` | "
                f"{probe.status_code} | {probe.response_time_ms:.1f} | {outcome} | {probe.timestamp} |"
            )
    if result.migrations_applied:
        lines += [
            "",
            "### Migrations",
            "",
            "| version | file | direction | time (ms) | result | produced by |",
            "|---|---|---|---|---|---|",
        ]
        for m in result.migrations_applied:
            outcome = "ok" if m.success else f"**failed** {_cell(m.error or '')}"
            origin = (
                f"{m.provenance.agent_id}, SQLAgent run `{_cell(m.provenance.sqlagent_run_id)}`, "
                f"sha256 `{m.provenance.sha256[:12]}`"
                if m.provenance
                else "—"
            )
            lines.append(
                f"| {m.version} | `{m.filename}` | {m.direction} | {m.duration_ms:.1f} | {outcome} | {origin} |"
            )
    rb = result.rollback
    if rb.triggered:
        lines += [
            "",
            "### Rollback",
            "",
            f"- reason: {_cell(rb.reason or '')}",
            f"- back to: `{rb.previous_version or '—'}`",
            f"- took: {rb.duration_seconds or 0:.2f} s",
            f"- result: {'succeeded' if rb.succeeded else '**FAILED: on-call paged**'}",
        ]
    recovery = data.get("recovery")
    if recovery:
        lines += ["", "### Recovery", ""]
        lines.append(
            f"Recovered from {len(recovery.get('crashed') or [])} run(s) that died before finishing "
            f"({', '.join(f'`{k}` at {v}' for k, v in (recovery.get('crashed_steps') or {}).items())}), "
            f"in {recovery.get('seconds', 0):.2f} s:"
        )
        lines += [f"- {_cell(str(a))}" for a in recovery.get("actions") or []]
        if recovery.get("error"):
            lines.append(f"- **FAILED: on-call paged**: {_cell(str(recovery['error']))}")
    deletes = data.get("recovered_deletes")
    if deletes:
        lines += ["", "### Unfinished deletes", ""]
        lines += [f"- `{d['deployment_id']}` ({d['outcome']}): {_cell(str(d['note']))}" for d in deletes]
    h = result.hardening
    if h.dpo_pairs_generated or h.queued or h.delivered:
        lines += [
            "",
            "### Hardening",
            "",
            f"- preference pairs generated: {h.dpo_pairs_generated}",
            f"- delivered to agentbench: {h.delivered}"
            + (f" (submission `{h.agentbench_submission_id}`)" if h.agentbench_submission_id else ""),
            f"- queued for the next run: {h.queued}",
        ]
        if h.fallback_file:
            lines.append(f"- kept in `{h.fallback_file}` (database unreachable)")
    artifacts = data.get("artifacts")
    if artifacts:
        lines += [
            "",
            "<details><summary>Artifact digests</summary>",
            "",
            "```json",
            json.dumps(artifacts, indent=2, sort_keys=True),
            "```",
            "</details>",
        ]
    if result.logs:
        lines += ["", "<details><summary>Log</summary>", "", "```"]
        lines += [f"{e.timestamp} {e.level.upper():5} {e.message}" for e in result.logs]
        lines += ["```", "</details>"]
    text = redact("\n".join(lines) + "\n\n")
    if len(text.encode()) > SUMMARY_LIMIT:
        text = (
            text.encode()[: SUMMARY_LIMIT - 200].decode(errors="ignore")
            + "\n\n…(cut: the full result is in result-file)\n"
        )
    return text


def _verdict_row(verdict: Mapping[str, Any]) -> str:
    cells = []
    for metric in verdict["metrics"]:
        if metric["canary"] is None or metric["baseline"] is None:
            cells.append(f"{metric['outcome']}: {_cell(metric['reason'])}")
            continue
        unit = "ms" if metric["metric"] == "latency_p95" else "%"
        effect = metric["effect"]
        p_value = metric["p_value"]
        cells.append(
            f"{metric['outcome']}: {metric['canary']:.2f}{unit} vs {metric['baseline']:.2f}{unit}"
            + (f" ({effect:+.1f}, limit +{metric['limit']:g}" if effect is not None else " (")
            + (f", p={p_value:.3g})" if p_value is not None else ")")
        )
    return (
        f"| {verdict['weight']}% | {verdict['look']} | **{verdict['outcome']}** | "
        f"{verdict['canary_requests']} / {verdict['baseline_requests']} ({verdict['source']}) | "
        f"{cells[0]} | {cells[1]} |"
    )


def _error_lines(step: str, error: str) -> list[str]:
    """The error under its step; a multi-line one (a refusal listing every artifact) keeps its lines."""
    if "\n" not in error:
        return [f"**{step}:** {_cell(error)}"]
    return [f"**{step}:**", "", "~~~~text", error.replace("~~~~", "~~~"), "~~~~"]


def _cell(text: str) -> str:
    # Redact before escaping: an escaped secret no longer matches the value registered for it.
    return redact(text).replace("|", "\\|").replace("\n", " ")
