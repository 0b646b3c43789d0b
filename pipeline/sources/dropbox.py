"""The shared Dropbox folder: everything that lands in it reaches staging once, verified.

The first run lists ``folder`` (``files_list_folder``); later runs continue from the cursor
saved in the store (``files_list_folder_continue``), so only what changed is looked at. A
page is handled in this order, which is what makes a kill at any moment harmless:

1. every new image file of the page is downloaded and durably staged (``dropbox_download``);
2. then the page's files are acknowledged at the source (``after_ingest``: kept, moved into
   ``move_to`` with autorename, or deleted if still the same revision);
3. then the page's cursor is saved.

A rerun after a kill repeats at most the unfinished page: files already staged or gated are
recognised by their origin id (Dropbox file id + content_hash) and not fetched again, and
their pending move or delete is simply done now. If any file of a page fails, the cursor
stops advancing for the rest of the run, so the failed file is tried again next run. An
expired or reset cursor falls back to a full listing, with the same protection.
"""

from __future__ import annotations

import json
import logging
from datetime import timezone
from pathlib import Path

from dropbox import exceptions as sdk_errors
from dropbox import files as sdk_files

from pipeline.config import DropboxSourceConfig
from pipeline.errors import PermanentSourceError, SourceError
from pipeline.items import Provenance
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.sources.dropbox_connection import SOURCE, Connection, CredentialsRefused
from pipeline.sources.dropbox_download import (CHUNK, SNIFF_BYTES, VerifiedDownload,
                                               sniff_image_format)
from pipeline.staging import TooLarge

log = logging.getLogger("frame-ingest")

STAGED, TAKEN, SKIPPED, GONE = "staged", "taken", "skipped", "gone"


def dropbox_path(text: str) -> str:
    """A configured Dropbox path in API form: "" for the root, else "/A/B" (no trailing /)."""
    text = text.strip().rstrip("/")
    if text and not text.startswith("/"):
        raise PermanentSourceError(f'[sources.dropbox] "{text}": a Dropbox path starts with "/"',
                                   SOURCE)
    return text


def is_within(path_lower: str, folder: str) -> bool:
    folder = folder.lower()
    return folder == "" or path_lower == folder or path_lower.startswith(folder + "/")


class DropboxSource:
    name = SOURCE

    def __init__(self, settings: DropboxSourceConfig, state_dir: Path):
        self.settings = settings
        self.state_dir = state_dir
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self.folder = ""
        self.move_to: str | None = None

    def _connect(self) -> Connection:
        """Check the folders configured (a SourceError, so other sources still run), connect."""
        self.folder = dropbox_path(self.settings.folder)
        if self.settings.after_ingest == "move":
            self.move_to = dropbox_path(self.settings.move_to)
            if not self.move_to or is_within(self.folder, self.move_to):
                raise PermanentSourceError(
                    f'[sources.dropbox] move_to "{self.settings.move_to}" must be a folder that '
                    f'does not contain folder "{self.settings.folder}"', SOURCE)
        return Connection(self.settings, self.state_dir)

    # ------------------------------------------------------------------ check

    def check(self) -> str:
        connection = self._connect()
        account = connection.call("read the account", connection.client.users_get_current_account)
        if self.folder:
            metadata = connection.call(f"look up {self.folder}", self._metadata, connection,
                                       self.folder)
            if not isinstance(metadata, sdk_files.FolderMetadata):
                raise PermanentSourceError(f"Dropbox folder {self.folder} does not exist "
                                           f"(or is a file); check [sources.dropbox] folder", SOURCE)
        return f"signed in as {account.email}; folder {self.folder or '/'} is there"

    @staticmethod
    def _metadata(connection: Connection, path: str):
        try:
            return connection.client.files_get_metadata(path)
        except sdk_errors.ApiError as exc:
            if exc.error.is_path() and exc.error.get_path().is_not_found():
                return None
            raise

    # ------------------------------------------------------------------ fetch

    def fetch(self, context: FetchContext) -> FetchResult:
        connection = self._connect()
        result = FetchResult()
        cursor_may_advance = True
        listing = Listing(connection, self.folder, self.settings.recursive)
        for entries, cursor in listing.pages(self._saved_cursor(context.store)):
            errors_before = len(result.errors)
            done = self._stage_page(connection, entries, context, result)
            self._acknowledge(connection, done, result)
            cursor_may_advance = cursor_may_advance and len(result.errors) == errors_before
            if cursor_may_advance:
                self._save_cursor(context.store, cursor)
        if not cursor_may_advance:
            log.warning("dropbox: the listing position was not advanced past the failed "
                        "file(s); they are tried again next run")
        return result

    def _stage_page(self, connection: Connection, entries: list, context: FetchContext,
                    result: FetchResult) -> list:
        """Stage the page's new files; return the file entries to acknowledge."""
        done = []
        for entry in entries:
            if not isinstance(entry, sdk_files.FileMetadata) or self._excluded(entry):
                continue
            try:
                outcome = self._take(connection, entry, context)
            except (SourceError, OSError) as exc:
                if isinstance(exc, CredentialsRefused):
                    raise
                message = f"dropbox: {entry.path_display}: {exc}"
                log.error(message)
                result.errors.append(message)
                continue
            result.staged += outcome == STAGED
            result.skipped += outcome == SKIPPED
            if outcome in (STAGED, TAKEN):
                done.append(entry)
        return done

    def _excluded(self, entry) -> bool:
        """Files moved into ``move_to`` were ingested already: never take them again."""
        return self.move_to is not None and is_within(entry.path_lower, self.move_to)

    def _take(self, connection: Connection, entry, context: FetchContext) -> str:
        provenance = self._provenance(entry)
        if context.already_taken(provenance):
            return TAKEN
        if entry.is_downloadable is False:     # a Google Doc, a Paper doc: no bytes to take
            log.info("dropbox: skipped %s: not a downloadable file", entry.path_display)
            return SKIPPED
        if entry.size > self.max_bytes:
            log.info("dropbox: skipped %s: %.1f MB is over max_file_mb = %g",
                     entry.path_display, entry.size / 1048576, self.settings.max_file_mb)
            return SKIPPED
        return connection.call(f"download {entry.path_display}", self._download_and_stage,
                               connection, entry, provenance, context)

    def _download_and_stage(self, connection: Connection, entry, provenance: Provenance,
                            context: FetchContext) -> str:
        try:
            _, response = connection.client.files_download(entry.path_lower, rev=entry.rev)
        except sdk_errors.ApiError as exc:
            if exc.error.is_path() and exc.error.get_path().is_not_found():
                log.info("dropbox: %s vanished before it could be downloaded",
                         entry.path_display)
                return GONE
            # restricted or unsupported content: asking again will not help
            log.warning("dropbox: skipped %s: Dropbox refuses the download (%s)",
                        entry.path_display, exc.error)
            return SKIPPED
        with response:
            chunks = response.iter_content(CHUNK)
            first = next(chunks, b"")
            if sniff_image_format(first[:SNIFF_BYTES]) is None:
                log.info("dropbox: skipped %s: not an image (judged by its first bytes)",
                         entry.path_display)
                return SKIPPED
            stream = VerifiedDownload(first, chunks, name=entry.path_display,
                                      expected_hash=entry.content_hash,
                                      expected_size=entry.size)
            try:
                context.stage(stream, provenance, max_bytes=self.max_bytes)
            except TooLarge:
                log.info("dropbox: skipped %s: larger than max_file_mb = %g",
                         entry.path_display, self.settings.max_file_mb)
                return SKIPPED
        return STAGED

    def _provenance(self, entry) -> Provenance:
        modified = entry.server_modified.replace(tzinfo=timezone.utc)
        return Provenance(
            source=SOURCE, origin_id=f"{entry.id}:{entry.content_hash}", name=entry.name,
            received=modified.isoformat(timespec="seconds"),
            sender=f"Dropbox {self.folder or '/'}",
            extra={"path": entry.path_display, "rev": entry.rev})

    # ------------------------------------------------------------------ acknowledge

    def _acknowledge(self, connection: Connection, entries: list, result: FetchResult) -> None:
        """Carry out ``after_ingest`` for staged entries (never for skipped ones)."""
        if self.settings.after_ingest == "keep":
            return
        for entry in entries:
            try:
                if self.move_to is not None:
                    connection.call(f"move {entry.path_display}", self._move, connection, entry)
                else:
                    connection.call(f"delete {entry.path_display}", self._delete, connection,
                                    entry)
            except SourceError as exc:
                if isinstance(exc, CredentialsRefused):
                    raise
                message = f"dropbox: {entry.path_display}: {exc}"
                log.error(message)
                result.errors.append(message)

    def _move(self, connection: Connection, entry) -> None:
        relative = entry.path_display[len(self.folder):] if self.folder else entry.path_display
        target = self.move_to + relative
        try:
            moved = connection.client.files_move_v2(entry.path_lower, target, autorename=True)
        except sdk_errors.ApiError as exc:
            if _lookup_not_found(exc.error, "from_lookup"):
                log.info("dropbox: %s is gone already; nothing to move", entry.path_display)
                return
            raise PermanentSourceError(f"move refused: {exc.error}", SOURCE) from exc
        log.info("dropbox: moved %s to %s", entry.path_display, moved.metadata.path_display)

    def _delete(self, connection: Connection, entry) -> None:
        try:
            connection.client.files_delete_v2(entry.path_lower, parent_rev=entry.rev)
        except sdk_errors.ApiError as exc:
            if _lookup_not_found(exc.error, "path_lookup"):
                log.info("dropbox: %s is gone already; nothing to delete", entry.path_display)
                return
            raise PermanentSourceError(f"delete refused: {exc.error}", SOURCE) from exc
        log.info("dropbox: deleted %s", entry.path_display)

    # ------------------------------------------------------------------ cursor

    def _cursor_scope(self) -> dict:
        return {"folder": self.folder.lower(), "recursive": self.settings.recursive}

    def _saved_cursor(self, store) -> str | None:
        """The saved cursor, if it was made for the folder and mode configured now."""
        saved = store.get_state(SOURCE, "cursor")
        if not saved:
            return None
        data = json.loads(saved)
        if {key: data.get(key) for key in ("folder", "recursive")} != self._cursor_scope():
            log.info("dropbox: folder or recursive changed since the last run; listing in full")
            return None
        return data.get("cursor")

    def _save_cursor(self, store, cursor: str) -> None:
        with store.transaction() as tx:
            store.set_state(tx, SOURCE, "cursor", json.dumps({**self._cursor_scope(),
                                                             "cursor": cursor}))


def _lookup_not_found(error, branch: str) -> bool:
    """Whether a move/delete error is "<branch>/not_found" (someone else got there first)."""
    is_branch = getattr(error, f"is_{branch}", None)
    if is_branch is None or not is_branch():
        return False
    return getattr(error, f"get_{branch}")().is_not_found()


class Listing:
    """The pages of ``files_list_folder`` / ``files_list_folder_continue``, following
    ``has_more``, falling back once per run to a full listing when a cursor is refused."""

    def __init__(self, connection: Connection, folder: str, recursive: bool):
        self.connection = connection
        self.folder = folder
        self.recursive = recursive
        self.fell_back = False

    def pages(self, cursor: str | None):
        """Yield (entries, cursor) for each page, starting after ``cursor`` if given."""
        page = self._continue(cursor) if cursor else self._full()
        yield page.entries, page.cursor
        while page.has_more:
            page = self._continue(page.cursor)
            yield page.entries, page.cursor

    def _full(self):
        try:
            return self.connection.call(f"list {self.folder or '/'}", self._list_folder)
        except sdk_errors.ApiError as exc:
            raise PermanentSourceError(f"cannot list Dropbox folder {self.folder or '/'}: "
                                       f"{exc.error} (check [sources.dropbox] folder)",
                                       SOURCE) from exc

    def _list_folder(self):
        return self.connection.client.files_list_folder(
            self.folder, recursive=self.recursive, include_non_downloadable_files=False)

    def _continue(self, cursor: str):
        page = self.connection.call("continue the listing", self._list_continue, cursor)
        if page is not None:
            return page
        if self.fell_back:
            raise PermanentSourceError("Dropbox refused a fresh listing cursor too", SOURCE)
        self.fell_back = True
        log.warning("dropbox: the saved listing position is no longer valid (reset or "
                    "expired); listing %s in full, files taken before are not fetched again",
                    self.folder or "/")
        return self._full()

    def _list_continue(self, cursor: str):
        """The next page, or None when Dropbox says the cursor is reset or unusable."""
        try:
            return self.connection.client.files_list_folder_continue(cursor)
        except sdk_errors.ApiError as exc:
            if exc.error.is_reset():
                return None
            raise PermanentSourceError(f"cannot continue the listing: {exc.error}",
                                       SOURCE) from exc
        except sdk_errors.BadInputError as exc:
            if "cursor" in str(exc.message).lower():
                return None
            raise
