"""Admission: digest the artifacts of this run and hold them against the verdicts (the gates)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import artifacts as artifact_digests
from orchestrator import gates, odoo
from orchestrator.contract import Request
from orchestrator.runlog import RunLog

__all__ = ["Admission", "admit"]


@dataclass(frozen=True, slots=True)
class Admission:
    report: gates.GateReport
    modules: tuple[odoo.OdooModule, ...]


def admit(
    request: Request, env: Mapping[str, str], image: str | None, log: RunLog, *, extras: dict[str, Any]
) -> Admission:
    """Raises GateError (exit 3, nothing touched) or ConfigError. Records what it read in `extras`
    (artifacts, Odoo modules, gates) as it goes, so a refusal still shows what was refused."""
    config, workspace = request.config, request.inputs.workspace
    digests = artifact_digests.digest_artifacts(config.artifacts, workspace, image=image, log=log)
    extras["artifacts"] = digests.to_dict()
    modules = odoo.read_modules(config.artifacts.odoo_modules, workspace)
    if modules:
        extras["odoo_modules"] = [m.to_dict() for m in modules]
    report = gates.check_gates(request.validation_run_id, digests, gates.open_source(config, env), config.gates)
    for line in report.describe():
        log.info(f"gate: {line}")
    extras["gates"] = report.to_dict()
    return Admission(report, modules)
