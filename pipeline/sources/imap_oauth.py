"""OAuth2 tokens for the mailbox (``[sources.imap] auth = "oauth2"``): endpoints, refresh,
rotation, the owner-only token files. The only place that knows oauthlib and requests here.

Microsoft switched password sign-in off for IMAP (Exchange Online 2022, Outlook.com 2024),
app passwords included, so such a mailbox is opened with an OAuth2 access token (SASL
XOAUTH2). A person signs in once with ``frame-ingest imap-auth`` (``imap_auth.py``: the
device code flow, made for a Pi without a screen), which leaves a refresh token in
``oauth2_token_file``. From then on every run, check and watch trades that refresh token for
an access token at the token endpoint (RFC 6749 section 6, through requests-oauthlib),
which keeps working for about an hour and is cached meanwhile. Where the provider rotates
refresh tokens (each refresh answers a new one and the old one dies), the new one is written
before the access token is used, so a crash in between cannot strand the frame.

Files, all mode 0600, written atomically (``secrets.write_secret_file``):

* ``oauth2_token_file`` (default ``<state_dir>/imap-oauth2-token``): the refresh token.
* ``<state_dir>/imap-oauth2-access-token``: the cached access token with its expiry, as
  JSON, for this username and token endpoint only.
* ``<state_dir>/imap-oauth2.lock``: held while refreshing, so that a timer-started ``run``
  and ``watch`` never spend the same rotating refresh token twice (the second would find
  it dead and the grant would be lost).

Tokens and the device code never reach a log line, an error message or the store; the
debug logs of requests-oauthlib and oauthlib (which print them) are kept at WARNING.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests
from oauthlib.oauth2 import DeviceClient, OAuth2Error
from requests_oauthlib import OAuth2Session

from pipeline.config import ImapSourceConfig, expand_path
from pipeline.errors import PermanentSourceError, TransientSourceError
from pipeline.secrets import read_secret, write_secret_file
from pipeline.sources.imap_session import SOURCE

log = logging.getLogger("frame-ingest")
for _chatty in ("requests_oauthlib", "oauthlib"):   # their debug lines carry the tokens
    logging.getLogger(_chatty).setLevel(logging.WARNING)

TOKEN_FILE_NAME = "imap-oauth2-token"
ACCESS_FILE_NAME = "imap-oauth2-access-token"
LOCK_FILE_NAME = "imap-oauth2.lock"
REAUTHORIZE = "run `frame-ingest imap-auth`"
MICROSOFT_ENDPOINTS = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
MICROSOFT_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
RENEW_MARGIN = 60.0     # seconds before expiry a token stops being handed out


class GrantRefused(PermanentSourceError):
    """Raised when the token endpoint refuses the refresh token (revoked or expired grant)
    or there is none yet: a person has to run `frame-ingest imap-auth`."""


@dataclass(frozen=True)
class Provider:
    """Where to sign in and what to ask for (no secret in here, so it may be shown)."""

    client_id: str
    device_url: str
    token_url: str
    scope: str

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.token_url).netloc


def provider_for(settings: ImapSourceConfig) -> Provider:
    """The endpoints and scope: Microsoft's for its tenant, or the configured ones."""
    client_id = settings.oauth2_client_id.strip()
    if settings.oauth2_provider == "microsoft":
        base = MICROSOFT_ENDPOINTS.format(tenant=settings.oauth2_tenant)
        return Provider(client_id, f"{base}/devicecode", f"{base}/token",
                        settings.oauth2_scope.strip() or MICROSOFT_SCOPE)
    return Provider(client_id, settings.oauth2_device_url, settings.oauth2_token_url,
                    settings.oauth2_scope.strip())


@dataclass(frozen=True)
class AccessToken:
    """An access token and its lifetime (epoch seconds); never shown."""

    value: str = field(repr=False)
    issued_at: float
    expires_at: float
    fresh: bool = False         # obtained by this process just now (not from the cache)

    @property
    def renew_at(self) -> float:
        """When to stop using it: a minute before expiry (a quarter of a short lifetime)."""
        return self.expires_at - min(RENEW_MARGIN, (self.expires_at - self.issued_at) / 4)

    @classmethod
    def from_response(cls, token: dict) -> AccessToken:
        now = time.time()
        expires_at = float(token.get("expires_at") or now + 3600.0)
        return cls(str(token["access_token"]), now, expires_at, fresh=True)


class HttpCalls:
    """HTTPS to the provider: timeouts, the CA to trust, and errors translated.

    ``oauth2_ca_file`` is passed per request, which requests lets win over
    ``REQUESTS_CA_BUNDLE``; without it, requests' own environment handling stays as users
    expect (``REQUESTS_CA_BUNDLE``, proxies).
    """

    def __init__(self, settings: ImapSourceConfig):
        self.timeout = settings.timeout_seconds
        self.ca_file = settings.oauth2_ca_file.strip()

    @property
    def verify(self) -> str | None:
        """What requests should trust: ``oauth2_ca_file``, or None for its own defaults."""
        if not self.ca_file:
            return None
        ca_file = expand_path(self.ca_file)
        if not ca_file.is_file():
            raise PermanentSourceError(f"[sources.imap] oauth2_ca_file {ca_file} does not "
                                       "exist", SOURCE)
        return str(ca_file)

    def session(self, client_id: str) -> OAuth2Session:
        session = OAuth2Session(client=DeviceClient(client_id))
        for hook in ("access_token_response", "refresh_token_response"):
            session.register_compliance_hook(hook, refuse_server_errors)
        return session

    @contextlib.contextmanager
    def translated(self, provider: Provider, action: str) -> Iterator[None]:
        """requests/oauthlib exceptions -> SourceErrors naming the step that failed."""
        where = f"OAuth2 token endpoint: {provider.host}"
        try:
            yield
        except requests.exceptions.SSLError:
            raise PermanentSourceError(f"{where}: TLS certificate not trusted while trying to "
                                       f"{action}; set oauth2_ca_file (or REQUESTS_CA_BUNDLE)",
                                       SOURCE) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise TransientSourceError(f"{where} cannot be reached while trying to {action} "
                                       f"({type(exc).__name__})", SOURCE) from None
        except requests.exceptions.RequestException as exc:
            raise TransientSourceError(f"{where}: {type(exc).__name__} while trying to "
                                       f"{action}", SOURCE) from None
        except ServerUnavailable as exc:
            raise TransientSourceError(f"{where} answered HTTP {exc.status} while trying to "
                                       f"{action}", SOURCE) from None
        except OAuth2Error as exc:
            if exc.error == "invalid_grant":
                raise GrantRefused(f"OAuth2 grant: {provider.host} refused the sign-in "
                                   f"(invalid_grant: revoked, expired or replaced); "
                                   f"{REAUTHORIZE}", SOURCE) from None
            raise PermanentSourceError(f"{where} refused to {action}: {describe(exc)}; check "
                                       "oauth2_client_id and the app registration",
                                       SOURCE) from None


class ServerUnavailable(Exception):
    """The token endpoint answered 429 or 5xx (worth trying again later)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def refuse_server_errors(response: requests.Response) -> requests.Response:
    """A compliance hook: an overloaded or broken endpoint is not a refused grant."""
    if response.status_code == 429 or response.status_code >= 500:
        raise ServerUnavailable(response.status_code)
    return response


def describe(exc: OAuth2Error) -> str:
    """``error: description`` as the provider wrote them (they hold no token)."""
    description = (exc.description or "").strip()
    return f"{exc.error}: {description}" if description else str(exc.error)


class Tokens:
    """The refresh token and the cached access token of one mailbox."""

    def __init__(self, settings: ImapSourceConfig, state_dir: Path):
        self.settings = settings
        self.provider = provider_for(settings)
        self.http = HttpCalls(settings)
        self.state_dir = state_dir
        self.token_file = token_file(settings, state_dir)
        self.access_file = state_dir / ACCESS_FILE_NAME

    # --- what run, check and watch use ------------------------------------------------

    def access_token(self) -> AccessToken:
        """A cached access token still good for a while, else a new one."""
        cached = self.cached()
        if cached is not None:
            return cached
        with self.refreshing():
            return self.cached() or self.refresh_locked()  # another process may have

    def renew(self, refused: AccessToken) -> AccessToken:
        """A new access token after the server refused ``refused`` before its expiry."""
        with self.refreshing():
            cached = self.cached()
            if cached is not None and cached.value != refused.value:
                return cached                              # another process renewed it
            with contextlib.suppress(FileNotFoundError):
                self.access_file.unlink()                  # never offered again
            return self.refresh_locked()

    # --- what imap-auth uses ----------------------------------------------------------

    def save_grant(self, refresh_token: str, access: AccessToken) -> None:
        with self.refreshing():
            self.write_refresh_token(refresh_token)
            self.write_cache(access)

    # --- inside -------------------------------------------------------------------------

    @contextlib.contextmanager
    def refreshing(self) -> Iterator[None]:
        """Hold the refresh lock (waits for another process's refresh to finish)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.state_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def refresh_locked(self) -> AccessToken:
        """Trade the refresh token for an access token; store a rotated refresh token."""
        refresh_token = self.read_refresh_token()
        provider = self.provider
        body = urllib.parse.urlencode({"scope": provider.scope}) if provider.scope else ""
        verify = self.http.verify
        with self.http.session(provider.client_id) as session, \
                self.http.translated(provider, "renew the access token"):
            answer = session.refresh_token(provider.token_url, refresh_token=refresh_token,
                                           body=body, client_id=provider.client_id,
                                           timeout=self.http.timeout, verify=verify)
        access = AccessToken.from_response(answer)
        rotated = answer.get("refresh_token")
        if rotated and rotated != refresh_token:
            self.write_refresh_token(rotated)
            log.debug("imap: stored the rotated OAuth2 refresh token in %s", self.token_file)
        self.write_cache(access)
        log.debug("imap: new OAuth2 access token from %s, good for %.0f s", provider.host,
                  access.expires_at - access.issued_at)
        return access

    def read_refresh_token(self) -> str:
        path = self.token_file
        try:
            token = read_secret(path, "the IMAP OAuth2 token file")
        except FileNotFoundError:
            raise GrantRefused(f"OAuth2 grant: nobody has signed in yet ({path} does not "
                               f"exist); {REAUTHORIZE}", SOURCE) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PermanentSourceError(f"cannot read the IMAP OAuth2 token file {path}: "
                                       f"{getattr(exc, 'strerror', None) or exc}",
                                       SOURCE) from None
        if not token:
            raise GrantRefused(f"OAuth2 grant: the token file {path} is empty; {REAUTHORIZE}",
                               SOURCE)
        return token

    def write_refresh_token(self, refresh_token: str) -> None:
        try:
            write_secret_file(self.token_file, refresh_token)
        except OSError as exc:
            raise PermanentSourceError(f"cannot write the IMAP OAuth2 token file "
                                       f"{self.token_file}: {exc.strerror}", SOURCE) from None

    def cache_key(self) -> dict:
        return {"username": self.settings.username, "token_url": self.provider.token_url,
                "client_id": self.provider.client_id}

    def cached(self) -> AccessToken | None:
        """The cached access token if it is for this mailbox and not about to expire."""
        try:
            data = json.loads(self.access_file.read_text(encoding="utf-8"))
            token = AccessToken(str(data["access_token"]), float(data["issued_at"]),
                                float(data["expires_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("for") != self.cache_key() or time.time() >= token.renew_at:
            return None
        return token

    def write_cache(self, access: AccessToken) -> None:
        data = {"for": self.cache_key(), "access_token": access.value,
                "issued_at": access.issued_at, "expires_at": access.expires_at}
        try:
            write_secret_file(self.access_file, json.dumps(data))
        except OSError as exc:  # only a cache: the next run gets a new one
            log.warning("imap: cannot cache the OAuth2 access token in %s: %s",
                        self.access_file, exc.strerror)


def token_file(settings: ImapSourceConfig, state_dir: Path) -> Path:
    """``oauth2_token_file``, or ``<state_dir>/imap-oauth2-token``."""
    if settings.oauth2_token_file.strip():
        return expand_path(settings.oauth2_token_file.strip())
    return state_dir / TOKEN_FILE_NAME
