"""A loopback TCP proxy between the loader and PostgreSQL that breaks the connection on cue.

The proxy reads the PostgreSQL wire protocol just enough to see message boundaries (a type byte
and a length; the startup message has no type byte), so a fault can strike at an exact moment:

- ``commit_reply``: the server's ``CommandComplete`` for the client's ``COMMIT`` (the server has
  committed; the client never hears it).
- ``commit``: the client's ``COMMIT`` itself, before the server sees it (nothing is committed).

Both strike only at the COMMIT of a transaction that carried a COPY (the run's rows), not at the
small commits a client makes while setting up its session.
- ``copy_data``: a ``CopyData`` message from the client (a COPY cut off mid-stream).
- ``copy_out``: a ``CopyData`` message from the server (a read cut off mid-stream).

and do one of two things there:

- ``drop``: close both sockets at once (a server crash, a reset connection).
- ``blackhole``: keep both sockets open and forward nothing more, either way (a middlebox that
  stopped forwarding: no error ever reaches either end).
- ``terminate``: forward the message, then end the server process behind this connection with
  ``pg_terminate_backend`` (what a server shutdown or restart does: the client gets the server's
  own FATAL message, then the connection closes). Needs ``admin_dsn``.

Each fault lets ``skip`` occurrences of its event through, then strikes ``times`` times over all
connections; after that the proxy forwards faithfully, so a retry or a second run goes through. Clients must connect with ``sslmode=disable`` (the proxy
does not speak TLS) and ``gssencmode=disable``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_UNTYPED_REQUESTS = {80877102, 80877103, 80877104}  # cancel, SSL and GSS encryption requests


@dataclass
class Fault:
    event: str
    action: str
    times: int = 1
    skip: int = 0  # occurrences to let through before the first strike
    struck: int = 0


class _Stream:
    """Splits one direction of a connection into whole protocol messages."""

    def __init__(self, typed: bool) -> None:
        self.buffer = bytearray()
        self.typed = typed

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buffer += data
        while True:
            if self.typed:
                if len(self.buffer) < 5:
                    return
                size = 1 + struct.unpack("!i", self.buffer[1:5])[0]
            else:
                if len(self.buffer) < 8:
                    return
                size = struct.unpack("!i", self.buffer[:4])[0]
                code = struct.unpack("!i", self.buffer[4:8])[0]
                if len(self.buffer) >= size and code not in _UNTYPED_REQUESTS:
                    self.typed = True  # the startup message: typed messages follow
            if len(self.buffer) < size:
                return
            message = bytes(self.buffer[:size])
            del self.buffer[:size]
            yield message


class PgProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream``; see the module doc."""

    def __init__(self, upstream_host: str, upstream_port: int, admin_dsn: str | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.admin_dsn = admin_dsn
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._blackholed: set[int] = set()  # ids of the client sockets kept open, forwarding nothing
        self.events: list[str] = []
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    # -- the test's side -------------------------------------------------------------------
    def fail_on(self, event: str, action: str = "drop", times: int = 1, skip: int = 0) -> None:
        assert event in ("commit_reply", "commit", "copy_data", "copy_out") and action in ("drop", "blackhole", "terminate")
        assert action != "terminate" or self.admin_dsn, "terminate needs admin_dsn"
        with self._lock:
            self._faults.append(Fault(event, action, times, skip))

    def struck(self) -> int:
        with self._lock:
            return sum(f.struck for f in self._faults)

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    # -- forwarding ------------------------------------------------------------------------
    def _strike(self, event: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.event == event and fault.skip:
                    fault.skip -= 1
                elif fault.event == event and fault.struck < fault.times:
                    fault.struck += 1
                    self.events.append(f"{fault.action} at {event}")
                    return fault.action
        return None

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), name="pg-proxy-conn", daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        upstream, downstream = _Stream(typed=False), _Stream(typed=True)
        commit_sent = copied = False
        backend_pid: list[int] = []
        cut_off = False  # a read whose server process was ended: what it had sent is lost too
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    if sock is client:
                        for message in upstream.feed(data):
                            action = None
                            if message[:1] == b"Q" and message[5:].rstrip(b"\0").strip().upper() == b"COMMIT":
                                commit_sent, copied = copied, False
                                action = self._strike("commit") if commit_sent else None
                            elif message[:1] == b"d":
                                copied = True
                                action = self._strike("copy_data")
                            if action == "terminate":
                                server.sendall(message)
                                self._terminate(backend_pid)
                            elif action:
                                return self._act(action, client, server)
                            else:
                                server.sendall(message)
                    else:
                        if not upstream.typed:
                            client.sendall(data)  # the one-byte answer to an SSL/GSS request
                            continue
                        for message in downstream.feed(data):
                            if message[:1] == b"K":  # BackendKeyData: the server process's pid
                                backend_pid.append(struct.unpack("!i", message[5:9])[0])
                            if cut_off and message[:1] not in (b"E", b"N"):
                                continue
                            action = None
                            if commit_sent and message[:1] == b"C" and message[5:].startswith(b"COMMIT"):
                                commit_sent = copied = False
                                action = self._strike("commit_reply")
                            elif message[:1] == b"d":
                                action = self._strike("copy_out")
                            if action == "terminate":
                                client.sendall(message)
                                self._terminate(backend_pid)
                                cut_off = message[:1] == b"d"
                            elif action:
                                return self._act(action, client, server)
                            else:
                                client.sendall(message)
        except OSError:
            return
        finally:
            if not self._stopping.is_set() and id(client) not in self._blackholed:
                for sock in (client, server):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _terminate(self, backend_pid: list[int]) -> None:
        import psycopg2

        admin = psycopg2.connect(self.admin_dsn)
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (backend_pid[-1],))
        finally:
            admin.close()

    def _act(self, action: str, client: socket.socket, server: socket.socket) -> None:
        if action == "blackhole":
            self._blackholed.add(id(client))  # both sockets stay open until close()
            return
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def pg_proxy(upstream_host: str, upstream_port: int, admin_dsn: str | None = None) -> Iterator[PgProxy]:
    proxy = PgProxy(upstream_host, upstream_port, admin_dsn)
    try:
        yield proxy
    finally:
        proxy.close()
