"""A local HTTPS emulator of the Dropbox HTTP API (v2) for tests.

It speaks the wire format of the real ``dropbox`` SDK (12.x), which tests drive unmodified:

* RPC routes: ``POST https://HOST/2/<route>`` with a JSON body; success replies carry
  ``Content-Type: application/json`` exactly (the SDK asserts it, a charset breaks it).
* Download routes (``files/download``): the argument is JSON in the ``Dropbox-API-Arg``
  request header, the reply body is the file and its metadata is JSON in the
  ``Dropbox-API-Result`` response header.  Bodies are streamed in 1 MiB chunks; a single
  ``Range: bytes=...`` header is honoured (``dropbox.build_range_headers``).
* ``/oauth2/token`` (form POST): refresh-token grant and PKCE authorization-code grant.
* Errors as the SDK decodes them: 409 route errors (``ApiError``), 401 auth errors
  (``AuthError``), 429 with ``retry_after`` (``RateLimitError``), 5xx
  (``InternalServerError``), 400 ``invalid_grant`` from the token endpoint (``AuthError``).

One server on ``127.0.0.1:PORT`` plays the API, content, notify and web hosts.

THE IMPORT-TIME TRAP.  The SDK reads ``DROPBOX_API_HOST``, ``DROPBOX_API_CONTENT_HOST``,
``DROPBOX_API_NOTIFY_HOST`` and ``DROPBOX_WEB_HOST`` once, when ``dropbox`` is first
imported, into module constants (``dropbox.session``) that ``dropbox.dropbox_client`` and
``dropbox.oauth`` copy with ``from ... import`` and bake into default arguments
(``refresh_access_token(host=API_HOST)``).  They cannot be changed afterwards without
patching the SDK.  Hence:

* Subprocess use (the normal case: ``frame-ingest`` runs as a child): pass
  ``{**os.environ, **emulator.env()}`` as the child's environment.  Nothing else needed.
* In-process use: call :func:`pin_sdk_hosts` before anything imports ``dropbox`` (top of
  ``tests/conftest.py``), then start emulators with ``DropboxEmulator(port=that_port)``.
  :meth:`DropboxEmulator.check_sdk_hosts` raises :class:`SdkHostsError` with an explanation
  if the SDK in this process was imported pointing elsewhere.

This module never imports ``dropbox`` itself, so importing it cannot spring the trap.

CA trust: ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the environment override
``Dropbox(ca_certs=...)`` (requests' ``trust_env``).  Clients must use a session built with
``dropbox.create_session(ca_certs=emulator.ca_file)`` and ``session.trust_env = False``;
``DropboxOAuth2FlowNoRedirect`` builds its own session, so replace its public
``requests_session`` attribute the same way.

Usage::

    with DropboxEmulator() as emu:
        emu.put_file("/Photos/a.jpg", b"...")
        token = emu.add_refresh_token("my-app-key")
        subprocess.run([...], env={**os.environ, **emu.env()})
        assert emu.count("files/download") == 1

The test suite runs one emulator per session (``tests/conftest.py``: the ``emulator``
fixture); the ``dropbox`` fixture gives every test its own app key, refresh token and root
folder on it and calls :meth:`DropboxEmulator.reset_between_tests` around the test.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import random
import secrets
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import trustme

__all__ = [
    "DropboxEmulator",
    "RequestRecord",
    "SdkHostsError",
    "SDK_HOST_VARS",
    "check_sdk_hosts",
    "content_hash",
    "pin_sdk_hosts",
    "sdk_env",
]

CHUNK_SIZE = 1 << 20  # download write size and generated-content block size
HASH_BLOCK_SIZE = 4 << 20  # Dropbox content_hash block size
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SDK_HOST_VARS = (
    "DROPBOX_API_HOST",
    "DROPBOX_API_CONTENT_HOST",
    "DROPBOX_API_NOTIFY_HOST",
    "DROPBOX_WEB_HOST",
)
# (module, attribute) pairs in which the SDK keeps the host names it read at import time.
_SDK_HOST_ATTRS = (
    ("dropbox.session", "API_HOST"),
    ("dropbox.session", "API_CONTENT_HOST"),
    ("dropbox.session", "API_NOTIFICATION_HOST"),
    ("dropbox.session", "WEB_HOST"),
    ("dropbox.dropbox_client", "API_HOST"),
    ("dropbox.dropbox_client", "API_CONTENT_HOST"),
    ("dropbox.dropbox_client", "API_NOTIFICATION_HOST"),
    ("dropbox.oauth", "API_HOST"),
    ("dropbox.oauth", "WEB_HOST"),
)
ACCOUNT_ID = "dbid:AADframeIngestEmulatorAccount000000"
ACCOUNT_UID = "4242424242"
GRANTED_SCOPE = "account_info.read files.content.read files.metadata.read files.content.write"
_RESERVED_SOCKETS: dict[int, socket.socket] = {}
_PINNED_PORT: list[int] = []


# --------------------------------------------------------------------------- SDK hosts


class SdkHostsError(RuntimeError):
    """The dropbox SDK in this process was imported with hosts other than the emulator's."""


def sdk_env(host: str) -> dict[str, str]:
    """The environment variables that point the dropbox SDK at ``host`` ("127.0.0.1:PORT")."""
    return {name: host for name in SDK_HOST_VARS}


def _sdk_hosts_in_process() -> dict[str, str]:
    """Host values the already-imported SDK modules hold, keyed "module.attr"."""
    found = {}
    for module_name, attr in _SDK_HOST_ATTRS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            found[f"{module_name}.{attr}"] = getattr(module, attr)
    return found


def check_sdk_hosts(host: str) -> None:
    """Make sure an in-process dropbox SDK talks to ``host``.

    If ``dropbox`` is not imported yet, the host variables are put into ``os.environ`` so that
    the first import picks them up.  If it is imported and holds other hosts, raise
    :class:`SdkHostsError` explaining the trap instead of letting requests go to the real
    Dropbox.
    """
    found = _sdk_hosts_in_process()
    if not found:
        os.environ.update(sdk_env(host))
        return
    wrong = {name: value for name, value in found.items() if value != host}
    if wrong:
        raise SdkHostsError(
            f"the dropbox SDK was imported in this process before its hosts pointed at the "
            f"emulator ({host}); it reads {', '.join(SDK_HOST_VARS)} only once, at the first "
            f"`import dropbox`, and now holds {wrong}. Call "
            f"tests.support.dropbox_emulator.pin_sdk_hosts() at the top of tests/conftest.py "
            f"(before anything imports dropbox) and start the emulator with "
            f"DropboxEmulator(port=<pinned port>), or drive the SDK in a subprocess with "
            f"env={{**os.environ, **emulator.env()}}."
        )


def pin_sdk_hosts() -> int:
    """Reserve a loopback port and point this process's (future) dropbox SDK at it.

    Call before the first ``import dropbox`` in the process, e.g. at the top of
    ``tests/conftest.py``.  The port stays bound (not listening) until a
    ``DropboxEmulator(port=port)`` takes it over, so nobody else can grab it.  Idempotent:
    later calls return the same port.  Raises :class:`SdkHostsError` if ``dropbox`` was
    already imported with hosts that are not a single ``127.0.0.1:PORT``.
    """
    if _PINNED_PORT:
        return _PINNED_PORT[0]
    found = set(_sdk_hosts_in_process().values())
    if found:
        host = found.pop() if len(found) == 1 else ""
        if not host.startswith("127.0.0.1:"):
            check_sdk_hosts("127.0.0.1:<port>")  # raises with the explanation
        _PINNED_PORT.append(int(host.rsplit(":", 1)[1]))
        return _PINNED_PORT[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    _RESERVED_SOCKETS[port] = sock
    _PINNED_PORT.append(port)
    os.environ.update(sdk_env(f"127.0.0.1:{port}"))
    return port


# --------------------------------------------------------------------------- content


class _ContentHasher:
    """Dropbox content_hash: SHA-256 over the SHA-256 digests of 4 MiB blocks, as hex."""

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        """Feed more bytes."""
        view = memoryview(data)
        while len(view):
            if self._filled == HASH_BLOCK_SIZE:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._filled = 0
            take = min(HASH_BLOCK_SIZE - self._filled, len(view))
            self._block.update(view[:take])
            self._filled += take
            view = view[take:]

    def hexdigest(self) -> str:
        """The content hash of everything fed so far."""
        overall = self._overall.copy()
        if self._filled:
            overall.update(self._block.digest())
        return overall.hexdigest()


def content_hash(data: bytes | Iterable[bytes]) -> str:
    """Dropbox content_hash of ``bytes`` or of an iterable of byte chunks."""
    hasher = _ContentHasher()
    for chunk in [data] if isinstance(data, (bytes, bytearray, memoryview)) else data:
        hasher.update(chunk)
    return hasher.hexdigest()


class _BytesContent:
    """File content held once in memory; ranges are served as zero-copy memoryviews."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self.size = len(self._data)

    def iter_range(self, start: int, end: int) -> Iterator[memoryview]:
        """Yield bytes [start, end) in chunks of at most CHUNK_SIZE."""
        view = memoryview(self._data)
        for pos in range(start, end, CHUNK_SIZE):
            yield view[pos : min(pos + CHUNK_SIZE, end)]


class _GeneratedContent:
    """Deterministic pseudo-random content of any size, produced on the fly.

    Only one 1 MiB random base block per file lives in memory; block ``i`` is that block
    rotated by ``i * 7919`` bytes, so every block differs and any range is cheap.
    """

    def __init__(self, size: int, seed: int | str) -> None:
        self.size = size
        self._base = random.Random(f"dropbox-emulator:{seed}").randbytes(CHUNK_SIZE)

    def _block(self, index: int) -> bytes:
        shift = (index * 7919) % CHUNK_SIZE
        return self._base[shift:] + self._base[:shift]

    def iter_range(self, start: int, end: int) -> Iterator[memoryview]:
        """Yield bytes [start, end) in chunks of at most CHUNK_SIZE."""
        pos = start
        while pos < end:
            index, offset = divmod(pos, CHUNK_SIZE)
            stop = min(CHUNK_SIZE, offset + end - pos)
            yield memoryview(self._block(index))[offset:stop]
            pos += stop - offset


def _flip_one_byte(chunks: Iterable[memoryview], start: int, target: int) -> Iterator[Any]:
    """Pass ``chunks`` (whose first byte sits at offset ``start``) through, inverting the byte
    at absolute offset ``target``; the caller makes sure ``target`` lies in the range."""
    pos = start
    for chunk in chunks:
        if pos <= target < pos + len(chunk):
            data = bytearray(chunk)
            data[target - pos] ^= 0xFF
            chunk = memoryview(bytes(data))
        pos += len(chunk)
        yield chunk


# --------------------------------------------------------------------------- file tree


def _now() -> str:
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


def _fmt_time(value: datetime | str | None) -> str:
    if value is None:
        return _now()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime(TIME_FORMAT)
    return value


def _clean_path(path: str) -> str:
    """Normalise a display path: leading "/", no trailing or doubled "/"; "" is the root."""
    if path not in ("", "/") and not path.startswith("/"):
        raise _PathError("malformed_path")
    parts = [part for part in path.split("/") if part]
    return "/" + "/".join(parts) if parts else ""


def _parent(lower: str) -> str:
    return lower.rsplit("/", 1)[0]


class _PathError(Exception):
    """A LookupError tag (not_found, not_folder, malformed_path, ...) for a route error."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


@dataclass
class _Node:
    """A file or folder.  ``content`` is None for folders."""

    kind: str
    path_display: str
    id: str
    rev: str = ""
    content: Any = None
    content_hash: str = ""
    client_modified: str = ""
    server_modified: str = ""

    @property
    def name(self) -> str:
        return self.path_display.rsplit("/", 1)[-1]


class _FileTree:
    """In-memory Dropbox namespace with a change log.  Callers hold the emulator lock."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.nodes: dict[str, _Node] = {}
        self.by_id: dict[str, str] = {}
        self.tombstones: dict[str, str] = {}  # path_lower -> last path_display
        self.log: list[str] = []  # path_lower of every change, in order
        self._revs = 0
        self._on_change = on_change

    def _changed(self, lower: str) -> None:
        self.log.append(lower)
        self._on_change()

    def _next_rev(self) -> str:
        self._revs += 1
        return f"015{self._revs:09x}"

    def resolve(self, path: str) -> tuple[str, _Node | None]:
        """(path_lower, node or None) for a path or "id:..." reference; "" is the root."""
        if path.startswith("id:"):
            lower = self.by_id.get(path)
            if lower is None:
                raise _PathError("not_found")
            return lower, self.nodes[lower]
        lower = _clean_path(path).lower()
        return lower, self.nodes.get(lower)

    def require(self, path: str, kind: str | None = None) -> tuple[str, _Node]:
        """Like resolve, but raise _PathError unless the node exists (and has ``kind``)."""
        lower, node = self.resolve(path)
        if node is None:
            raise _PathError("not_found")
        if kind is not None and node.kind != kind:
            raise _PathError("not_file" if kind == "file" else "not_folder")
        return lower, node

    def _display_for(self, display: str) -> str:
        """Use the existing parents' spelling for the parent part of ``display``."""
        parent_lower = _parent(display.lower())
        parent = self.nodes.get(parent_lower)
        prefix = parent.path_display if parent else _parent(display)
        return prefix + "/" + display.rsplit("/", 1)[1]

    def ensure_folder(self, display: str) -> _Node | None:
        """Create ``display`` and missing ancestors as folders; None for the root."""
        if display == "":
            return None
        lower = display.lower()
        node = self.nodes.get(lower)
        if node is not None:
            if node.kind != "folder":
                raise _PathError("conflict")
            return node
        self.ensure_folder(_parent(display))
        node = _Node("folder", self._display_for(display), "id:" + secrets.token_urlsafe(16))
        self._insert(lower, node)
        return node

    def _insert(self, lower: str, node: _Node) -> None:
        self.nodes[lower] = node
        self.by_id[node.id] = lower
        self.tombstones.pop(lower, None)
        self._changed(lower)

    def put(self, display: str, content: Any, client_modified: str | None) -> _Node:
        """Create or overwrite a file (keeping its id), creating parent folders."""
        lower = display.lower()
        old = self.nodes.get(lower)
        if old is not None and old.kind == "folder":
            raise _PathError("conflict")
        self.ensure_folder(_parent(display))
        node = _Node(
            "file",
            old.path_display if old else self._display_for(display),
            old.id if old else "id:" + secrets.token_urlsafe(16),
            rev=self._next_rev(),
            content=content,
            content_hash=content_hash(content.iter_range(0, content.size)),
            client_modified=client_modified or _now(),
            server_modified=_now(),
        )
        self._insert(lower, node)
        return node

    def subtree(self, lower: str) -> list[str]:
        """``lower`` and all its descendants, parents first."""
        prefix = lower + "/"
        return sorted(p for p in self.nodes if p == lower or p.startswith(prefix))

    def remove(self, lower: str) -> list[_Node]:
        """Delete a node and its descendants; returns them, parents first."""
        removed = []
        for path in self.subtree(lower):
            node = self.nodes.pop(path)
            self.by_id.pop(node.id, None)
            self.tombstones[path] = node.path_display
            self._changed(path)
            removed.append(node)
        return removed

    def move(self, src_lower: str, dst_display: str) -> _Node:
        """Move a node (and its subtree) to ``dst_display``; ids stay, files get new revs."""
        src_display = self.nodes[src_lower].path_display
        moved = self.remove(src_lower)
        self.ensure_folder(_parent(dst_display))
        dst_display = self._display_for(dst_display)
        for node in moved:
            node.path_display = dst_display + node.path_display[len(src_display) :]
            if node.kind == "file":
                node.rev = self._next_rev()
            self._insert(node.path_display.lower(), node)
        return moved[0]

    def free_name(self, display: str) -> str:
        """``display`` or the first free "name (N).ext" variant of it."""
        parent, name = display.rsplit("/", 1)
        stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        number = 1
        while display.lower() in self.nodes:
            display = f"{parent}/{stem} ({number}){dot}{ext}"
            number += 1
        return display

    @staticmethod
    def in_scope(lower: str, root: str, recursive: bool) -> bool:
        """Whether a change at ``lower`` belongs to a listing of ``root``."""
        if lower == root:
            return recursive and root != ""
        if not lower.startswith(root + "/"):
            return False
        return recursive or "/" not in lower[len(root) + 1 :]

    def listing(self, root: str, recursive: bool, include_deleted: bool) -> list[str]:
        """Paths (lower) in a list_folder of ``root``, parents first.

        Like Dropbox, a recursive listing of a non-root folder includes the folder itself.
        """
        paths = [p for p in self.nodes if self.in_scope(p, root, recursive)]
        if include_deleted:
            paths += [p for p in self.tombstones if self.in_scope(p, root, recursive)]
        return sorted(paths)

    def changes_since(self, position: int, root: str, recursive: bool) -> list[str]:
        """Paths changed after log ``position`` under ``root``, ordered by last change."""
        latest: dict[str, int] = {}
        for index in range(position, len(self.log)):
            lower = self.log[index]
            if self.in_scope(lower, root, recursive):
                latest[lower] = index
        return sorted(latest, key=latest.__getitem__)


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class RequestRecord:
    """One request the emulator answered (``status`` is what it sent)."""

    route: str
    status: int
    method: str = "POST"
    path: str | None = None  # path_lower of the request's path / from_path, if any
    arg: Any = None
    fault: str | None = None  # which injected fault shaped the reply, if any


@dataclass
class _Request:
    method: str
    route: str
    headers: Any
    body: bytes
    url: str


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None
    length: int = 0
    drop_after: int | None = None
    fault: str | None = None


def _json_reply(status: int, obj: Any) -> _Reply:
    return _Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


def _union(*tags: str) -> dict:
    """Nested stone union: _union("to", "conflict", "file") -> {".tag": "to", "to": {...}}."""
    value: dict = {".tag": tags[-1]}
    for tag in reversed(tags[:-1]):
        value = {".tag": tag, tag: value}
    return value


def _route_error(*tags: str) -> _Reply:
    """A 409 route error the SDK turns into ApiError."""
    return _json_reply(409, {"error_summary": "/".join(tags) + "/..", "error": _union(*tags)})


def _auth_error(tag: str) -> _Reply:
    """A 401 the SDK turns into AuthError (and refreshes on ``expired_access_token``)."""
    return _json_reply(401, {"error_summary": tag + "/..", "error": {".tag": tag}})


def _route_key(route: str) -> str:
    """"/2/files/download" or "files/download" -> "files/download"."""
    route = route.strip().lstrip("/")
    return route[2:] if route.startswith("2/") else route


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end_exclusive) of a single "bytes=" range; None if absent.

    Raises ValueError if the range is malformed or cannot be satisfied.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise ValueError(header)
    first, _, last = spec.strip().partition("-")
    if first == "":
        count = int(last)
        if count == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - count), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ValueError(header)
    return start, end


class _Handler(http.server.BaseHTTPRequestHandler):
    """Reads a request, lets the emulator answer it, writes the reply (streamed)."""

    protocol_version = "HTTP/1.1"
    server_version = "DropboxEmulator/1.0"
    timeout = 60  # idle keep-alive connections close after this

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self._handle("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def _handle(self, method: str) -> None:
        emulator: DropboxEmulator = self.server.emulator  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        request = _Request(method, _route_key(url.path), self.headers, body, self.path)
        self._send(emulator._dispatch(request))

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        length = reply.length if reply.stream is not None else len(reply.body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            if reply.stream is None:
                self.wfile.write(reply.body)
            else:
                self._write_stream(reply.stream, reply.drop_after)
        except OSError:  # the client went away (includes ssl.SSLError)
            self.close_connection = True

    def _write_stream(self, chunks: Iterator[bytes], drop_after: int | None) -> None:
        sent = 0
        for chunk in chunks:
            if drop_after is not None and sent + len(chunk) >= drop_after:
                self.wfile.write(chunk[: drop_after - sent])
                self._abort()
                return
            self.wfile.write(chunk)
            sent += len(chunk)

    def _abort(self) -> None:
        """Cut the connection without TLS close_notify, mid-body."""
        self.close_connection = True
        try:
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.emulator.debug:  # type: ignore[attr-defined]
            super().log_message(format, *args)


class _Server(http.server.ThreadingHTTPServer):
    """Threaded HTTP server that does the TLS handshake in the worker thread."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, emulator: DropboxEmulator, port: int, context: ssl.SSLContext) -> None:
        reserved = _RESERVED_SOCKETS.pop(port, None) if port else None
        super().__init__(("127.0.0.1", port), _Handler, bind_and_activate=reserved is None)
        if reserved is not None:
            self.socket.close()
            self.socket = reserved
            self.server_address = reserved.getsockname()
            self.server_name, self.server_port = self.server_address[:2]
            self.server_activate()
        self.emulator = emulator
        self.context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup (socket.getfqdn can be slow)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        """TLS handshake and HTTP handling for one connection, in its worker thread.

        The socket is tracked from the start, so stop() can cut even a client that
        connected but never finished the handshake.
        """
        request.settimeout(10)
        conn = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        with self.connections_lock:
            self.connections.add(conn)
        try:
            try:
                conn.do_handshake()
            except OSError:
                self.emulator._note_tls_failure()
                return
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.emulator.debug or not isinstance(sys.exc_info()[1], OSError):
            traceback.print_exc()

    def close_connections(self) -> None:
        """Shut down every open client connection so handler threads finish."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:  # the plain-socket shutdown: also wakes a thread blocked in a handshake
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def open_connections(self) -> int:
        with self.connections_lock:
            return len(self.connections)


# --------------------------------------------------------------------------- faults, tokens


@dataclass
class _Fault:
    kind: str  # "status" | "stall" | "drop" | "corrupt"
    key: str  # route key ("*" = any) or path_lower
    times: int | None  # None = forever
    params: dict


@dataclass(frozen=True)
class _Cursor:
    root: str
    recursive: bool
    limit: int
    pending: tuple
    position: int
    generation: int


@dataclass
class _AuthCode:
    client_id: str
    challenge: str | None
    access_type: str | None


# --------------------------------------------------------------------------- the emulator


class DropboxEmulator:
    """Dropbox API v2 over HTTPS on 127.0.0.1, for the real ``dropbox`` SDK.

    Attributes: ``host`` ("127.0.0.1:PORT"), ``port``, ``ca_file`` (PEM of the per-instance
    CA), ``page_size`` (list_folder page size unless the request's ``limit`` is smaller),
    ``token_lifetime`` (seconds in ``expires_in``; keep it above the SDK's 300 s refresh
    buffer or the SDK refreshes before every call), ``request_log`` (list of
    :class:`RequestRecord`), ``internal_errors`` (tracebacks of emulator bugs),
    ``tls_failures`` (handshakes that failed, e.g. a client not trusting ``ca_file``),
    ``account`` (the get_current_account reply).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        page_size: int = 500,
        token_lifetime: int = 14400,
        debug: bool = False,
        workdir: str | os.PathLike | None = None,
    ) -> None:
        self.page_size = page_size
        self.token_lifetime = token_lifetime
        self._defaults = {"page_size": page_size, "token_lifetime": token_lifetime}
        self.debug = debug
        self.request_log: list[RequestRecord] = []
        self.internal_errors: list[str] = []
        self.tls_failures = 0
        self.account = _default_account()
        self._requested_port = port
        self._workdir = workdir
        self._lock = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._tree = _FileTree(self._lock.notify_all)
        self._faults: list[_Fault] = []
        self._cursors: dict[str, _Cursor] = {}
        self._generation = 0
        self._access_tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._refresh_tokens: dict[str, str] = {}  # token -> app key
        self._revoked: set[str] = set()
        self._codes: dict[str, _AuthCode] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None
        self.host = ""
        self.port = 0
        self.ca_file = ""
        self._routes = self._route_table()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> DropboxEmulator:
        """Generate the CA and certificate, bind 127.0.0.1 and serve in a daemon thread."""
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        if self._workdir is None:
            self._tempdir = tempfile.mkdtemp(prefix="dbx-emu-")
        directory = self._tempdir or os.fspath(self._workdir)
        self.ca_file = os.path.join(directory, "dropbox-emulator-ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self._server = _Server(self, self._requested_port, context)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dropbox-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, cut open connections and wait (bounded) for handler threads."""
        if self._server is None:
            return
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()  # wake long-polls
        self._server.shutdown()
        self._server.server_close()
        deadline = time.monotonic() + timeout
        while self._server.open_connections() and time.monotonic() < deadline:
            self._server.close_connections()
            self._stopping.wait(0.02)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def _note_tls_failure(self) -> None:
        """Count a failed handshake (not the ones stop() causes)."""
        if not self._stopping.is_set():
            with self._lock:
                self.tls_failures += 1

    def __enter__(self) -> DropboxEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for a child process whose dropbox SDK should use this emulator."""
        return sdk_env(self.host)

    def check_sdk_hosts(self) -> None:
        """For in-process SDK use: see :func:`check_sdk_hosts`."""
        check_sdk_hosts(self.host)

    def __repr__(self) -> str:
        return f"<DropboxEmulator {self.host or 'stopped'} files={len(self._tree.nodes)}>"

    # ----------------------------------------------------------------- test-side files

    def put_file(
        self, path: str, data: bytes, *, client_modified: datetime | str | None = None
    ) -> dict:
        """Create or overwrite a file (parents are created); returns its metadata."""
        return self._put(path, _BytesContent(data), client_modified)

    def put_file_generated(
        self,
        path: str,
        size: int,
        seed: int | str = 0,
        *,
        client_modified: datetime | str | None = None,
    ) -> dict:
        """Like put_file with ``size`` deterministic pseudo-random bytes made on the fly,
        so large files cost no memory.  Same (size, seed) -> same bytes."""
        return self._put(path, _GeneratedContent(size, seed), client_modified)

    def _put(self, path: str, content: Any, client_modified: Any) -> dict:
        with self._lock:
            node = self._tree.put(_clean_path(path), content, _fmt_time(client_modified))
            return self._metadata(node)

    def make_folder(self, path: str) -> dict:
        """Create a folder (and its parents); returns its metadata."""
        with self._lock:
            return self._metadata(self._tree.ensure_folder(_clean_path(path)))

    def delete(self, path: str) -> None:
        """Delete a file or folder (recursively), as if another device did it."""
        with self._lock:
            lower, _ = self._tree.require(path)
            self._tree.remove(lower)

    def move(self, from_path: str, to_path: str) -> dict:
        """Move/rename a file or folder, as if another device did it."""
        with self._lock:
            lower, _ = self._tree.require(from_path)
            return self._metadata(self._tree.move(lower, _clean_path(to_path)))

    def exists(self, path: str) -> bool:
        """Whether a file or folder exists (case-insensitive)."""
        with self._lock:
            return self._tree.resolve(path)[1] is not None

    def metadata(self, path: str) -> dict:
        """The metadata JSON the API would report for ``path`` (KeyError if absent)."""
        with self._lock:
            try:
                return self._metadata(self._tree.require(path)[1])
            except _PathError as exc:
                raise KeyError(path) from exc

    def iter_content(self, path: str) -> Iterator[bytes]:
        """The current bytes of a file, in chunks (no faults applied)."""
        with self._lock:
            node = self._file_node(path)
        for chunk in node.content.iter_range(0, node.content.size):
            yield bytes(chunk)

    def read(self, path: str) -> bytes:
        """The current bytes of a file (materialised: mind generated giants)."""
        return b"".join(self.iter_content(path))

    def content_hash(self, path: str) -> str:
        """The true Dropbox content_hash of a file."""
        with self._lock:
            return self._file_node(path).content_hash

    def list_paths(self, *, include_folders: bool = False) -> list[str]:
        """path_display of all files (and folders if asked), sorted by path_lower."""
        with self._lock:
            nodes = sorted(self._tree.nodes.items())
            return [n.path_display for _, n in nodes if include_folders or n.kind == "file"]

    def _file_node(self, path: str) -> _Node:
        try:
            return self._tree.require(path, "file")[1]
        except _PathError as exc:
            raise KeyError(path) from exc

    # ----------------------------------------------------------------- test-side auth

    def add_refresh_token(self, app_key: str = "frame-ingest-test") -> str:
        """Register a refresh token for ``app_key`` (PKCE app: no secret) and return it."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh_tokens[token] = app_key
        return token

    def issue_access_token(self, lifetime: float | None = None) -> str:
        """A valid short-lived access token (``token_lifetime`` seconds unless given)."""
        with self._lock:
            return self._new_access_token(lifetime)

    def _new_access_token(self, lifetime: float | None = None) -> str:
        token = "sl." + secrets.token_urlsafe(40)
        life = self.token_lifetime if lifetime is None else lifetime
        self._access_tokens[token] = time.time() + life
        return token

    def revoke_refresh_token(self, token: str) -> None:
        """Make the token endpoint refuse ``token`` (400 invalid_grant -> SDK AuthError)."""
        with self._lock:
            self._revoked.add(token)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now gets 401 expired_access_token."""
        with self._lock:
            for token in self._access_tokens:
                self._access_tokens[token] = 0.0

    def authorize(self, authorize_url: str) -> str:
        """Play the user approving the app in a browser: take the URL the SDK's
        ``DropboxOAuth2FlowNoRedirect.start()`` built, return the code to paste back."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize_url).query)
        params = {key: values[0] for key, values in query.items()}
        if params.get("response_type") != "code" or "client_id" not in params:
            raise ValueError(f"not an OAuth2 authorize URL: {authorize_url}")
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method") != "S256":
            raise ValueError("only code_challenge_method=S256 is supported")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _AuthCode(
                params["client_id"], challenge, params.get("token_access_type")
            )
        return code

    # ----------------------------------------------------------------- test-side faults

    def fail_next(
        self,
        route: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        times: int | None = 1,
        body: dict | str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``route`` ("files/list_folder", "oauth2/token",
        "*" for any) with ``status`` before any other processing.

        429 carries ``{"error": {"reason": {".tag": "too_many_requests"}, "retry_after": N}}``
        and ``Retry-After: N``; 401 ``invalid_access_token``; 5xx a text body.  ``body``
        (dict -> JSON, str -> text) overrides the default body.
        """
        params = {"status": status, "retry_after": retry_after, "body": body}
        self._add_fault("status", _route_key(route), times, params)

    def stall_next(self, route: str, seconds: float, *, times: int | None = 1) -> None:
        """Delay the reply of the next ``times`` calls of ``route`` (for client timeouts)."""
        self._add_fault("stall", _route_key(route), times, {"seconds": seconds})

    def drop_connection_mid_download(
        self, path: str, after_bytes: int, *, times: int | None = 1
    ) -> None:
        """Next download(s) of ``path`` send the full Content-Length header, then
        ``after_bytes`` bytes of body, then the TCP connection is cut (no TLS close)."""
        self._add_fault("drop", self._fault_path(path), times, {"after_bytes": after_bytes})

    def corrupt_content_hash(
        self, path: str, *, mode: str = "bytes", times: int | None = 1
    ) -> None:
        """Make content and content_hash disagree for the next ``times`` downloads of
        ``path`` (``times=None``: always).

        mode "bytes": one byte of the served body is inverted; metadata stays true.
        mode "first-byte": the same, but the very first byte (the format's signature).
        mode "metadata": the bytes are true but ``content_hash`` is wrong in
        Dropbox-API-Result, and in list_folder/get_metadata while the fault is pending.
        """
        if mode not in ("bytes", "first-byte", "metadata"):
            raise ValueError("mode must be 'bytes', 'first-byte' or 'metadata'")
        self._add_fault("corrupt", self._fault_path(path), times, {"mode": mode})

    def reset_cursors(self) -> None:
        """Every cursor issued so far now gets the 409 ``reset`` error."""
        with self._lock:
            self._generation += 1

    def clear_faults(self) -> None:
        """Drop all pending injected faults."""
        with self._lock:
            self._faults.clear()

    def reset_between_tests(self) -> None:
        """Forget what one test did to a shared emulator: pending faults, the request log,
        the page size, token lifetime and account it set. Files, tokens and cursors stay:
        tests keep apart by their own folder and app key (see ``tests/conftest.py``)."""
        with self._lock:
            self._faults.clear()
            self.request_log.clear()
            self.page_size = self._defaults["page_size"]
            self.token_lifetime = self._defaults["token_lifetime"]
            self.account = _default_account()

    def _fault_path(self, path: str) -> str:
        with self._lock:
            return self._tree.resolve(path)[0]

    def _add_fault(self, kind: str, key: str, times: int | None, params: dict) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._faults.append(_Fault(kind, key, times, params))

    def _take_fault(self, kind: str, key: str) -> _Fault | None:
        """Consume one use of the first matching fault (caller holds the lock)."""
        fault = self._peek_fault(kind, key)
        if fault is not None and fault.times is not None:
            fault.times -= 1
            if fault.times == 0:
                self._faults.remove(fault)
        return fault

    def _peek_fault(self, kind: str, key: str) -> _Fault | None:
        for fault in self._faults:
            if fault.kind == kind and fault.key in (key, "*"):
                return fault
        return None

    # ----------------------------------------------------------------- test-side log

    def count(self, route: str, *, status: int | None = None, path: str | None = None) -> int:
        """How many logged requests hit ``route`` (optionally with status / path)."""
        key = _route_key(route)
        lower = path.lower() if path is not None else None
        with self._lock:
            return sum(
                1
                for record in self.request_log
                if record.route == key
                and (status is None or record.status == status)
                and (lower is None or record.path == lower)
            )

    def clear_log(self) -> None:
        """Forget the request log."""
        with self._lock:
            self.request_log.clear()

    # ----------------------------------------------------------------- dispatch

    def _route_table(self) -> dict[str, tuple[Callable[..., _Reply], str]]:
        """route -> (handler(arg, request), auth) with auth "user", "none" or "form"."""
        return {
            "files/list_folder": (self._list_folder, "user"),
            "files/list_folder/continue": (self._list_folder_continue, "user"),
            "files/list_folder/get_latest_cursor": (self._get_latest_cursor, "user"),
            "files/list_folder/longpoll": (self._longpoll, "none"),
            "files/get_metadata": (self._get_metadata, "user"),
            "files/download": (self._download, "user"),
            "files/move_v2": (self._move, "user"),
            "files/delete_v2": (self._delete, "user"),
            "users/get_current_account": (self._current_account, "user"),
            "oauth2/token": (self._token, "form"),
            "oauth2/authorize": (self._authorize_page, "form"),
        }

    def _dispatch(self, request: _Request) -> _Reply:
        """Answer one request: faults, auth, argument parsing, route handler, logging."""
        record = RequestRecord(request.route, 0, request.method)
        try:
            reply = self._answer(request, record)
        except Exception:  # an emulator bug: surface it, don't hide it
            self.internal_errors.append(traceback.format_exc())
            traceback.print_exc()
            reply = _text_reply(500, "emulator internal error")
        record.status, record.fault = reply.status, record.fault or reply.fault
        with self._lock:
            self.request_log.append(record)
        return reply

    def _answer(self, request: _Request, record: RequestRecord) -> _Reply:
        with self._lock:
            stall = self._take_fault("stall", request.route)
        if stall is not None:
            record.fault = "stall"
            self._stopping.wait(stall.params["seconds"])
        entry = self._routes.get(request.route)
        if entry is None:
            return _text_reply(400, f'Unknown API function: "{request.route}"')
        handler, auth = entry
        with self._lock:
            fault = self._take_fault("status", request.route)
            if fault is not None:
                return self._fault_reply(fault)
            if auth == "form":
                return handler(request)
            if auth == "user":
                denied = self._check_bearer(request.headers.get("Authorization"))
                if denied is not None:
                    return denied
            try:
                arg = self._parse_arg(request)
            except ValueError as exc:
                return _text_reply(400, f"Error in call to API function: {exc}")
            record.arg = arg
            record.path = self._arg_path(arg)
            return handler(arg, request)

    def _arg_path(self, arg: Any) -> str | None:
        if not isinstance(arg, dict):
            return None
        path = arg.get("path", arg.get("from_path"))
        try:
            return self._tree.resolve(path)[0] if isinstance(path, str) else None
        except _PathError:
            return None

    @staticmethod
    def _parse_arg(request: _Request) -> Any:
        """The JSON route argument: Dropbox-API-Arg header (download) or the body (RPC)."""
        if request.route == "files/download":
            header = request.headers.get("Dropbox-API-Arg")
            if header is None:
                raise ValueError('missing "Dropbox-API-Arg" header')
            return json.loads(header)
        content_type = request.headers.get("Content-Type", "")
        if request.body and not content_type.startswith("application/json"):
            raise ValueError(f'bad HTTP "Content-Type" header: {content_type!r}')
        return json.loads(request.body or b"null")

    def _check_bearer(self, header: str | None) -> _Reply | None:
        """None if the Authorization header holds a live access token, else a 401 reply."""
        if not header or not header.startswith("Bearer "):
            return _auth_error("invalid_access_token")
        expiry = self._access_tokens.get(header[len("Bearer ") :])
        if expiry is None:
            return _auth_error("invalid_access_token")
        if expiry <= time.time():
            return _auth_error("expired_access_token")
        return None

    @staticmethod
    def _fault_reply(fault: _Fault) -> _Reply:
        status, body = fault.params["status"], fault.params["body"]
        if isinstance(body, dict):
            reply = _json_reply(status, body)
        elif isinstance(body, str):
            reply = _text_reply(status, body)
        elif status == 429:
            retry_after = fault.params["retry_after"]
            reply = _json_reply(
                429,
                {
                    "error_summary": "too_many_requests/..",
                    "error": {"reason": {".tag": "too_many_requests"}, "retry_after": retry_after},
                },
            )
            reply.headers["Retry-After"] = str(retry_after)
        elif status == 401:
            reply = _auth_error("invalid_access_token")
        elif status == 409:
            reply = _route_error("other")
        else:
            reply = _text_reply(status, http.HTTPStatus(status).phrase)
        reply.fault = f"status {status}"
        return reply

    # ----------------------------------------------------------------- metadata

    def _metadata(self, node: _Node | None) -> dict:
        """FileMetadata / FolderMetadata JSON (with .tag) for a node."""
        if node is None:
            raise _PathError("not_found")
        lower = node.path_display.lower()
        base = {"name": node.name, "id": node.id, "path_lower": lower}
        base["path_display"] = node.path_display
        if node.kind == "folder":
            return {".tag": "folder", **base}
        corrupt = self._peek_fault("corrupt", lower)
        fake = corrupt is not None and corrupt.params["mode"] == "metadata"
        return {
            ".tag": "file",
            **base,
            "client_modified": node.client_modified,
            "server_modified": node.server_modified,
            "rev": node.rev,
            "size": node.content.size,
            "is_downloadable": True,
            "content_hash": _wrong_hash(node.content_hash) if fake else node.content_hash,
        }

    def _entry(self, lower: str) -> dict:
        """Current metadata for ``lower``, or DeletedMetadata if it is gone."""
        node = self._tree.nodes.get(lower)
        if node is not None:
            return self._metadata(node)
        display = self._tree.tombstones.get(lower, lower)
        return {
            ".tag": "deleted",
            "name": display.rsplit("/", 1)[-1],
            "path_lower": lower,
            "path_display": display,
        }

    # ----------------------------------------------------------------- list_folder

    def _list_folder(self, arg: dict, _request: _Request) -> _Reply:
        try:
            root, node = self._tree.resolve(arg.get("path", ""))
        except _PathError as exc:
            return _route_error("path", exc.tag)
        if root != "" and node is None:
            return _route_error("path", "not_found")
        if node is not None and node.kind != "folder":
            return _route_error("path", "not_folder")
        recursive = bool(arg.get("recursive", False))
        paths = self._tree.listing(root, recursive, bool(arg.get("include_deleted", False)))
        limit = min(int(arg.get("limit") or self.page_size), self.page_size)
        cursor = _Cursor(
            root,
            recursive,
            max(1, limit),
            tuple(self._entry(p) for p in paths),
            len(self._tree.log),
            self._generation,
        )
        return self._page(cursor)

    def _page(self, cursor: _Cursor) -> _Reply:
        """Serve the next page of ``cursor.pending`` and a cursor for the rest."""
        page, rest = cursor.pending[: cursor.limit], cursor.pending[cursor.limit :]
        token = f"AAE{cursor.generation:x}" + secrets.token_urlsafe(24)
        self._cursors[token] = replace(cursor, pending=rest)
        return _json_reply(200, {"entries": list(page), "cursor": token, "has_more": bool(rest)})

    def _lookup_cursor(self, token: Any) -> _Cursor | _Reply:
        cursor = self._cursors.get(token) if isinstance(token, str) else None
        if cursor is None:
            return _text_reply(400, 'Error in call to API function: Invalid "cursor" parameter')
        if cursor.generation != self._generation:
            return _route_error("reset")
        return cursor

    def _list_folder_continue(self, arg: dict, _request: _Request) -> _Reply:
        cursor = self._lookup_cursor(arg.get("cursor"))
        if isinstance(cursor, _Reply):
            return cursor
        if not cursor.pending:
            changed = self._tree.changes_since(cursor.position, cursor.root, cursor.recursive)
            cursor = replace(
                cursor,
                pending=tuple(self._entry(p) for p in changed),
                position=len(self._tree.log),
            )
        return self._page(cursor)

    def _get_latest_cursor(self, arg: dict, request: _Request) -> _Reply:
        reply = self._list_folder(arg, request)
        if reply.status != 200:
            return reply
        token = json.loads(reply.body)["cursor"]
        self._cursors[token] = replace(self._cursors[token], pending=())
        return _json_reply(200, {"cursor": token})

    def _longpoll(self, arg: dict, _request: _Request) -> _Reply:
        """Wait (releasing the lock) until the cursor's folder changes or ``timeout``."""
        cursor = self._lookup_cursor(arg.get("cursor"))
        if isinstance(cursor, _Reply):
            return cursor
        timeout = int(arg.get("timeout", 30))

        def changed() -> bool:
            return self._stopping.is_set() or bool(
                self._tree.changes_since(cursor.position, cursor.root, cursor.recursive)
            )

        result = self._lock.wait_for(changed, timeout)
        return _json_reply(200, {"changes": bool(result) and not self._stopping.is_set()})

    # ----------------------------------------------------------------- file routes

    def _get_metadata(self, arg: dict, _request: _Request) -> _Reply:
        try:
            lower, node = self._tree.resolve(arg.get("path", ""))
        except _PathError as exc:
            return _route_error("path", exc.tag)
        if node is None:
            if arg.get("include_deleted") and lower in self._tree.tombstones:
                return _json_reply(200, self._entry(lower))
            return _route_error("path", "not_found")
        return _json_reply(200, self._metadata(node))

    def _download(self, arg: dict, request: _Request) -> _Reply:
        try:
            lower, node = self._tree.require(arg.get("path", ""), "file")
        except _PathError as exc:
            return _route_error("path", exc.tag)
        content = node.content
        try:
            span = _parse_range(request.headers.get("Range"), content.size)
        except ValueError:
            reply = _text_reply(416, "Range Not Satisfiable")
            reply.headers["Content-Range"] = f"bytes */{content.size}"
            return reply
        start, end = span or (0, content.size)
        meta = self._metadata(node)
        corrupt = self._take_fault("corrupt", lower)
        stream: Iterator[Any] = content.iter_range(start, end)
        if corrupt is not None and corrupt.params["mode"] == "metadata":
            meta["content_hash"] = _wrong_hash(node.content_hash)
        elif corrupt is not None:
            middle = 0 if corrupt.params["mode"] == "first-byte" else content.size // 2
            stream = _flip_one_byte(stream, start, middle if start <= middle < end else start)
        drop = self._take_fault("drop", lower)
        headers = {
            "Content-Type": "application/octet-stream",
            "Dropbox-API-Result": json.dumps(meta),
            "Accept-Ranges": "bytes",
        }
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{content.size}"
        faults = [f"corrupt {corrupt.params['mode']}"] if corrupt else []
        faults += ["drop"] if drop else []
        return _Reply(
            206 if span else 200,
            headers=headers,
            stream=stream,
            length=end - start,
            drop_after=drop.params["after_bytes"] if drop else None,
            fault=", ".join(faults) or None,
        )

    def _move(self, arg: dict, _request: _Request) -> _Reply:
        try:
            src, node = self._tree.require(arg.get("from_path", ""))
        except _PathError as exc:
            return _route_error("from_lookup", exc.tag)
        try:
            dst = _clean_path(arg.get("to_path", ""))
        except _PathError:
            return _route_error("to", "malformed_path")
        dst_lower = dst.lower()
        if dst_lower.startswith(src + "/"):
            return _route_error("cant_move_folder_into_itself")
        existing = self._tree.nodes.get(dst_lower)
        if existing is not None and dst_lower != src:
            if not arg.get("autorename"):
                return _route_error("to", "conflict", existing.kind)
            dst = self._tree.free_name(dst)
        ancestor = self._tree.nodes.get(_parent(dst_lower))
        if ancestor is not None and ancestor.kind == "file":
            return _route_error("to", "conflict", "file_ancestor")
        moved = self._tree.move(src, dst)
        return _json_reply(200, {"metadata": self._metadata(moved)})

    def _delete(self, arg: dict, _request: _Request) -> _Reply:
        try:
            lower, node = self._tree.require(arg.get("path", ""))
        except _PathError as exc:
            return _route_error("path_lookup", exc.tag)
        metadata = self._metadata(node)
        self._tree.remove(lower)
        return _json_reply(200, {"metadata": metadata})

    def _current_account(self, _arg: Any, _request: _Request) -> _Reply:
        return _json_reply(200, self.account)

    # ----------------------------------------------------------------- oauth2

    def _token(self, request: _Request) -> _Reply:
        """POST /oauth2/token: refresh_token and authorization_code (PKCE) grants."""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh_grant(form)
        if grant == "authorization_code":
            return self._code_grant(form)
        return _json_reply(400, {"error": "unsupported_grant_type"})

    def _refresh_grant(self, form: dict[str, str]) -> _Reply:
        token = form.get("refresh_token", "")
        app_key = self._refresh_tokens.get(token)
        if app_key is None or token in self._revoked:
            return _oauth_error("invalid_grant", "refresh token is invalid or revoked")
        if form.get("client_id") != app_key:
            return _oauth_error("invalid_client", "Invalid client_id or client_secret")
        return _json_reply(
            200,
            {
                "access_token": self._new_access_token(),
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
            },
        )

    def _code_grant(self, form: dict[str, str]) -> _Reply:
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.client_id != form.get("client_id"):
            return _oauth_error("invalid_grant", "code doesn't exist or has expired")
        if grant.challenge is not None:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != grant.challenge:
                return _oauth_error("invalid_grant", "invalid code verifier")
        elif not form.get("client_secret"):
            return _oauth_error("invalid_client", "No client secret and no code verifier")
        reply = {
            "access_token": self._new_access_token(),
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": GRANTED_SCOPE,
            "uid": ACCOUNT_UID,
            "account_id": self.account["account_id"],
        }
        if grant.access_type == "offline":
            reply["refresh_token"] = secrets.token_urlsafe(48)
            self._refresh_tokens[reply["refresh_token"]] = grant.client_id
        return _json_reply(200, reply)

    def _authorize_page(self, request: _Request) -> _Reply:
        """GET /oauth2/authorize on the web host: a stand-in "approve" page showing the code."""
        try:
            return _text_reply(200, self.authorize(request.url))
        except ValueError as exc:
            return _text_reply(400, str(exc))


def _oauth_error(error: str, description: str) -> _Reply:
    return _json_reply(400, {"error": error, "error_description": description})


def _wrong_hash(real: str) -> str:
    return hashlib.sha256(b"corrupted:" + real.encode()).hexdigest()


def _default_account() -> dict:
    """A FullAccount JSON the SDK's users.FullAccount serializer accepts."""
    assert len(ACCOUNT_ID) == 40  # users_common.AccountId_validator
    return {
        "account_id": ACCOUNT_ID,
        "name": {
            "given_name": "Frame",
            "surname": "Tester",
            "familiar_name": "Frame",
            "display_name": "Frame Tester",
            "abbreviated_name": "FT",
        },
        "email": "frame.tester@example.org",
        "email_verified": True,
        "disabled": False,
        "country": "DE",
        "locale": "en",
        "referral_link": "https://www.dropbox.com/referrals/emulator",
        "is_paired": False,
        "account_type": {".tag": "basic"},
        "root_info": {
            ".tag": "user",
            "root_namespace_id": "3235641",
            "home_namespace_id": "3235641",
        },
    }
