"""The release the crash matrix deploys: says its version, and lets the test hold or fail `/verify`.

    python tests/recovery/crash_app.py --port P --version V --flags DIR

`/health` and `/version` answer at once. `/verify` (the matrix's critical endpoint, read only by
the post-switch verification) answers 500 while `DIR/verify-<V>.fail` exists, and while
`DIR/verify-<V>.hold` exists it writes `DIR/verify-<V>.held` and waits (at most 60 s): the test
knows the orchestrator is inside its verification, and kills it there.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--flags", required=True)
    args = parser.parse_args()
    flags = Path(args.flags)
    version = args.version

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *items: Any) -> None:
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/verify":
                hold = flags / f"verify-{version}.hold"
                if hold.exists():
                    (flags / f"verify-{version}.held").write_text("held")
                    until = time.monotonic() + 60
                    while hold.exists() and time.monotonic() < until:
                        time.sleep(0.02)
                if (flags / f"verify-{version}.fail").exists():
                    self._answer(500, {"version": version, "verify": "failing"})
                    return
            self._answer(200, {"status": "ok", "version": version})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
