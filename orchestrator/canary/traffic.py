"""Moved: the data plane's traffic types and capabilities are the platforms' (`platforms.traffic`).

Only `pipeline.py` still imports `TrafficMeter` from here; this alias goes when it imports it from
`orchestrator.platforms.base` (that module is being reworked in parallel: the import moves with it).
"""

from orchestrator.platforms.traffic import TrafficMeter

__all__ = ["TrafficMeter"]
