"""One logged-in IMAP connection, in the words frame-ingest needs; imapclient stays in here.

Every call into imapclient goes through ``translate_errors``, the one place where library
and socket exceptions become ``TransientSourceError`` (worth a reconnect: drops, timeouts,
refused connections, a server saying BYE) or ``PermanentSourceError`` (needs a person: bad
credentials, an untrusted certificate, a missing folder). Nothing above this module knows
imaplib. Messages never contain the password or an access token: each is passed to the
login call and forgotten. With ``auth = "oauth2"`` the login is SASL XOAUTH2, or OAUTHBEARER
where the server offers only that (tokens come from ``imap_oauth.py``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import (CapabilityError, IMAPClientAbortError, IMAPClientError,
                                   LoginError)

from pipeline.errors import PermanentSourceError, TransientSourceError
from pipeline.sources.mail import headers
from pipeline.sources.mail_parts import MimePart, Untrusted

log = logging.getLogger("frame-ingest")
SOURCE = "imap"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect (no secret in here, so it may be shown)."""

    host: str
    port: int
    security: str               # "ssl" | "starttls" | "none"
    username: str
    ca_file: str = ""
    timeout: float = 60.0
    auth: str = "password"      # "password" | "oauth2": what a refused login asks to check

    def __str__(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True)
class BearerToken:
    """An OAuth2 access token to log in with; ``renew_at`` (epoch seconds) is when a
    long-lived connection should log in again with a new one. Never shown."""

    value: str = field(repr=False)
    renew_at: float | None = None


class LoginRefused(PermanentSourceError):
    """Raised when the server refuses the login (password or access token)."""


@contextlib.contextmanager
def translate_errors(action: str, endpoint: Endpoint) -> Iterator[None]:
    """Map imapclient/socket/ssl exceptions to SourceErrors that say what to check."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        yield
    except LoginError:
        if endpoint.auth == "oauth2":
            raise LoginRefused(
                f"IMAP login: {where} refused the OAuth2 access token for "
                f"{endpoint.username}: check username (the mailbox's address) and that IMAP "
                "is enabled for the mailbox; if it persists, run `frame-ingest imap-auth`",
                SOURCE) from None
        raise LoginRefused(
            f"login as {endpoint.username} at {where} refused: check username and "
            "password (password_file / password_env)", SOURCE) from None
    except CapabilityError as exc:
        raise PermanentSourceError(f"{where}: server lacks what {action} needs: {exc}",
                                   SOURCE) from None
    except IMAPClientAbortError as exc:
        raise TransientSourceError(f"{where}: connection lost while trying to {action}: "
                                   f"{exc}", SOURCE) from exc
    except IMAPClientError as exc:
        if "BYE" in str(exc):  # the server is closing the connection (shutdown, autologout)
            raise TransientSourceError(f"{where}: server closed the connection while trying "
                                       f"to {action}", SOURCE) from exc
        raise PermanentSourceError(f"{where}: server refused to {action}: {exc}",
                                   SOURCE) from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentSourceError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); for a "
            "self-hosted server set ca_file", SOURCE) from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        raise TransientSourceError(f"{where}: TLS connection closed while trying to "
                                   f"{action}", SOURCE) from exc
    except ssl.SSLError as exc:
        raise PermanentSourceError(f"{where}: TLS failure ({exc.reason or exc}); check port "
                                   "and security", SOURCE) from None
    except socket.gaierror as exc:
        raise TransientSourceError(f"cannot resolve host {endpoint.host}: {exc.strerror}",
                                   SOURCE) from exc
    except (socket.timeout, TimeoutError) as exc:
        raise TransientSourceError(f"{where}: timed out while trying to {action}",
                                   SOURCE) from exc
    except OSError as exc:
        raise TransientSourceError(f"{where}: cannot {action}: {exc.strerror or exc}",
                                   SOURCE) from exc


def open_session(endpoint: Endpoint, credential: str | BearerToken) -> "Session":
    """Connect, secure and log in with a password or an access token; the caller closes
    the session (use ``with``)."""
    context = ssl.create_default_context(cafile=endpoint.ca_file or None)
    with translate_errors("connect", endpoint):
        client = IMAPClient(endpoint.host, endpoint.port, ssl=endpoint.security == "ssl",
                            ssl_context=context, timeout=endpoint.timeout)
    session = Session(client, endpoint)
    try:
        with translate_errors("log in", endpoint):
            if endpoint.security == "starttls":
                client.starttls(context)
            if isinstance(credential, BearerToken):
                session.login_method = _token_login(client, endpoint, credential.value)
                session.renew_at = credential.renew_at
            else:
                client.login(endpoint.username, credential)
    except BaseException:
        session.close()
        raise
    return session


def _token_login(client: IMAPClient, endpoint: Endpoint, token: str) -> str:
    """SASL XOAUTH2 (what Outlook and Gmail offer), else OAUTHBEARER (RFC 7628); the name."""
    offered = set(client.capabilities())
    if b"AUTH=XOAUTH2" in offered:
        client.oauth2_login(endpoint.username, token)
        return "XOAUTH2"
    if b"AUTH=OAUTHBEARER" in offered:
        client.oauthbearer_login(endpoint.username, token)
        return "OAUTHBEARER"
    raise PermanentSourceError(f"IMAP login: {endpoint.host}:{endpoint.port} offers neither "
                               "XOAUTH2 nor OAUTHBEARER, so it does not take OAuth2 tokens; "
                               'use auth = "password"', SOURCE)


@dataclass(frozen=True)
class FolderInfo:
    uidvalidity: int
    exists: int


@dataclass(frozen=True)
class Outline:
    """A message without its body: size, headers and the structure of its parts."""

    size: int                       # RFC822.SIZE: the message as stored
    header: bytes                   # BODY[HEADER]
    structure: MimePart | None      # None: the server's BODYSTRUCTURE could not be read


class Session:
    """A logged-in connection: select, search, fetch, acknowledge, idle."""

    def __init__(self, client: IMAPClient, endpoint: Endpoint):
        self.client = client
        self.endpoint = endpoint
        self.login_method = "password"
        self.renew_at: float | None = None    # epoch seconds; None: the login does not age

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Log out politely; on a dead connection just drop the socket."""
        try:
            self.client.logout()
        except Exception:  # the connection may already be gone: nothing left to tell it
            with contextlib.suppress(Exception):
                self.client.shutdown()

    def calls(self, action: str):
        return translate_errors(action, self.endpoint)

    def folder_exists(self, folder: str) -> bool:
        with self.calls(f"look up folder {folder}"):
            return self.client.folder_exists(folder)

    def require_folder(self, folder: str) -> None:
        if not self.folder_exists(folder):
            raise PermanentSourceError(f"folder {folder!r} does not exist on "
                                       f"{self.endpoint.host}", SOURCE)

    def select(self, folder: str, readonly: bool = False) -> FolderInfo:
        self.require_folder(folder)
        with self.calls(f"open folder {folder}"):
            info = self.client.select_folder(folder, readonly=readonly)
        return FolderInfo(int(info[b"UIDVALIDITY"]), int(info.get(b"EXISTS", 0)))

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending (``N:*`` also answers the highest UID below N)."""
        with self.calls("search the folder"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def message_size(self, uid: int) -> int | None:
        """The message's size in bytes as the server stores it; None if it is gone."""
        with self.calls(f"read the size of message {uid}"):
            response = self.client.fetch([uid], ["RFC822.SIZE"])
        size = response.get(uid, {}).get(b"RFC822.SIZE")
        return int(size) if size is not None else None

    def fetch_outline(self, uid: int) -> Outline | None:
        """Size, headers and structure in one round trip (BODY.PEEK: flags untouched)."""
        with self.calls(f"read the structure of message {uid}"):
            response = self.client.fetch([uid], ["RFC822.SIZE", "BODY.PEEK[HEADER]",
                                                 "BODYSTRUCTURE"])
        data = response.get(uid, {})
        if data.get(b"RFC822.SIZE") is None:
            return None
        try:
            structure = message_structure(data[b"BODYSTRUCTURE"], "")
        except (Untrusted, KeyError, IndexError, TypeError, ValueError, AttributeError):
            structure = None
        return Outline(int(data[b"RFC822.SIZE"]), data.get(b"BODY[HEADER]") or b"", structure)

    def fetch_sections(self, uid: int, sections: list[str]) -> dict[str, bytes] | None:
        """Small sections (part headers) by name, in batches; None if the message is gone."""
        found: dict[str, bytes] = {}
        for start in range(0, len(sections), 100):
            batch = sections[start:start + 100]
            with self.calls(f"read the part headers of message {uid}"):
                response = self.client.fetch([uid], [f"BODY.PEEK[{name}]" for name in batch])
            data = response.get(uid)
            if data is None:
                return None
            for name in batch:
                found[name] = data.get(f"BODY[{name}]".encode()) or b""
        return found

    def fetch_chunk(self, uid: int, section: str, offset: int, length: int) -> bytes | None:
        """``length`` octets of a part from ``offset`` (fewer at its end); None if gone."""
        with self.calls(f"fetch part {section} of message {uid}"):
            response = self.client.fetch([uid], [f"BODY.PEEK[{section}]<{offset}.{length}>"])
        data = response.get(uid)
        if data is None:
            return None
        return data.get(f"BODY[{section}]<{offset}>".encode()) or b""

    def fetch_message(self, uid: int) -> bytes | None:
        """The raw message, read with BODY.PEEK so flags stay as they were; None if gone."""
        with self.calls(f"fetch message {uid}"):
            response = self.client.fetch([uid], ["BODY.PEEK[]"])
        data = response.get(uid, {})
        return data.get(b"BODY[]")

    def server_folder_name(self, configured: str) -> str:
        """``a/b`` in the configuration, spelt with the server's separator (Dovecot: ``a.b``)."""
        with self.calls("list folders"):
            listing = self.client.list_folders("", "")
        separator = listing[0][1] if listing and listing[0][1] else None
        if isinstance(separator, bytes):
            separator = separator.decode()
        return configured.replace("/", separator) if separator else configured

    def ensure_folder(self, folder: str) -> None:
        if not self.folder_exists(folder):
            with self.calls(f"create folder {folder}"):
                self.client.create_folder(folder)
            log.info("imap: created folder %s", folder)

    def acknowledge(self, uid: int, *, seen: bool, target: str) -> None:
        """Flag \\Seen and/or move to ``target`` ("" = stay); only this UID is touched."""
        with self.calls(f"mark message {uid} as processed"):
            if seen:
                self.client.add_flags([uid], [SEEN])
            if not target:
                return
            if self.client.has_capability("MOVE"):
                self.client.move([uid], target)
                return
            if not self.client.has_capability("UIDPLUS"):
                raise PermanentSourceError(
                    f"{self.endpoint.host} has neither MOVE nor UIDPLUS, so a single message "
                    "cannot be moved safely; set processed_folder = \"\"", SOURCE)
            self.client.copy([uid], target)
            self.client.add_flags([uid], [DELETED])
            self.client.uid_expunge([uid])

    def move_unseen_from(self, source: str, address: str, target: str) -> int:
        """Move every unread message of ``source`` whose single From address is
        ``address`` into ``target``; return how many (SEARCH FROM matches substrings, so
        each From header is read and compared)."""
        self.select(source)
        with self.calls(f"search {source}"):
            found = sorted(self.client.search(["UNSEEN", "FROM", address]))
            response = self.client.fetch(found, ["BODY.PEEK[HEADER.FIELDS (FROM)]"]) \
                if found else {}
        matching = [uid for uid in found
                    if headers(response.get(uid, {}).get(
                        b"BODY[HEADER.FIELDS (FROM)]") or b"").sender == address.lower()]
        for uid in matching:
            self.acknowledge(uid, seen=False, target=target)
        return len(matching)

    def can_idle(self) -> bool:
        with self.calls("read capabilities"):
            return self.client.has_capability("IDLE")

    def idle_until_new_mail(self, seconds: float,
                            interruptible: Callable[[], ContextManager] = contextlib.nullcontext
                            ) -> bool:
        """Wait in IDLE up to ``seconds``; True if the server announced new mail (EXISTS).

        Only the wait itself runs inside ``interruptible()`` (watch's signal handler may
        raise there): entering IDLE and leaving it with DONE are never cut in half, so the
        connection is always back in its normal state for the LOGOUT that follows.
        """
        with self.calls("wait for new mail"):
            self.client.idle()
            try:
                with interruptible():
                    responses = self.client.idle_check(timeout=seconds)
            finally:
                responses_after = self.client.idle_done()[1]
        responses = list(responses) + list(responses_after or [])
        return any(len(item) > 1 and item[1] == b"EXISTS" for item in responses)

    def noop(self) -> None:
        with self.calls("keep the connection alive"):
            self.client.noop()


# --- BODYSTRUCTURE as MimePart trees ------------------------------------------------------
# imapclient gives nested tuples: a multipart is (parts..., subtype, parameters, ...), its
# parts in a list at the top level and loose tuples inside a forwarded message; a single
# part is (type, subtype, parameters, id, description, encoding, size, ...), and a
# message/rfc822 part carries (..., envelope, body, lines, ...) from index 7. Sections
# follow RFC 3501: parts of a multipart are N.1, N.2; a message's single body is N.1.

def message_structure(body, section: str) -> MimePart:
    """The body of a message (the whole one: section "", or one forwarded at ``section``)."""
    if _is_multipart(body):
        return _multipart(body, section)
    return _single(body, f"{section}.1" if section else "1",
                   f"{section}.HEADER" if section else "HEADER")


def _is_multipart(body) -> bool:
    return isinstance(body[0], (list, tuple))


def _multipart(body, section: str) -> MimePart:
    if isinstance(body[0], list):
        parts, rest = body[0], body[1:]
    else:
        count = next(index for index, item in enumerate(body) if not isinstance(item, tuple))
        parts, rest = body[:count], body[count:]
    children = []
    for number, part in enumerate(parts, 1):
        child = f"{section}.{number}" if section else str(number)
        if _is_multipart(part):
            children.append(_multipart(part, child))
        else:
            children.append(_single(part, child, f"{child}.MIME"))
    parameters = _parameters(rest[1] if len(rest) > 1 else None)
    return MimePart(f"multipart/{_text(rest[0])}", children=tuple(children),
                    boundary=bool(parameters.get("boundary")))


def _single(body, section: str, header_section: str) -> MimePart:
    content_type = f"{_text(body[0])}/{_text(body[1])}"
    encoding = _text(body[5]) or "7bit"
    size = int(body[6])
    children = ()
    if content_type == "message/rfc822":
        children = (message_structure(body[8], section),)
    return MimePart(content_type, section, header_section, encoding, size, children)


def _parameters(values) -> dict[str, str]:
    if not isinstance(values, tuple):
        return {}
    return {_text(values[index]): _text(values[index + 1])
            for index in range(0, len(values) - 1, 2)}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise Untrusted(f"unexpected {type(value).__name__} in BODYSTRUCTURE")
    return value.strip().lower()

