"""The supervisor's side of the data plane `local.proxy` names: our proxy process (`proxy_link`) or
haproxy (`haproxy`), two implementations of one interface (attach, sync, traffic, drain, stop, ...)."""

from __future__ import annotations

from orchestrator.platforms.local.data_plane import DataPlane
from orchestrator.platforms.local.haproxy import HaproxyLink
from orchestrator.platforms.local.proxy_link import ProxyLink
from orchestrator.platforms.local.state import StatePaths

__all__ = ["DataPlaneLink", "make_link"]

DataPlaneLink = ProxyLink | HaproxyLink


def make_link(data_plane: DataPlane, paths: StatePaths, listen: str, drain_seconds: float) -> DataPlaneLink:
    if data_plane.kind == "haproxy":
        return HaproxyLink(paths, listen, drain_seconds, data_plane.max_connections)
    return ProxyLink(paths, listen, drain_seconds, data_plane.max_connections)
