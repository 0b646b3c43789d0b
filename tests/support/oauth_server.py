"""A local HTTPS OAuth 2 authorization server for tests: device flow, tokens, introspection.

It plays the provider (Microsoft, Google, ...) that a frame signs in with, and the token
check a mail server makes:

* ``POST /device`` (RFC 8628 section 3.1, form ``client_id``, ``scope``): a device code, a
  user code, ``verification_uri`` and ``verification_uri_complete``, ``expires_in`` and
  ``interval``.
* ``POST /token`` (RFC 6749 section 5, RFC 8628 section 3.4), form-encoded: the
  ``urn:ietf:params:oauth:grant-type:device_code`` grant (``authorization_pending`` until the
  test, playing the person, calls :meth:`OAuthServer.approve`; ``slow_down``,
  ``expired_token``, ``access_denied`` as faults) and the ``refresh_token`` grant, which
  ROTATES the refresh token: each use issues a new one and the old one stops working.
* ``POST /introspect`` (RFC 7662, form ``token``): ``{"active": true, "username": ...}`` for
  a live access token, ``{"active": false}`` otherwise. Dovecot's oauth2 passdb asks it
  (``introspection_mode = post``) for every XOAUTH2/OAUTHBEARER login.

One ``127.0.0.1`` port, a certificate from a generated ``trustme`` CA (``ca_file``). Every
token it ever issued is in :meth:`OAuthServer.secrets`, so a test can look for leaks.

Usage::

    with OAuthServer(interval=0.1) as auth:
        refresh_token = auth.grant("frame")          # as if someone had signed in before
        ... run imap-auth; read the user code it prints; auth.approve(code, "frame") ...
        auth.revoke_refresh_tokens()                  # the grant was withdrawn
"""

from __future__ import annotations

import http.server
import json
import os
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
from dataclasses import dataclass, field
from typing import Any

import trustme

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class DeviceRequest:
    """One device authorization: the codes and what the person (the test) did with it."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    username: str = ""          # set by approve()
    outcome: str = "pending"    # pending | approved | denied | expired | used
    polls: list[float] = field(default_factory=list)   # monotonic time of each token poll


@dataclass
class AccessToken:
    username: str
    client_id: str
    expires_at: float
    active: bool = True


class OAuthServer:
    """The authorization server; see the module docstring. Thread-safe."""

    def __init__(self, *, interval: float = 0.1, access_lifetime: float = 3600.0,
                 device_lifetime: float = 600.0, offer_complete_uri: bool = True) -> None:
        self.interval = interval
        self.access_lifetime = access_lifetime
        self.device_lifetime = device_lifetime
        self.offer_complete_uri = offer_complete_uri
        self.port = 0
        self.ca_file = ""
        self.slow_down_answers = 0          # the next N device-grant polls answer slow_down
        self.token_endpoint_status = 0      # nonzero: every /token call answers this status
        self.denial_error = "access_denied"  # Microsoft says "authorization_declined"
        self.devices: dict[str, DeviceRequest] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}   # live: token -> (user, client)
        self.access_tokens: dict[str, AccessToken] = {}
        self.calls: list[tuple[str, str]] = []                 # (path, grant_type or "")
        self.introspections: list[bool] = []                   # each answer's "active"
        self._issued: list[str] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tempdir = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> OAuthServer:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._tempdir = tempfile.mkdtemp(prefix="oauth-")
        os.chmod(self._tempdir, 0o755)      # Dovecot's auth process reads the CA file
        self.ca_file = os.path.join(self._tempdir, "oauth-ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        os.chmod(self.ca_file, 0o644)
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"oauth-server-{self.port}")
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = ""

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        return f"{self.base_url}/device"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def verification_uri(self) -> str:
        return f"{self.base_url}/activate"

    # ------------------------------------------------------------ the person, the faults

    def approve(self, user_code: str, username: str) -> None:
        """The person signed in as ``username`` and allowed the app."""
        self._settle(user_code, "approved", username)

    def deny(self, user_code: str) -> None:
        """The person declined (the next poll answers ``access_denied``)."""
        self._settle(user_code, "denied")

    def expire(self, user_code: str) -> None:
        """The code ran out before anyone signed in (the next poll: ``expired_token``)."""
        self._settle(user_code, "expired")

    def _settle(self, user_code: str, outcome: str, username: str = "") -> None:
        with self._lock:
            request = self._by_user_code(user_code)
            request.outcome, request.username = outcome, username

    def device_request(self, user_code: str) -> DeviceRequest:
        with self._lock:
            return self._by_user_code(user_code)

    def _by_user_code(self, user_code: str) -> DeviceRequest:
        for request in self.devices.values():
            if request.user_code == user_code:
                return request
        raise KeyError(f"no device request with user code {user_code!r}")

    def grant(self, username: str, client_id: str = "frame-test-client") -> str:
        """A refresh token for ``username``, as if the person had signed in before."""
        with self._lock:
            return self._new_refresh_token(username, client_id)

    def revoke_refresh_tokens(self) -> None:
        """The grant is withdrawn (password changed, app removed): refreshes fail."""
        with self._lock:
            self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working now, whatever its expiry said."""
        with self._lock:
            for token in self.access_tokens.values():
                token.active = False

    def count(self, path: str, grant_type: str = "") -> int:
        with self._lock:
            return sum(1 for called, grant in self.calls
                       if called == path and (not grant_type or grant == grant_type))

    def secrets(self) -> list[str]:
        """Every device code, access token and refresh token issued so far."""
        with self._lock:
            return list(self._issued)

    def live_refresh_tokens(self) -> list[str]:
        with self._lock:
            return list(self.refresh_tokens)

    # ------------------------------------------------------------------ endpoints

    def dispatch(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        with self._lock:
            self.calls.append((path, form.get("grant_type", "")))
            if path == "/device":
                return self._device(form)
            if path == "/token":
                if self.token_endpoint_status:
                    return self.token_endpoint_status, {"error": "temporarily_unavailable"}
                return self._token(form)
            if path == "/introspect":
                return self._introspect(form)
        return 404, {"error": "not_found"}

    def _device(self, form: dict[str, str]) -> tuple[int, dict]:
        if not form.get("client_id"):
            return 400, {"error": "invalid_client"}
        device_code = self._secret("DC")
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        self.devices[device_code] = DeviceRequest(
            device_code, user_code, form["client_id"], form.get("scope", ""),
            time.monotonic() + self.device_lifetime)
        reply = {"device_code": device_code, "user_code": user_code,
                 "verification_uri": self.verification_uri,
                 "expires_in": int(self.device_lifetime), "interval": self.interval}
        if self.offer_complete_uri:
            reply["verification_uri_complete"] = f"{self.verification_uri}?code={user_code}"
        return 200, reply

    def _token(self, form: dict[str, str]) -> tuple[int, dict]:
        grant_type = form.get("grant_type", "")
        if grant_type == DEVICE_GRANT:
            return self._device_grant(form)
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        return 400, {"error": "unsupported_grant_type"}

    def _device_grant(self, form: dict[str, str]) -> tuple[int, dict]:
        request = self.devices.get(form.get("device_code", ""))
        if request is None or request.client_id != form.get("client_id"):
            return 400, {"error": "invalid_grant"}
        request.polls.append(time.monotonic())
        if request.outcome == "pending" and time.monotonic() > request.expires_at:
            request.outcome = "expired"
        if request.outcome == "expired":
            return 400, {"error": "expired_token", "error_description": "the code expired"}
        if request.outcome == "denied":
            return 400, {"error": self.denial_error, "error_description": "declined"}
        if request.outcome == "used":
            return 400, {"error": "invalid_grant"}
        if self.slow_down_answers:
            self.slow_down_answers -= 1
            return 400, {"error": "slow_down"}
        if request.outcome == "pending":
            return 400, {"error": "authorization_pending"}
        request.outcome = "used"
        return 200, self._tokens(request.username, request.client_id)

    def _refresh_grant(self, form: dict[str, str]) -> tuple[int, dict]:
        owner = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if owner is None or owner[1] != form.get("client_id"):
            return 400, {"error": "invalid_grant",
                         "error_description": "the refresh token is revoked or expired"}
        return 200, self._tokens(*owner)

    def _tokens(self, username: str, client_id: str) -> dict:
        access_token = self._secret("AT")
        self.access_tokens[access_token] = AccessToken(
            username, client_id, time.monotonic() + self.access_lifetime)
        return {"access_token": access_token, "token_type": "Bearer",
                "expires_in": int(self.access_lifetime),
                "refresh_token": self._new_refresh_token(username, client_id)}

    def _introspect(self, form: dict[str, str]) -> tuple[int, dict]:
        token = self.access_tokens.get(form.get("token", ""))
        active = bool(token and token.active and time.monotonic() < token.expires_at)
        self.introspections.append(active)
        if not active:
            return 200, {"active": False}
        return 200, {"active": True, "username": token.username, "client_id": token.client_id}

    def _new_refresh_token(self, username: str, client_id: str) -> str:
        token = self._secret("RT")
        self.refresh_tokens[token] = (username, client_id)
        return token

    def _secret(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(24)}"
        self._issued.append(value)
        return value


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OAuthTestServer/1.0"
    timeout = 30

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = dict(urllib.parse.parse_qsl(body))
        path = urllib.parse.urlsplit(self.path).path
        status, reply = self.server.oauth.dispatch(path, form)  # type: ignore[attr-defined]
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, oauth: OAuthServer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.oauth = oauth
        self.context = context

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup (socket.getfqdn can be slow)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        """The TLS handshake in the worker thread, so one slow client blocks nobody."""
        request.settimeout(10)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):   # a hung-up client is no news
            traceback.print_exc()
