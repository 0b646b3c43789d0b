"""Talking to Dropbox: credentials, the SDK client, error translation and retries.

This is the one place that knows the ``dropbox`` SDK's and ``requests``' exceptions: every
call goes through ``Connection.call``, which turns them into ``TransientSourceError`` (retried
here with tenacity: bounded, exponential backoff with jitter, each retry logged once) or
``PermanentSourceError`` (not retried: a revoked token, a missing folder). The SDK's own
retry loops are switched off (``max_retries_on_error=0``, ``max_retries_on_rate_limit=0``):
its default retries a 429 forever and sleeps without a word, so one bounded, logged retry
layer is easier to reason about on an unattended frame.

Host names come from the SDK itself (it reads ``DROPBOX_API_HOST`` and friends from the
environment at import time); nothing here names a host. Tokens are never put into a log
line or an error message.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import dropbox
import requests
from dropbox import exceptions as sdk_errors
from tenacity import (RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_random_exponential)

from pipeline import __version__
from pipeline.config import DropboxSourceConfig, expand_path
from pipeline.errors import PermanentSourceError, TransientSourceError
from pipeline.secrets import read_secret
from pipeline.staging import fsync_directory

log = logging.getLogger("frame-ingest")

SOURCE = "dropbox"
TOKEN_FILE_NAME = "dropbox-refresh-token"
REAUTHORIZE = "run `frame-ingest dropbox-auth`"
LONGEST_WAIT = 300.0    # seconds; a longer Retry-After gives up until the next run


class CredentialsRefused(PermanentSourceError):
    """Raised when Dropbox refuses the refresh token or app key: nothing more can be done
    this run, and a person has to run `frame-ingest dropbox-auth`."""


class RateLimited(TransientSourceError):
    """Raised when Dropbox answers 429; ``backoff`` is how long it asked us to wait."""

    def __init__(self, message: str, backoff: float | None):
        super().__init__(message, SOURCE)
        self.backoff = backoff


def token_file(settings: DropboxSourceConfig, state_dir: Path) -> Path:
    """Where the refresh token lives: ``refresh_token_file`` or ``<state_dir>/dropbox-refresh-token``."""
    if settings.refresh_token_file.strip():
        return expand_path(settings.refresh_token_file.strip())
    return state_dir / TOKEN_FILE_NAME


def read_refresh_token(settings: DropboxSourceConfig, state_dir: Path) -> str:
    """The refresh token: the variable named by ``refresh_token_env`` if set, else the file."""
    if settings.refresh_token_env:
        value = os.environ.get(settings.refresh_token_env, "").strip()
        if value:
            return value
    path = token_file(settings, state_dir)
    where = f"${settings.refresh_token_env} is empty and " if settings.refresh_token_env else ""
    try:
        token = read_secret(path, "the Dropbox refresh token file")
    except FileNotFoundError:
        raise PermanentSourceError(f"no Dropbox refresh token: {where}{path} does not exist; "
                                   f"{REAUTHORIZE}", SOURCE) from None
    except OSError as exc:
        raise PermanentSourceError(f"cannot read the Dropbox refresh token file {path}: "
                                   f"{exc.strerror}", SOURCE) from None
    if not token:
        raise PermanentSourceError(f"the Dropbox refresh token file {path} is empty; "
                                   f"{REAUTHORIZE}", SOURCE)
    return token


def require_app_key(settings: DropboxSourceConfig) -> str:
    if not settings.app_key.strip():
        raise PermanentSourceError("[sources.dropbox] app_key is empty: create a Dropbox app "
                                   "and copy its app key (see docs/dropbox.md)", SOURCE)
    return settings.app_key.strip()


def http_session(settings: DropboxSourceConfig) -> requests.Session:
    """A requests session trusting ``ca_file`` if one is configured.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override a session's CA
    whenever ``trust_env`` is on, so a configured ``ca_file`` would silently lose; it is
    switched off for that case only. With no ``ca_file`` the environment keeps working as
    users of requests expect.
    """
    if not settings.ca_file.strip():
        return dropbox.create_session()
    ca_file = expand_path(settings.ca_file.strip())
    if not ca_file.is_file():
        raise PermanentSourceError(f"[sources.dropbox] ca_file {ca_file} does not exist",
                                   SOURCE)
    session = dropbox.create_session(ca_certs=str(ca_file))
    session.trust_env = False
    return session


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)   # the umask may only narrow it, never widen
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn SDK and requests exceptions raised inside into SourceErrors naming ``action``.

    ``ApiError`` (a route's own error such as "path not found") passes through: only the
    caller knows whether it matters.
    """
    try:
        yield
    except sdk_errors.AuthError as exc:
        raise CredentialsRefused(
            f"Dropbox refused the credentials while trying to {action} (the refresh token is "
            f"invalid or revoked, or app_key is wrong); {REAUTHORIZE}", SOURCE) from exc
    except sdk_errors.RateLimitError as exc:
        raise RateLimited(f"Dropbox rate limit while trying to {action}", exc.backoff) from exc
    except sdk_errors.InternalServerError as exc:
        raise TransientSourceError(f"Dropbox server error {exc.status_code} while trying to "
                                   f"{action}", SOURCE) from exc
    except sdk_errors.BadInputError as exc:
        raise PermanentSourceError(f"Dropbox rejected the request to {action}: "
                                   f"{_short(exc.message)} (check app_key)", SOURCE) from exc
    except sdk_errors.HttpError as exc:
        raise PermanentSourceError(f"Dropbox answered HTTP {exc.status_code} while trying to "
                                   f"{action}", SOURCE) from exc
    except requests.exceptions.SSLError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise PermanentSourceError(
                f"the Dropbox server's certificate is not trusted while trying to {action}; "
                f"check [sources.dropbox] ca_file or REQUESTS_CA_BUNDLE", SOURCE) from exc
        raise TransientSourceError(f"TLS connection broke while trying to {action}",
                                   SOURCE) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientSourceError(f"network problem while trying to {action}: "
                                   f"{type(exc).__name__}", SOURCE) from exc


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class Connection:
    """An SDK client for one run, and the retry policy every call goes through."""

    def __init__(self, settings: DropboxSourceConfig, state_dir: Path,
                 refresh_token: str | None = None):
        self.settings = settings
        self.client = dropbox.Dropbox(
            oauth2_refresh_token=refresh_token or read_refresh_token(settings, state_dir),
            app_key=require_app_key(settings), session=http_session(settings),
            timeout=settings.timeout_seconds, max_retries_on_error=0,
            max_retries_on_rate_limit=0, user_agent=f"frame-ingest/{__version__}")

    def call(self, action: str, function: Callable[..., Any], *arguments: Any,
             **keywords: Any) -> Any:
        """Run ``function`` with translated errors, retrying transient ones (bounded)."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransientSourceError),
            stop=stop_after_attempt(self.settings.retries + 1) | _asked_to_wait_too_long,
            wait=_wait, before_sleep=self._log_retry(action), reraise=True)
        return retrying(self._translated, action, function, *arguments, **keywords)

    @staticmethod
    def _translated(action: str, function: Callable[..., Any], *arguments: Any,
                    **keywords: Any) -> Any:
        with translated(action):
            return function(*arguments, **keywords)

    def _log_retry(self, action: str) -> Callable[[RetryCallState], None]:
        def log_once(state: RetryCallState) -> None:
            log.warning("dropbox: %s; retry %d of %d in %.1f s", state.outcome.exception(),
                        state.attempt_number, self.settings.retries,
                        state.next_action.sleep if state.next_action else 0.0)
        return log_once


_jittered = wait_random_exponential(multiplier=0.5, max=30)


def _asked_to_wait_too_long(state: RetryCallState) -> bool:
    """Stop retrying when a 429 asks for more than LONGEST_WAIT: the next run tries again
    (a timer run must not sit idle for many minutes holding the instance lock)."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited) and error.backoff and error.backoff > LONGEST_WAIT:
        log.warning("dropbox: asked to wait %.0f s before the next request; trying again "
                    "next run", float(error.backoff))
        return True
    return False


def _wait(state: RetryCallState) -> float:
    """Exponential backoff with full jitter, but never shorter than a 429's Retry-After."""
    seconds = _jittered(state)
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited) and error.backoff:
        seconds = max(seconds, float(error.backoff))
    return min(seconds, LONGEST_WAIT)   # a longer Retry-After stopped the retries already
