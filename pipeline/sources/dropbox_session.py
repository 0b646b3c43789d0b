"""The one boundary to Dropbox: every ``dropbox`` SDK call and every SDK or ``requests``
exception is here, the way ``imap_session.Session`` is the one boundary to imapclient.

``Session`` (and ``Authorization``, the OAuth flow of ``dropbox-auth``) speaks
frame-ingest's words: the account's e-mail, whether a folder exists,
pages of a listing (``Page`` of ``RemoteFile``; ``list_continue`` answers None when Dropbox
has reset the cursor, so the caller can fall back to a full listing), a download handed on
as a stream verified against the content_hash, a move and a delete (only of the revision
listed). What cannot succeed because someone else got there first raises ``Gone``; a file
Dropbox will not hand out raises ``DownloadRefused``. Nothing above this module sees an SDK
type.

Every call goes through ``Session._call``, which turns failures into
``TransientSourceError`` (retried here with tenacity: bounded, exponential backoff with
jitter, each retry logged once) or ``PermanentSourceError`` (not retried: a revoked token, a
missing folder). The SDK's own retry loops are switched off (``max_retries_on_error=0``,
``max_retries_on_rate_limit=0``): its default retries a 429 forever and sleeps without a
word, so one bounded, logged retry layer is easier to reason about on an unattended frame.
A download is retried as a whole, staging included, so a copy damaged on the way is simply
fetched again.

Host names come from the SDK itself (it reads ``DROPBOX_API_HOST`` and friends from the
environment at import time); nothing here names a host. Tokens are never put into a log
line or an error message. The settings were checked by ``config.parse_config``
(``DropboxSourceConfig.rules``): app_key is set, folder and move_to are Dropbox paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import dropbox
import requests
from dropbox import exceptions as sdk_errors
from dropbox import files as sdk_files
from tenacity import (RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_random_exponential)

from pipeline import __version__
from pipeline.config import DropboxSourceConfig, expand_path
from pipeline.errors import PermanentSourceError, TransientSourceError
from pipeline.secrets import read_secret
from pipeline.sources.dropbox_download import CHUNK, VerifiedDownload

log = logging.getLogger("frame-ingest")

SOURCE = "dropbox"
TOKEN_FILE_NAME = "dropbox-refresh-token"
REAUTHORIZE = "run `frame-ingest dropbox-auth`"
LONGEST_WAIT = 300.0    # seconds; a longer Retry-After gives up until the next run

Result = TypeVar("Result")


class CredentialsRefused(PermanentSourceError):
    """Raised when Dropbox refuses the refresh token or app key: nothing more can be done
    this run, and a person has to run `frame-ingest dropbox-auth`."""


class RateLimited(TransientSourceError):
    """Raised when Dropbox answers 429; ``backoff`` is how long it asked us to wait."""

    def __init__(self, message: str, backoff: float | None):
        super().__init__(message, SOURCE)
        self.backoff = backoff


class Gone(PermanentSourceError):
    """Raised when the file to download, move or delete is no longer where it was listed
    (someone moved or deleted it meanwhile): nothing to do, and not a failure."""


class DownloadRefused(PermanentSourceError):
    """Raised when Dropbox will not hand out a file's bytes (restricted or unsupported
    content): asking again will not help."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a listing, as much of it as frame-ingest uses."""

    id: str
    name: str
    path_lower: str
    path_display: str
    rev: str
    size: int
    content_hash: str
    server_modified: datetime       # UTC
    downloadable: bool              # False for a Google Doc, a Paper doc: no bytes to take
    client_modified: datetime | None = None     # UTC: what the uploader's device said


@dataclass(frozen=True)
class Page:
    """One page of a listing: its files (folders and deletions left out) and its cursor."""

    files: list[RemoteFile]
    cursor: str
    has_more: bool


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


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn SDK and requests exceptions raised inside into SourceErrors naming ``action``.

    A route's own error (``ApiError``, such as "path not found") is best handled by the
    method that made the call, which knows whether it matters; one that gets this far is
    permanent.
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
    except sdk_errors.ApiError as exc:
        raise PermanentSourceError(f"Dropbox refused to {action}: {exc.error}", SOURCE) from exc


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class Session:
    """An SDK client for one run, and the retry policy every call goes through."""

    def __init__(self, settings: DropboxSourceConfig, state_dir: Path,
                 refresh_token: str | None = None):
        self.settings = settings
        self.client = dropbox.Dropbox(
            oauth2_refresh_token=refresh_token or read_refresh_token(settings, state_dir),
            app_key=settings.app_key.strip(), session=http_session(settings),
            timeout=settings.timeout_seconds, max_retries_on_error=0,
            max_retries_on_rate_limit=0, user_agent=f"frame-ingest/{__version__}")

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    # --- what frame-ingest asks of Dropbox ------------------------------------------

    def account_email(self, action: str = "read the account") -> str:
        return self._call(action, self.client.users_get_current_account).email

    def is_folder(self, path: str) -> bool:
        """Whether ``path`` exists and is a folder (not a file)."""
        def look_up():
            try:
                return self.client.files_get_metadata(path)
            except sdk_errors.ApiError as exc:
                if _lookup_not_found(exc.error, "path"):
                    return None
                raise
        return isinstance(self._call(f"look up {path}", look_up), sdk_files.FolderMetadata)

    def list_folder(self, folder: str, recursive: bool) -> Page:
        """The first page of a full listing of ``folder`` ("" for the whole Dropbox)."""
        where = folder or "/"

        def list_folder():
            try:
                return self.client.files_list_folder(folder, recursive=recursive,
                                                     include_non_downloadable_files=False)
            except sdk_errors.ApiError as exc:
                raise PermanentSourceError(f"cannot list Dropbox folder {where}: {exc.error} "
                                           f"(check [sources.dropbox] folder)", SOURCE) from exc
        return _page(self._call(f"list {where}", list_folder))

    def list_continue(self, cursor: str) -> Page | None:
        """The page after ``cursor``, or None when Dropbox says the cursor is reset or
        unusable (the caller lists in full again)."""
        def list_continue():
            try:
                return self.client.files_list_folder_continue(cursor)
            except sdk_errors.ApiError as exc:
                if exc.error.is_reset():
                    return None
                raise PermanentSourceError(f"cannot continue the listing: {exc.error}",
                                           SOURCE) from exc
            except sdk_errors.BadInputError as exc:
                if "cursor" in str(exc.message).lower():
                    return None
                raise
        page = self._call("continue the listing", list_continue)
        return None if page is None else _page(page)

    def download(self, file: RemoteFile, receive: Callable[[VerifiedDownload], Result]) -> Result:
        """Stream the listed revision of ``file`` into ``receive`` and return what it returns.

        The stream raises ``ContentMismatch`` at its end if the bytes are not what Dropbox
        promised; the download and ``receive`` are then retried together.
        """
        def download():
            try:
                _, response = self.client.files_download(file.path_lower, rev=file.rev)
            except sdk_errors.ApiError as exc:
                if _lookup_not_found(exc.error, "path"):
                    raise Gone(f"{file.path_display} is gone", SOURCE) from exc
                raise DownloadRefused(str(exc.error), SOURCE) from exc
            with response:
                chunks = response.iter_content(CHUNK)
                return receive(VerifiedDownload(next(chunks, b""), chunks,
                                                name=file.path_display,
                                                expected_hash=file.content_hash,
                                                expected_size=file.size))
        return self._call(f"download {file.path_display}", download)

    def move(self, file: RemoteFile, target: str) -> str:
        """Move ``file`` to ``target`` ("name (1).jpg" if taken); return where it went."""
        def move():
            try:
                return self.client.files_move_v2(file.path_lower, target, autorename=True)
            except sdk_errors.ApiError as exc:
                if _lookup_not_found(exc.error, "from_lookup"):
                    raise Gone(f"{file.path_display} is gone", SOURCE) from exc
                raise PermanentSourceError(f"move refused: {exc.error}", SOURCE) from exc
        return self._call(f"move {file.path_display}", move).metadata.path_display

    def delete(self, file: RemoteFile) -> None:
        """Delete ``file``, but only the revision listed (nobody changed it since)."""
        def delete():
            try:
                self.client.files_delete_v2(file.path_lower, parent_rev=file.rev)
            except sdk_errors.ApiError as exc:
                if _lookup_not_found(exc.error, "path_lookup"):
                    raise Gone(f"{file.path_display} is gone", SOURCE) from exc
                raise PermanentSourceError(f"delete refused: {exc.error}", SOURCE) from exc
        self._call(f"delete {file.path_display}", delete)

    # --- the one retry layer ----------------------------------------------------------

    def _call(self, action: str, function: Callable[..., Any], *arguments: Any) -> Any:
        """Run ``function`` with translated errors, retrying transient ones (bounded)."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransientSourceError),
            stop=stop_after_attempt(self.settings.retries + 1) | _asked_to_wait_too_long,
            wait=_wait, before_sleep=self._log_retry(action), reraise=True)
        return retrying(self._translated, action, function, *arguments)

    @staticmethod
    def _translated(action: str, function: Callable[..., Any], *arguments: Any) -> Any:
        with translated(action):
            return function(*arguments)

    def _log_retry(self, action: str) -> Callable[[RetryCallState], None]:
        def log_once(state: RetryCallState) -> None:
            log.warning("dropbox: %s; retry %d of %d in %.1f s", state.outcome.exception(),
                        state.attempt_number, self.settings.retries,
                        state.next_action.sleep if state.next_action else 0.0)
        return log_once


class Authorization:
    """The OAuth 2 "no redirect" flow with PKCE and offline access (``dropbox-auth``)."""

    def __init__(self, settings: DropboxSourceConfig):
        self.flow = dropbox.DropboxOAuth2FlowNoRedirect(
            settings.app_key.strip(), use_pkce=True, token_access_type="offline",
            timeout=settings.timeout_seconds)
        self.flow.requests_session = http_session(settings)  # its own would ignore ca_file

    def address(self) -> str:
        """The address a person opens to allow access."""
        return self.flow.start()

    def refresh_token(self, code: str) -> str:
        """Trade the code the person pasted for a refresh token."""
        try:
            with translated("exchange the code"):
                result = self.flow.finish(code)
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise PermanentSourceError(f"Dropbox did not accept the code (HTTP {status}): it "
                                       f"may be mistyped, used already or expired; "
                                       f"{REAUTHORIZE} again", SOURCE) from exc
        if not result.refresh_token:
            raise PermanentSourceError("Dropbox returned no refresh token (offline access was "
                                       "not granted)", SOURCE)
        return result.refresh_token


def _page(result) -> Page:
    files = [_remote_file(entry) for entry in result.entries
             if isinstance(entry, sdk_files.FileMetadata)]
    return Page(files, result.cursor, result.has_more)


def _remote_file(entry) -> RemoteFile:
    return RemoteFile(id=entry.id, name=entry.name, path_lower=entry.path_lower,
                      path_display=entry.path_display, rev=entry.rev, size=entry.size,
                      content_hash=entry.content_hash,
                      server_modified=entry.server_modified.replace(tzinfo=timezone.utc),
                      downloadable=entry.is_downloadable is not False,
                      client_modified=entry.client_modified.replace(tzinfo=timezone.utc)
                      if entry.client_modified else None)


def _lookup_not_found(error, branch: str) -> bool:
    """Whether a route error is "<branch>/not_found" (someone else got there first)."""
    is_branch = getattr(error, f"is_{branch}", None)
    if is_branch is None or not is_branch():
        return False
    return getattr(error, f"get_{branch}")().is_not_found()


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
