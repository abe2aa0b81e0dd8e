"""Lint pending migrations with squawk, and decide which findings refuse the deploy.

During a zero-downtime deploy the old release keeps serving while the schema changes under it,
so a finding refuses the run when it would break that release (dropping or renaming what it
reads, making a column it does not write required) or block its traffic (locks held for a table
rewrite or a non-concurrent index build). Every other finding is advice and is only reported.
A refusing rule is accepted for one file by `migrations.lint.acknowledge: {file: [rule]}`.

All files go to ONE squawk process per transaction mode (squawk starts in ~5 ms but 300 of them
would still cost seconds). Transactional files are linted with `--assume-in-transaction`, which
is how they run, so e.g. an index on a table created in the same file is not flagged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.contract import MigrationsConfig
from orchestrator.errors import MigrationError
from orchestrator.migrations.scripts import MigrationScript

__all__ = ["REFUSING_RULES", "LintFinding", "LintReport", "find_squawk", "lint"]

REFUSING_RULES: frozenset[str] = frozenset(
    {
        # would break the release still serving
        "ban-drop-column",
        "ban-drop-table",
        "ban-drop-database",
        "ban-truncate-cascade",
        "renaming-column",
        "renaming-table",
        "adding-required-field",
        "adding-not-nullable-field",
        "changing-column-type",
        # would block its traffic (long locks, table rewrites, validation scans)
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
        "adding-field-with-default",
        "adding-foreign-key-constraint",
        "constraint-missing-not-valid",
        "disallowed-unique-constraint",
        "adding-serial-primary-key-field",
        "ban-alter-domain-with-add-constraint",
        "ban-create-domain-with-constraint",
        # would defeat the runner's own transaction handling, or cannot be checked at all
        "ban-concurrent-index-creation-in-transaction",
        "transaction-nesting",
        "ban-uncommitted-transaction",
        "syntax-error",
    }
)

SATISFIED_BY_THE_RUNNER: frozenset[str] = frozenset(
    {
        # the runner runs every migration under `SET LOCAL lock_timeout` (migrations.lock_timeout_seconds)
        "require-lock-timeout",
    }
)
"""Advice the runner already follows for every file: reporting it would only teach readers to skip advice."""

_INSTALL_HINT = "squawk is not installed: `pip install squawk-cli` (or set migrations.lint.enabled: false)"
_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class LintFinding:
    filename: str
    rule: str
    line: int
    message: str
    help: str | None
    refusing_rule: bool
    acknowledged: bool

    @property
    def refuses(self) -> bool:
        return self.refusing_rule and not self.acknowledged

    def describe(self) -> str:
        if self.refuses:
            tag = "REFUSED"
        elif self.acknowledged:
            tag = "acknowledged"
        else:
            tag = "advice"
        text = f"{self.filename}:{self.line} {self.rule} [{tag}]: {self.message}"
        return f"{text} ({self.help})" if self.help else text


@dataclass(frozen=True, slots=True)
class LintReport:
    findings: tuple[LintFinding, ...]
    duration_ms: float
    enabled: bool = True


def find_squawk() -> str | None:
    """The squawk binary: on PATH, or beside this interpreter (a virtualenv not on PATH)."""
    found = shutil.which("squawk")
    if found:
        return found
    beside = Path(sys.executable).parent / "squawk"
    return str(beside) if beside.exists() and os.access(beside, os.X_OK) else None


def lint(scripts: Sequence[MigrationScript], config: MigrationsConfig, *, pg_version: str | None) -> LintReport:
    """Findings for the versioned `scripts` (undo scripts run only on rollback and are not linted).

    Raises MigrationError when squawk is missing or does not produce its JSON report.
    """
    if not config.lint_enabled:
        return LintReport(findings=(), duration_ms=0.0, enabled=False)
    targets = [s for s in scripts if s.kind == "versioned"]
    if not targets:
        return LintReport(findings=(), duration_ms=0.0)
    silenced = [s.filename for s in targets if "squawk-ignore" in s.sql]
    if silenced:
        # Acknowledging a finding is the deploy config's decision, reviewed with it; a comment inside
        # the migration would let the migration switch off the check that guards the running release.
        raise MigrationError(
            f"{', '.join(silenced)}: squawk-ignore comments are not honoured; remove them and acknowledge "
            "the rule for that file in migrations.lint.acknowledge instead"
        )
    binary = find_squawk()
    if binary is None:
        raise MigrationError(_INSTALL_HINT)
    started = time.perf_counter()
    findings: list[LintFinding] = []
    for in_transaction in (True, False):
        group = [s for s in targets if s.transactional == in_transaction]
        if group:
            raw = _run_squawk(binary, group, in_transaction=in_transaction, pg_version=pg_version)
            findings.extend(_to_findings(raw, group, config))
    order = {s.filename: i for i, s in enumerate(targets)}
    findings.sort(key=lambda f: (order.get(f.filename, 0), f.line, f.rule))
    return LintReport(findings=tuple(findings), duration_ms=(time.perf_counter() - started) * 1000)


def _run_squawk(
    binary: str, scripts: Sequence[MigrationScript], *, in_transaction: bool, pg_version: str | None
) -> list[dict[str, Any]]:
    argv = [binary, "--reporter", "json"]
    argv.append("--assume-in-transaction" if in_transaction else "--no-assume-in-transaction")
    if pg_version:
        argv.append(f"--pg-version={pg_version}")
    argv.extend(str(s.path) for s in scripts)
    try:
        # A neutral working directory: a stray .squawk.toml must not silently exclude refusing rules;
        # acknowledgements belong in the deploy config, where they are reviewed.
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS,
            cwd=tempfile.gettempdir(),
            check=False,
        )
    except FileNotFoundError as exc:
        raise MigrationError(_INSTALL_HINT) from exc
    except subprocess.TimeoutExpired as exc:
        raise MigrationError(f"squawk did not finish linting within {_TIMEOUT_SECONDS:.0f} s") from exc
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else []
    except json.JSONDecodeError:
        data = None
    if proc.returncode not in (0, 1) or not isinstance(data, list):
        detail = (proc.stderr or proc.stdout).strip()[:2000]
        raise MigrationError(f"squawk failed (exit {proc.returncode}) while linting migrations: {detail}")
    return [d for d in data if isinstance(d, dict)]


def _to_findings(
    raw: Sequence[dict[str, Any]], scripts: Sequence[MigrationScript], config: MigrationsConfig
) -> list[LintFinding]:
    by_path = {str(s.path): s for s in scripts}
    by_name = {s.filename: s for s in scripts}
    findings: list[LintFinding] = []
    for item in raw:
        reported = str(item.get("file", ""))
        script = by_path.get(reported) or by_name.get(Path(reported).name)
        if script is None:
            continue
        rule = str(item.get("rule_name") or "unknown")
        if rule in SATISFIED_BY_THE_RUNNER:
            continue
        help_text = item.get("help")
        findings.append(
            LintFinding(
                filename=script.filename,
                rule=rule,
                line=int(item.get("line") or 0) + 1,  # squawk counts lines from 0
                message=str(item.get("message", "")),
                help=str(help_text) if help_text else None,
                refusing_rule=rule in REFUSING_RULES,
                acknowledged=rule in config.acknowledged(script.filename),
            )
        )
    return findings
