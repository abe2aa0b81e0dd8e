"""Run a console entry point in this process, then record its peak resident set size.

    python bench/_peak_rss.py <report.json> <module:function> [args...]

The entry point runs exactly as its console script would (sys.argv set, its return value the exit
code). At exit, whatever happened, `VmHWM` from /proc/self/status (the kernel's high-water mark of
this process's RSS) is written to the report with the exit code and which heavy libraries (platform
SDKs, numpy, scipy) were imported. Used by bench/scale.py to measure our CLI and its peer the same way.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

SDKS = ("pydo", "kubernetes", "azure", "paramiko", "sqlalchemy", "numpy", "scipy")


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")


def main() -> int:
    report, target, *args = sys.argv[1:]
    module, function = target.split(":")
    sys.argv = [target, *args]
    code: object = 1
    try:
        code = getattr(importlib.import_module(module), function)()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        loaded = sorted({name.split(".")[0] for name in sys.modules} & set(SDKS))
        status = code if isinstance(code, int) else (0 if code is None else 1)
        Path(report).write_text(json.dumps({"peak_kib": peak_kib(), "exit_code": status, "sdks": loaded}))
    return status


if __name__ == "__main__":
    sys.exit(main())
