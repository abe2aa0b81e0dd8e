"""Real local Odoo peers: an XML-RPC server shaped like Odoo's external API, and an upgrade command.

`OdooServer` serves `/xmlrpc/2/common` (`version`, `authenticate`) and `/xmlrpc/2/object`
(`execute_kw` on `ir.module.module`: `search`, `search_read`, `read`, `button_immediate_upgrade`)
on 127.0.0.1, keeps module states and records every upgrade. Switches: `fail_upgrade` (a Fault
whose text is Odoo-like traceback), `delay` (seconds before answering execute_kw).

Run as a script (`python tests/peers/odoo.py ARGS...`) it is a stand-in `odoo` binary: it
appends its argv as a JSON line to `$FAKE_ODOO_RECORD`, prints `$FAKE_ODOO_OUTPUT` and some
progress lines, sleeps `$FAKE_ODOO_SLEEP` seconds and exits with `$FAKE_ODOO_EXIT` (default 0).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import xmlrpc.client
from typing import Any
from xmlrpc.server import MultiPathXMLRPCServer, SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

SCRIPT = os.path.abspath(__file__)


class OdooServer:
    def __init__(self, *, database: str = "prod", login: str = "admin", password: str = "odoo-pw-1234") -> None:
        self.database, self.login, self.password = database, login, password
        self.uid = 2
        self.modules: dict[str, dict[str, Any]] = {}
        self.upgraded: list[list[str]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail_upgrade: str | None = None
        self.delay = 0.0
        self._lock = threading.Lock()

        class _Handler(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/xmlrpc/2/common", "/xmlrpc/2/object")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = MultiPathXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=_Handler, allow_none=True, logRequests=False
        )
        common = SimpleXMLRPCDispatcher(allow_none=True)
        common.register_function(self._version, "version")
        common.register_function(self._authenticate, "authenticate")  # type: ignore[arg-type]
        obj = SimpleXMLRPCDispatcher(allow_none=True)
        obj.register_function(self._execute_kw, "execute_kw")  # type: ignore[arg-type]
        self.server.add_dispatcher("/xmlrpc/2/common", common)
        self.server.add_dispatcher("/xmlrpc/2/object", obj)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add_module(self, name: str, state: str = "installed") -> None:
        with self._lock:
            self.modules[name] = {"id": len(self.modules) + 10, "name": name, "state": state}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _version(self) -> dict[str, Any]:
        return {"server_version": "17.0", "protocol_version": 1}

    def _authenticate(self, db: str, login: str, password: str, _ctx: dict[str, Any]) -> int | bool:
        ok = db == self.database and login == self.login and password == self.password
        return self.uid if ok else False

    def _execute_kw(
        self, db: str, uid: int, password: str, model: str, method: str, args: list[Any], kwargs: Any = None
    ) -> Any:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append((model, method))
        if db != self.database or uid != self.uid or password != self.password:
            raise xmlrpc.client.Fault(3, "Access Denied")
        if model != "ir.module.module":
            raise xmlrpc.client.Fault(2, f"Object {model} doesn't exist")
        if method in ("search", "search_read"):
            rows = [m for m in self.modules.values() if _matches(m, args[0])]
            if method == "search":
                return [m["id"] for m in rows]
            fields = (kwargs or {}).get("fields") or ["name", "state"]
            return [{"id": m["id"], **{f: m[f] for f in fields}} for m in rows]
        if method == "read":
            return [dict(m) for m in self.modules.values() if m["id"] in args[0]]
        if method == "button_immediate_upgrade":
            if self.fail_upgrade:
                raise xmlrpc.client.Fault(1, self.fail_upgrade)
            by_id = {m["id"]: m for m in self.modules.values()}
            names = []
            for module_id in args[0]:
                module = by_id[module_id]
                if module["state"] != "installed":
                    raise xmlrpc.client.Fault(1, f"Can not upgrade module '{module['name']}'. It is not installed.")
                names.append(module["name"])
            with self._lock:
                self.upgraded.append(names)
            return {"type": "ir.actions.client", "tag": "reload"}
        raise xmlrpc.client.Fault(2, f"unknown method {method}")


def _matches(module: dict[str, Any], domain: list[Any]) -> bool:
    for field, op, value in domain:
        if op == "in" and module[field] not in value:
            return False
        if op == "=" and module[field] != value:
            return False
    return True


def _main(argv: list[str]) -> int:
    record = os.environ.get("FAKE_ODOO_RECORD")
    if record:
        with open(record, "a") as handle:
            handle.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")
    print(f"odoo: loading modules for {' '.join(argv)}", flush=True)
    if os.environ.get("FAKE_ODOO_OUTPUT"):
        print(os.environ["FAKE_ODOO_OUTPUT"], flush=True)
    time.sleep(float(os.environ.get("FAKE_ODOO_SLEEP", "0")))
    code = int(os.environ.get("FAKE_ODOO_EXIT", "0"))
    print("odoo: done" if code == 0 else "odoo: ERROR upgrading modules", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
