"""The emulator's HTTP side: authentication, injected faults, the service proxy, watch streams, and
the contract check of every exchange (`k8s_contract`), recorded as the emulator's violations."""

from __future__ import annotations

import contextlib
import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from tests.peers import k8s_contract
from tests.peers.k8s_api import WatchRequest
from tests.peers.k8s_objects import KINDS, status_doc
from tests.peers.k8s_store import bookmark

if TYPE_CHECKING:
    from tests.peers.k8s_emulator import K8sEmulator

__all__ = ["handler"]

_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)?$")
_WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
_DEFINITIONS = {"deployments": "io.k8s.api.apps.v1.Deployment", "services": "io.k8s.api.core.v1.Service"}


def handler(emu: K8sEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            path, query = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with emu.lock:
                emu.requests.append((self.command, self.path))
            if body and self.command in ("POST", "PUT", "PATCH"):
                with emu.lock, contextlib.suppress(ValueError):
                    emu.writes.append((self.command, path, json.loads(body)))
            if headers.get("authorization") != f"Bearer {emu.token}":
                self._answer(path, query, body, 401, status_doc(401, "Unauthorized", "Unauthorized"))
                return
            with emu.lock:
                fault = next((f for f in emu.faults if f.matches(self.command, path)), None)
                if fault is not None:
                    fault.hits += 1
            if fault is not None:
                self._fault(path, query, body, fault.status, fault.reset, fault.retry_after)
                return
            if (m := _PROXY.match(path)) is not None:
                namespace, target, rest = m.groups()
                rest = (rest or "/") + (f"?{split.query}" if split.query else "")
                status, out_headers, data = emu.proxy(self.command, namespace, target, rest, body)
                self._check(path, query, b"", status, b"")
                self._record(path, status)
                self._send(status, data, out_headers)
                return
            with emu.lock:
                answer = emu.api.handle(self.command, path, query, headers, body)
                hook = next((h for h in emu.hooks if h.method == self.command and re.fullmatch(h.path, path)), None)
                if hook is not None and hook.skip > 0:
                    hook.skip -= 1
                elif hook is not None:
                    emu.hooks.remove(hook)
                    hook.action()
            if answer.watch is not None:
                self._check(path, query, body, 200, b"")
                self._record(path, 200)
                self._stream(answer.watch)
                return
            table = k8s_contract.TABLE_MEDIA if (answer.doc or {}).get("kind") == "Table" else ""
            quoted = ['299 - "' + w.replace('"', '\\"') + '"' for w in answer.warnings]
            warnings = {"Warning": ", ".join(quoted)}
            self._answer(path, query, body, answer.status, answer.doc, table, warnings if answer.warnings else None)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def _fault(
            self, path: str, query: dict[str, str], body: bytes, status: int, reset: bool, retry_after: float | None
        ) -> None:
            if reset:
                self._record(path, 0)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            reason = "TooManyRequests" if status == 429 else "InternalError"
            self._answer(path, query, body, status, status_doc(status, reason, "injected fault"), "", extra)

        def _answer(
            self,
            path: str,
            query: dict[str, str],
            body: bytes,
            status: int,
            doc: dict[str, Any] | None,
            media: str = "",
            extra: dict[str, str] | None = None,
        ) -> None:
            payload = json.dumps(doc).encode() if doc is not None else b""
            self._check(path, query, body, status, payload, media)
            self._record(path, status)
            self._send(status, payload, {"Content-Type": "application/json", **(extra or {})})

        def _check(
            self, path: str, query: dict[str, str], body: bytes, status: int, payload: bytes, media: str = ""
        ) -> None:
            if emu.validate:
                content_type = f"application/json;{media}" if media else "application/json"
                problems = k8s_contract.check(
                    self.command, path, query, body, status, payload, content_type=content_type
                )
                # A patch is checked as the object it made; a Scale's answer is checked as a Scale above.
                patched = self.command == "PATCH" and 200 <= status < 300 and payload and not path.endswith("/scale")
                if patched:
                    kind = next((k for k in _DEFINITIONS if f"/{k}/" in path), "")
                    problems += [
                        f"patched {path}: {p}"
                        for p in k8s_contract.object_problems(_DEFINITIONS[kind], json.loads(payload))
                    ]
                emu.record_violations(problems)

        def _record(self, path: str, status: int) -> None:
            with emu.lock:
                emu.calls.append((self.command, path, status))

        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, watch: WatchRequest) -> None:
            """A watch: one JSON event per chunk until the timeout, the client leaving, or shutdown."""
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            kind = watch.query.kind
            deadline = time.monotonic() + watch.timeout
            with emu.lock:
                since = emu.store.rv if watch.since is None else watch.since
                pending = [] if watch.since is not None else [("ADDED", o) for o in emu.store.initial(watch.query)]
            if watch.initial_end_bookmark:
                pending.append(("BOOKMARK", bookmark(kind, since, initial_end=True)))
            try:
                while True:
                    for event_type, obj in pending:
                        self._event(kind, event_type, obj)
                    with emu.lock:
                        found = emu.store.events(watch.query, since)
                        while not found and not emu.stopping.is_set() and time.monotonic() < deadline:
                            emu.store.changed.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))
                            found = emu.store.events(watch.query, since)
                    if not found:
                        break
                    since = found[-1][2]
                    pending = [(event_type, obj) for event_type, obj, _rv in found]
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client went away: a watch ends like that
            self.close_connection = True

        def _event(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
            api_version, kind_name = KINDS[kind]
            event = {"type": event_type, "object": {**obj, "apiVersion": api_version, "kind": kind_name}}
            if emu.validate:
                problems = k8s_contract.object_problems(_WATCH_EVENT, event)
                problems += k8s_contract.object_problems(_DEFINITIONS[kind], event["object"])
                emu.record_violations([f"watch event {event_type} {kind}: {p}" for p in problems])
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
