"""Values into and out of the ledger's JSONB columns.

Going in, everything is serialised the same way (sorted keys, anything else as its `str`) so equal
values compare equal in SQL. Coming out (or off a result's free-form extras), nothing is trusted
to have the expected shape: a missing or malformed value reads as empty, never as an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "mapping", "optional_str", "string_map"]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def optional_str(value: Any) -> str | None:
    return str(value) if value is not None else None


def string_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}
