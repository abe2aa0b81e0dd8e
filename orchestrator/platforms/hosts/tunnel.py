"""A host's release on a local address: TCP on 127.0.0.1 forwarded through SSH to the release's port.

A release listens on the host's loopback, which nothing outside the host reaches (as on a real
server behind its firewall); the pre-switch checks the rollout runs from here go through this
tunnel (SSH `direct-tcpip`), one channel per connection. `close` stops the listener and every
forwarded connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

import paramiko

__all__ = ["Tunnel"]

_CHUNK = 65536


class Tunnel:
    def __init__(self, transport: paramiko.Transport, port: int) -> None:
        self._transport = transport
        self._port = port
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._closed = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._acceptor = threading.Thread(target=self._accept, name=f"tunnel-{port}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        try:
            channel = self._transport.open_channel(
                "direct-tcpip", ("127.0.0.1", self._port), client.getpeername(), timeout=10
            )
        except (paramiko.SSHException, OSError, EOFError):
            client.close()
            return
        with contextlib.closing(client), contextlib.closing(channel):
            while not self._closed.is_set():
                ready, _, _ = select.select([client.fileno(), channel.fileno()], [], [], 1.0)
                if client.fileno() in ready:
                    data = client.recv(_CHUNK)
                    if not data:
                        return
                    channel.sendall(data)
                if channel.fileno() in ready:
                    data = channel.recv(_CHUNK)
                    if not data:
                        return
                    client.sendall(data)

    def close(self) -> None:
        self._closed.set()
        # On Linux close() alone leaves a blocked accept() waiting for ever; shutdown() wakes it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
