"""The least a correct re-framing HTTP/1.1 proxy in Python does per request: the ceiling for ours.

    python bench/minimal_proxy.py PORT UPSTREAM_PORT

`bench/switch.py` runs it beside our data plane, on the same release and the same event loop (uvloop
when installed), so the table shows how much of the gap to nginx is Python's and how much ours. It reads
each request and answer with the data plane's own `fast_path` (so it frames them exactly as ours does,
strictly, and re-frames them with its own Content-Length) and keeps a pool of upstream connections; it
has none of the rest: no routing table, no replicas or failover, no deadlines, no connection cap, no
meter, no llhttp for what the fast path leaves (it answers 400 or 502 and closes instead). Bench-only.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.platforms.local import event_loop
from orchestrator.platforms.local.fast_path import MAX_FAST, read_answer, read_request

_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        client, self.client = self.client, None
        if client is None or client.transport is None or client.transport.is_closing():
            if self.transport is not None:
                self.transport.close()
            return
        head = read_answer(data)
        if head is None:
            client.transport.write(_BAD_GATEWAY)
            client.transport.close()
            if self.transport is not None:
                self.transport.close()
            return
        keep = client.keep
        body = memoryview(data)[head.size :]
        client.transport.write(b"".join((head.prefix, client.connection, b"\r\n", body)))
        if head.keep_alive:
            self.pool.append(self)
        elif self.transport is not None:
            self.transport.close()
        if not keep:
            client.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        client, self.client = self.client, None
        if client is not None and client.transport is not None:
            client.transport.write(_BAD_GATEWAY)
            client.transport.close()


class Client(asyncio.Protocol):
    def __init__(self, port: int, pool: list[Upstream]) -> None:
        self.port = port
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.keep = True
        self.connection = b""
        """The answer's Connection line."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        head = read_request(data, MAX_FAST, MAX_FAST)
        if head is None:
            assert self.transport is not None
            self.transport.write(_BAD_REQUEST)
            self.transport.close()
            return
        self.keep = head.keep_alive
        if head.version_11:
            self.connection = b"" if head.keep_alive else b"Connection: close\r\n"
        else:
            self.connection = b"Connection: keep-alive\r\n" if head.keep_alive else b"Connection: close\r\n"
        message = head.upstream + data[head.size :] if head.length else head.upstream
        if self.pool:
            self._send(self.pool.pop(), message)
        else:
            asyncio.get_running_loop().create_task(self._connect(message))

    async def _connect(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(lambda: Upstream(self.pool), "127.0.0.1", self.port)
        except OSError:
            if self.transport is not None:
                self.transport.write(_BAD_GATEWAY)
                self.transport.close()
            return
        self._send(upstream, message)

    def _send(self, upstream: Upstream, message: bytes) -> None:
        upstream.client = self
        assert upstream.transport is not None
        upstream.transport.write(message)


async def serve(port: int, upstream_port: int) -> None:
    pool: list[Upstream] = []
    loop = asyncio.get_running_loop()
    sock = socket.create_server(("127.0.0.1", port), backlog=4096, reuse_port=False)
    server = await loop.create_server(lambda: Client(upstream_port, pool), sock=sock)
    async with server:
        await server.serve_forever()


def main() -> int:
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    event_loop.run(serve(port, upstream_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
