"""The hardening section of the run report (GitHub step summary), as Markdown."""

from __future__ import annotations

from orchestrator.hardening.delivery import DeliveryReport, HardeningReport

__all__ = ["hardening_markdown"]


def hardening_markdown(report: HardeningReport | None, backlog: DeliveryReport | None = None) -> str:
    """Pairs generated for this run, delivered or queued, the fallback file; plus the start-of-run flush.

    `report` is `emit()`'s (None when the run did not fail); `backlog` is the start-of-run `flush()`'s.
    """
    lines = ["### Hardening", ""]
    if report is None or report.pairs_generated == 0:
        lines.append("No preference pair: nothing failed.")
    else:
        lines += [
            "| pairs generated | delivered | queued | agentbench submission |",
            "|---|---|---|---|",
            f"| {report.pairs_generated} | {report.delivered} | {report.queued} | {report.submission_id or '-'} |",
        ]
        if report.fallback_file:
            lines += [
                "",
                f"The ledger database was unreachable: the pairs wait in `{report.fallback_file}` and are "
                "imported and delivered by the next run that reaches it. Keep that file (for example as a "
                "workflow artifact) if the workspace does not survive the job.",
            ]
        if report.lost:
            lines += ["", f"**{report.lost} pair(s) could not be stored anywhere**; see the log."]
        if report.delivery.stopped:
            lines += ["", f"Delivery stopped: {report.delivery.stopped}. Queued pairs are retried by the next run."]
    if backlog is not None and (backlog.delivered or backlog.imported or backlog.remaining or backlog.rejected):
        lines += [
            "",
            f"Earlier runs' queue: {backlog.delivered} delivered now, {backlog.rejected} rejected by agentbench, "
            f"{backlog.imported} imported from the fallback file, {backlog.remaining} still queued.",
        ]
    return "\n".join(lines) + "\n"
