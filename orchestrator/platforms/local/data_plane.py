"""Which data plane serves the public address, as the config says (`local.proxy`, `local.max_connections`).

`python` is our proxy (`proxy`, run in a process of its own by `proxy_host`); `haproxy` is Debian's
haproxy driven through its runtime API (`haproxy`). The choice travels from the config to the
supervisor's command line and into its state, so a supervisor started again without a config serves
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT", "DEFAULT_MAX_CONNECTIONS", "KINDS", "DataPlane"]

DEFAULT_MAX_CONNECTIONS = 10_000
KINDS = ("python", "haproxy")


@dataclass(frozen=True, slots=True)
class DataPlane:
    kind: str = "python"
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def argv(self) -> list[str]:
        return ["--proxy", self.kind, "--max-connections", str(self.max_connections)]


DEFAULT = DataPlane()
