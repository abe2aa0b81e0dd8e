"""`deploy-orchestrator digests`: what the upstream agents must record for this deploy to pass the gates.

Reads the config and the artifacts only (no database, no network). Prints JSON in the shapes
the pipeline store keeps (`schema/pipeline-store.sql`, the HTTP interface in `store.py`):

    {"artifact_digests":    what validation_runs.artifact_digests and
                            compliance_verdicts.artifact_digests must hold,
     "validation_run":      the ValidationAgent's (agent_005) row for it,
     "compliance_verdict":  the ComplianceValidator's (agent_002) row,
     "sqlagent_migrations": the SQLAgent's (agent_004) row for every V file, with its undo}

With `--sql`, the same as SQL for psql: the store's idempotent DDL, then the three inserts in one
transaction. That is for a laptop or a test store, where you play the upstream agents; in
production those agents write their own rows after doing their own work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import config as config_module
from orchestrator.artifacts import ArtifactDigests, component_image_vars, digest_artifacts
from orchestrator.errors import ConfigError
from orchestrator.gates import COMPLIANCE_VALIDATOR_ID, VALIDATION_AGENT_ID
from orchestrator.sqlagent import required_records
from orchestrator.store import STORE_DDL

__all__ = ["digests_document", "digests_sql", "run_digests"]


def run_digests(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy-orchestrator digests",
        description="Print the exact artifacts and digests a validation run, a compliance verdict and the "
        "SQLAgent's records must carry for this deploy (JSON; --sql for psql). Reads files only. "
        "The workspace is $GITHUB_WORKSPACE or the current directory.",
    )
    parser.add_argument("--config", default=config_module.DEFAULT_CONFIG, help="config file, workspace-relative")
    parser.add_argument("--image", help="the image input of the deploy (overrides artifacts.docker_image)")
    parser.add_argument(
        "--validation-run-id", help="the id to record the validation run under (default: from the config, or derived)"
    )
    parser.add_argument("--sqlagent-run-id", help="the SQLAgent run id for its records (default: derived)")
    parser.add_argument("--sql", action="store_true", help="print SQL for psql instead of JSON")
    parsed = parser.parse_args(list(args))
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or ".").resolve()
    try:
        document = config_module.read_config_file(workspace / parsed.config, shown_as=parsed.config)
        config = config_module.parse_config(document, workspace)
        digests = digest_artifacts(
            config.artifacts,
            workspace,
            image=parsed.image,
            env=os.environ,
            component_images=component_image_vars(os.environ, config.deployment.platform),
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    tag = _short_digest(digests)
    run_id = parsed.validation_run_id or config.validation_run_id or f"local-{tag}"
    sqlagent_run_id = parsed.sqlagent_run_id or f"sqlagent-{tag}"
    data = digests_document(digests, run_id=run_id, sqlagent_run_id=sqlagent_run_id)
    print(digests_sql(data) if parsed.sql else json.dumps(data, indent=2, sort_keys=True))
    return 0


def digests_document(digests: ArtifactDigests, *, run_id: str, sqlagent_run_id: str) -> dict[str, Any]:
    """The rows the upstream agents must write for a deploy of exactly `digests`."""
    artifact_digests = digests.to_dict()
    return {
        "artifact_digests": artifact_digests,
        "validation_run": {
            "id": run_id,
            "status": "passed",
            "agent_id": VALIDATION_AGENT_ID,
            "artifact_digests": artifact_digests,
        },
        "compliance_verdict": {
            "validation_run_id": run_id,
            "validator_id": COMPLIANCE_VALIDATOR_ID,
            "verdict": "compliant",
            "artifact_digests": artifact_digests,
        },
        "sqlagent_migrations": [
            {"sqlagent_run_id": sqlagent_run_id, **record.to_dict()} for record in required_records(digests)
        ],
    }


def digests_sql(data: dict[str, Any]) -> str:
    """`digests_document` as psql input: the store DDL, then every row, in one transaction."""
    run, verdict = data["validation_run"], data["compliance_verdict"]
    lines = [
        "-- What the SQLAgent, the ValidationAgent and the ComplianceValidator would write for this deploy.",
        "-- For a laptop or test pipeline store only: in production those agents write their own rows.",
        "SET standard_conforming_strings = on;",
        STORE_DDL.read_text().strip(),
        "BEGIN;",
    ]
    for record in data["sqlagent_migrations"]:
        values = ", ".join(
            _literal(record[k])
            for k in ("sqlagent_run_id", "agent_id", "filename", "version", "sha256", "undo_filename", "undo_sha256")
        )
        lines.append(
            "INSERT INTO sqlagent_migrations (sqlagent_run_id, agent_id, filename, version, sha256, undo_filename,"
            f" undo_sha256) VALUES ({values}) ON CONFLICT (sqlagent_run_id, filename) DO UPDATE SET"
            " agent_id = EXCLUDED.agent_id, version = EXCLUDED.version, sha256 = EXCLUDED.sha256,"
            " undo_filename = EXCLUDED.undo_filename, undo_sha256 = EXCLUDED.undo_sha256, recorded_at = now();"
        )
    lines.append(
        "INSERT INTO validation_runs (id, status, agent_id, artifact_digests, finished_at) VALUES ("
        f"{_literal(run['id'])}, 'passed', {_literal(run['agent_id'])}, {_json(run['artifact_digests'])}, now())"
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, agent_id = EXCLUDED.agent_id,"
        " artifact_digests = EXCLUDED.artifact_digests, finished_at = EXCLUDED.finished_at;"
    )
    lines.append(
        "INSERT INTO compliance_verdicts (validation_run_id, validator_id, verdict, artifact_digests) VALUES ("
        f"{_literal(verdict['validation_run_id'])}, {_literal(verdict['validator_id'])}, 'compliant',"
        f" {_json(verdict['artifact_digests'])});"
    )
    lines.append("COMMIT;")
    return "\n".join(lines)


def _literal(value: str | None) -> str:
    # With standard_conforming_strings on (set above), doubling quotes is the whole of SQL string quoting.
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _json(value: Any) -> str:
    return _literal(json.dumps(value, sort_keys=True)) + "::jsonb"


def _short_digest(digests: ArtifactDigests) -> str:
    return hashlib.sha256(json.dumps(digests.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
