"""A tiny TCP proxy on 127.0.0.1 that can stall or cut a connection, for network-fault tests.

Every accepted connection is forwarded to ``target`` by two threads (one per direction).
Faults apply to the server-to-client direction, which is where a download lives:

* ``cut_after(n, connections=1)``: the next ``connections`` connections are closed abruptly
  after ``n`` bytes from the server (a Wi-Fi drop in the middle of a large message);
* ``stall(True)``: from now on nothing more is passed to clients, connections stay open (a
  server or link that hangs, which only a client timeout can get out of);
* ``slow_reply_to(command, seconds)``: once a client sends a line holding ``command``, the
  server's answer waits ``seconds`` before it is passed on (a slow link), and ``sent`` is set
  at that moment, so a test can act while the client waits for the answer.

Usage::

    with FaultyProxy(("127.0.0.1", server.port)) as proxy:
        proxy.cut_after(100_000)
        ... point the client at proxy.port ...
"""

from __future__ import annotations

import socket
import threading
import time


class FaultyProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.cuts: list[int] = []           # byte limits for the next connections
        self.stalled = threading.Event()
        self.connections = 0
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.slow_command: bytes | None = None
        self.slow_seconds = 0.0
        self.held_until = 0.0
        self.sent = threading.Event()

    def __enter__(self) -> "FaultyProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.closed.set()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                _close(sock)

    def cut_after(self, limit: int, connections: int = 1) -> None:
        with self.lock:
            self.cuts.extend([limit] * connections)

    def slow_reply_to(self, command: bytes, seconds: float) -> None:
        self.slow_command, self.slow_seconds = command, seconds

    def stall(self, on: bool = True) -> None:
        (self.stalled.set if on else self.stalled.clear)()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.connections += 1
                limit = self.cuts.pop(0) if self.cuts else None
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, None, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, limit, True),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None,
              to_client: bool) -> None:
        passed = 0
        try:
            while chunk := source.recv(65536):
                if to_client and self.stalled.is_set():
                    self.closed.wait()          # hold the connection open, pass nothing
                    return
                if not to_client and self.slow_command and self.slow_command in chunk:
                    self.held_until = time.monotonic() + self.slow_seconds
                    self.slow_command = None    # once
                    sink.sendall(chunk)
                    self.sent.set()
                    continue
                if to_client and (wait := self.held_until - time.monotonic()) > 0:
                    time.sleep(wait)
                if limit is not None and passed + len(chunk) >= limit:
                    sink.sendall(chunk[: max(limit - passed, 0)])
                    break
                sink.sendall(chunk)
                passed += len(chunk)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
