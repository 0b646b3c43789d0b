"""What keeps a guest's phone on the same network out: sessions, CSRF, Origin, rate limits,
response headers and the request size limit.

- **Sessions.** A login gives a random 256-bit token in the ``frame_session`` cookie
  (HttpOnly, SameSite=Strict, Path=/; Secure when the request came over TLS: a phone drops
  a Secure cookie over plain HTTP). Tokens live in memory only, so restarting the server
  logs everyone out; they expire after ``SESSION_SECONDS`` without use.
- **CSRF.** Every form carries ``csrf = HMAC(server key, cookie value)``: the session
  token, or before login a random ``frame_login`` cookie (double submit). A POST without
  the right one is refused, as is one whose ``Origin`` is not this server's.
- **Login attempts.** Five failures from one address in ten minutes, or thirty from all,
  make further attempts wait (429) until the window moves on; each check also costs an
  scrypt (``passwords.py``).
- **Headers and size.** ``guard`` wraps the whole WSGI application: every response gets a
  Content-Security-Policy without any script source, ``nosniff``, framing forbidden and no
  caching of pages; a request body over 1 MiB is answered 413 before the application
  reads it (waitress enforces the same limit for chunked bodies).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time

MAX_BODY = 1024 * 1024
SESSION_COOKIE, LOGIN_COOKIE = "frame_session", "frame_login"
SESSION_SECONDS = 30 * 24 * 3600
MAX_SESSIONS = 50
FAILURE_WINDOW = 600.0
FAILURES_PER_ADDRESS, FAILURES_IN_ALL = 5, 30

POLICY = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
          "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [("Content-Security-Policy", POLICY), ("X-Content-Type-Options", "nosniff"),
           ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"),
           ("Cross-Origin-Opener-Policy", "same-origin"),
           ("Cross-Origin-Resource-Policy", "same-origin")]


class Sessions:
    """Logged-in tokens (in memory) and the CSRF token that goes with any cookie value."""

    def __init__(self) -> None:
        self.key = secrets.token_bytes(32)
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            while len(self._expiry) >= MAX_SESSIONS:    # the least recently used goes
                del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
            self._expiry[token] = time.monotonic() + SESSION_SECONDS
        return token

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` is a live session; its life is extended when it is."""
        if not token:
            return False
        with self._lock:
            expiry = self._expiry.get(token)
            if expiry is None or expiry < time.monotonic():
                self._expiry.pop(token, None)
                return False
            self._expiry[token] = time.monotonic() + SESSION_SECONDS
            return True

    def end(self, token: str | None) -> None:
        with self._lock:
            self._expiry.pop(token or "", None)

    def csrf_token(self, cookie_value: str) -> str:
        return hmac.new(self.key, cookie_value.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie_value: str | None, submitted: str | None) -> bool:
        if not cookie_value or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(cookie_value), submitted)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for token in [token for token, expiry in self._expiry.items() if expiry < now]:
            del self._expiry[token]


class LoginLimiter:
    """Failed logins per client address and in all, over a sliding window."""

    def __init__(self) -> None:
        self._failures: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._all: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> int:
        """0 when ``address`` may try now, else how long until it may."""
        with self._lock:
            now = time.monotonic()
            mine = self._trim(self._failures[address], now)
            everyone = self._trim(self._all, now)
            waits = [mine[0] + FAILURE_WINDOW - now] if len(mine) >= FAILURES_PER_ADDRESS else []
            if len(everyone) >= FAILURES_IN_ALL:
                waits.append(everyone[0] + FAILURE_WINDOW - now)
            return int(max(waits)) + 1 if waits else 0

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._failures[address].append(now)
            self._all.append(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    @staticmethod
    def _trim(times: collections.deque, now: float) -> collections.deque:
        while times and times[0] < now - FAILURE_WINDOW:
            times.popleft()
        return times


def same_origin(origin: str | None, scheme: str, host: str) -> bool:
    """Whether a POST's Origin header names this server as the browser reached it."""
    return bool(origin) and bool(host) and origin == f"{scheme}://{host}"


def guard(application):
    """The WSGI application with the size limit and the security headers of every response."""

    def guarded(environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = MAX_BODY + 1
        if length > MAX_BODY or length < 0:
            start_response("413 Request Entity Too Large",
                           [("Content-Type", "text/plain; charset=utf-8"),
                            ("Connection", "close"), *HEADERS])
            return [b"request too large (the limit is 1 MiB)\n"]

        def with_headers(status, headers, exc_info=None):
            names = {name.lower() for name, _ in headers}
            extra = [header for header in HEADERS if header[0].lower() not in names]
            if "cache-control" not in names:
                extra.append(("Cache-Control", "no-store"))
            return start_response(status, headers + extra, exc_info)

        return application(environ, with_headers)

    return guarded
