"""Which Droplet group serves when no switch is under way, kept on every host of both groups.

A switch to a new release writes it once done; a switch back (rollback, undo) before its first call
to DigitalOcean. So a run that dies or loses the API half-way leaves the group that should serve
on the hosts: the next run reads the newest record (highest generation) and puts that group back
behind the load balancer. A host that missed a write holds an older generation and is outvoted.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import DeployError
from orchestrator.platforms.hosts.fleet import Fleet

__all__ = ["SwitchRecord", "read_record", "write_record"]

log = logging.getLogger(__name__)

_NAME = "droplets-switch.json"


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    generation: int
    group: str
    version: str | None


def read_record(fleets: Sequence[Fleet]) -> SwitchRecord | None:
    """The newest record on the reachable hosts (None before the first switch)."""
    found: list[SwitchRecord] = []
    for fleet in fleets:
        reachable = [c for c in fleet.connections if c.is_open]
        outcome = fleet.each(lambda c: c.run(f"cat {shlex.quote(f'{c.root}/{_NAME}')} 2>/dev/null"), reachable)
        for name, (status, out, _) in outcome.answers.items():
            if status != 0 or not out.strip():
                continue
            try:
                doc = json.loads(out)
                found.append(SwitchRecord(int(doc["generation"]), str(doc["group"]), doc.get("version")))
            except (ValueError, KeyError, TypeError):
                log.warning("host %s: its switch record %s does not parse; ignored", name, _NAME)
    return max(found, key=lambda r: r.generation) if found else None


def write_record(fleets: Sequence[Fleet], record: SwitchRecord) -> None:
    """`record` on every reachable host. Raises DeployError when no host took it (nothing was switched)."""
    data = json.dumps({"generation": record.generation, "group": record.group, "version": record.version}).encode()
    written, failures = 0, []
    for fleet in fleets:
        reachable = [c for c in fleet.connections if c.is_open]
        outcome = fleet.each(lambda c: c.sftp_write(f"{c.root}/{_NAME}", data, "switch record"), reachable)
        written += len(outcome.answers)
        failures += [f"{name}: {exc}" for name, exc in outcome.failures.items()]
    for failure in failures:
        log.warning("switch record not written on %s", failure)
    if not written:
        raise DeployError(
            f"the switch to the {record.group} Droplets was not started: no host took its record "
            f"({'; '.join(failures) or 'none reachable'})",
            platform="hosts",
            operation="switch",
        )
