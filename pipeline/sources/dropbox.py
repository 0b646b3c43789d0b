"""The shared Dropbox folder: everything that lands in it reaches staging once, verified.

The first run lists ``folder``; later runs continue from the cursor saved in the store, so
only what changed is looked at. A page is handled in this order, which is what makes a kill
at any moment harmless:

1. every new image file of the page is downloaded, verified and durably staged;
2. then the page's files are acknowledged at the source (``after_ingest``: kept, moved into
   ``move_to`` with autorename, or deleted if still the same revision);
3. then the page's cursor is saved.

A rerun after a kill repeats at most the unfinished page: files already staged or gated are
recognised by their origin id (Dropbox file id + content_hash) and not fetched again, and
their pending move or delete is simply done now. If any file of a page fails, the cursor
stops advancing for the rest of the run, so the failed file is tried again next run. An
expired or reset cursor falls back to a full listing, with the same protection.

This module decides; ``dropbox_session.Session`` talks to Dropbox (it is the only place that
knows the SDK, its errors and the retries), and ``dropbox_download`` checks the bytes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath

from pipeline.config import MIB, DropboxSourceConfig
from pipeline.errors import PermanentSourceError, SourceError
from pipeline.formats import SUFFIXES
from pipeline.video_formats import SNIFF_BYTES as VIDEO_SNIFF_BYTES
from pipeline.video_formats import VIDEO_SUFFIXES, sniff_video
from pipeline.items import Provenance
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.sources.dropbox_download import SNIFF_BYTES, VerifiedDownload, sniff_image_format
from pipeline.sources.dropbox_session import (SOURCE, CredentialsRefused, DownloadRefused, Gone,
                                              Page, RemoteFile, Session)
from pipeline.staging import TooLarge

log = logging.getLogger("frame-ingest")

STAGED, TAKEN, SKIPPED, GONE = "staged", "taken", "skipped", "gone"
VIDEO_LEFT = "video-left"      # a video while [video] enabled = false: left in Dropbox


def relative_folder(path_display: str, folder: str) -> str:
    """The sub-folder of ``folder`` (API form) holding the file at ``path_display``, as
    written by the uploader ("" when the file is directly in ``folder``)."""
    parent = path_display.rpartition("/")[0]
    if folder and parent.lower().startswith(folder.lower()):
        parent = parent[len(folder):]
    return parent.strip("/")


def is_within(path_lower: str, folder: str) -> bool:
    folder = folder.lower()
    return folder == "" or path_lower == folder or path_lower.startswith(folder + "/")


class DropboxSource:
    name = SOURCE

    def __init__(self, settings: DropboxSourceConfig, state_dir: Path):
        self.settings = settings  # checked in config.parse_config (DropboxSourceConfig.rules)
        self.state_dir = state_dir
        self.max_bytes = settings.max_file_bytes
        self.folder = settings.folder_path
        self.move_to = settings.move_to_path

    def _open(self) -> Session:
        return Session(self.settings, self.state_dir)

    # ------------------------------------------------------------------ check

    def check(self) -> str:
        with self._open() as session:
            email = session.account_email()
            if self.folder and not session.is_folder(self.folder):
                raise PermanentSourceError(f"Dropbox folder {self.folder} does not exist "
                                           f"(or is a file); check [sources.dropbox] folder", SOURCE)
        return f"signed in as {email}; folder {self.folder or '/'} is there"

    # ------------------------------------------------------------------ fetch

    def fetch(self, context: FetchContext) -> FetchResult:
        with self._open() as session:
            return self._fetch(session, context)

    def _fetch(self, session: Session, context: FetchContext) -> FetchResult:
        result = FetchResult()
        cursor_may_advance = True
        listing = Listing(session, self.folder, self.settings.recursive)
        for files, cursor in listing.pages(self._saved_cursor(context.store)):
            errors_before = len(result.errors)
            done = self._stage_page(session, files, context, result)
            self._acknowledge(session, done, result)
            cursor_may_advance = cursor_may_advance and len(result.errors) == errors_before
            if cursor_may_advance:
                self._save_cursor(context.store, cursor)
        if not cursor_may_advance:
            log.warning("dropbox: the listing position was not advanced past the failed "
                        "file(s); they are tried again next run")
        return result

    def _stage_page(self, session: Session, files: list[RemoteFile], context: FetchContext,
                    result: FetchResult) -> list[RemoteFile]:
        """Stage the page's new files; return the files to acknowledge."""
        done = []
        for file in files:
            if self._excluded(file):
                continue
            try:
                outcome = self._take(session, file, context)
            except (SourceError, OSError) as exc:
                if isinstance(exc, CredentialsRefused):
                    raise
                message = f"dropbox: {file.path_display}: {exc}"
                log.error(message)
                result.errors.append(message)
                continue
            result.staged += outcome == STAGED
            result.skipped += outcome in (SKIPPED, VIDEO_LEFT)
            result.videos_left += outcome == VIDEO_LEFT
            if outcome in (STAGED, TAKEN):
                done.append(file)
        return done

    def _excluded(self, file: RemoteFile) -> bool:
        """Files moved into ``move_to`` were ingested already: never take them again."""
        return self.move_to is not None and is_within(file.path_lower, self.move_to)

    def _take(self, session: Session, file: RemoteFile, context: FetchContext) -> str:
        provenance = self._provenance(file)
        if context.already_taken(provenance):
            return TAKEN
        if not file.downloadable:     # a Google Doc, a Paper doc: no bytes to take
            log.info("dropbox: skipped %s: not a downloadable file", file.path_display)
            return SKIPPED
        named_video = PurePosixPath(file.name).suffix.lower() in VIDEO_SUFFIXES
        if named_video and not context.video.enabled:
            return VIDEO_LEFT
        limit = context.video.max_video_bytes if named_video else self.max_bytes
        if file.size > limit:
            log.info("dropbox: skipped %s: %.1f MiB is over max_file_mb = %g",
                     file.path_display, file.size / MIB, self.settings.max_file_mb)
            return SKIPPED
        try:
            return session.download(file, lambda stream: self._stage(stream, file, provenance,
                                                                     context))
        except Gone:
            log.info("dropbox: %s vanished before it could be downloaded", file.path_display)
            return GONE
        except DownloadRefused as exc:  # restricted or unsupported content
            log.warning("dropbox: skipped %s: Dropbox refuses the download (%s)",
                        file.path_display, exc)
            return SKIPPED

    def _stage(self, stream: VerifiedDownload, file: RemoteFile, provenance: Provenance,
               context: FetchContext) -> str:
        # The first bytes are not verified yet (only the whole file is): a file named like an
        # image is therefore always downloaded whole, verified and left to the gate, which
        # rejects it with a reason if it is no image; only a file neither named nor starting
        # like an image is skipped after its first chunk.
        named_image = PurePosixPath(file.name).suffix.lower() in SUFFIXES
        named_video = PurePosixPath(file.name).suffix.lower() in VIDEO_SUFFIXES
        video = named_video or sniff_video(stream.peek(VIDEO_SNIFF_BYTES)) is not None
        if video and not named_image and not context.video.enabled:
            return VIDEO_LEFT
        if not (named_image or video) and \
                sniff_image_format(stream.peek(SNIFF_BYTES)) is None:
            log.info("dropbox: skipped %s: not an image (judged by its name and first bytes)",
                     file.path_display)
            return SKIPPED
        try:
            context.stage(stream, provenance, max_bytes=max(
                self.max_bytes, context.video.max_video_bytes if video else 0))
        except TooLarge:
            log.info("dropbox: skipped %s: larger than max_file_mb = %g",
                     file.path_display, self.settings.max_file_mb)
            return SKIPPED
        return STAGED

    def _provenance(self, file: RemoteFile) -> Provenance:
        return Provenance(
            source=SOURCE, origin_id=f"{file.id}:{file.content_hash}", name=file.name,
            received=file.server_modified.isoformat(timespec="seconds"),
            sender=f"Dropbox {self.folder or '/'}",
            extra={"path": file.path_display, "rev": file.rev},
            date=(file.client_modified or file.server_modified).date().isoformat(),
            folder=relative_folder(file.path_display, self.folder))

    # ------------------------------------------------------------------ acknowledge

    def _acknowledge(self, session: Session, files: list[RemoteFile],
                     result: FetchResult) -> None:
        """Carry out ``after_ingest`` for staged files (never for skipped ones)."""
        if self.settings.after_ingest == "keep":
            return
        for file in files:
            try:
                if self.move_to is not None:
                    self._move(session, file)
                else:
                    self._delete(session, file)
            except SourceError as exc:
                if isinstance(exc, CredentialsRefused):
                    raise
                message = f"dropbox: {file.path_display}: {exc}"
                log.error(message)
                result.errors.append(message)

    def _move(self, session: Session, file: RemoteFile) -> None:
        relative = file.path_display[len(self.folder):] if self.folder else file.path_display
        try:
            moved_to = session.move(file, self.move_to + relative)
        except Gone:
            log.info("dropbox: %s is gone already; nothing to move", file.path_display)
            return
        log.info("dropbox: moved %s to %s", file.path_display, moved_to)

    def _delete(self, session: Session, file: RemoteFile) -> None:
        try:
            session.delete(file)
        except Gone:
            log.info("dropbox: %s is gone already; nothing to delete", file.path_display)
            return
        log.info("dropbox: deleted %s", file.path_display)

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


class Listing:
    """The pages of a listing, following ``has_more``, falling back once per run to a full
    listing when a cursor is refused."""

    def __init__(self, session: Session, folder: str, recursive: bool):
        self.session = session
        self.folder = folder
        self.recursive = recursive
        self.fell_back = False

    def pages(self, cursor: str | None):
        """Yield (files, cursor) for each page, starting after ``cursor`` if given."""
        page = self._continue(cursor) if cursor else self._full()
        yield page.files, page.cursor
        while page.has_more:
            page = self._continue(page.cursor)
            yield page.files, page.cursor

    def _full(self) -> Page:
        return self.session.list_folder(self.folder, self.recursive)

    def _continue(self, cursor: str) -> Page:
        page = self.session.list_continue(cursor)
        if page is not None:
            return page
        if self.fell_back:
            raise PermanentSourceError("Dropbox refused a fresh listing cursor too", SOURCE)
        self.fell_back = True
        log.warning("dropbox: the saved listing position is no longer valid (reset or "
                    "expired); listing %s in full, files taken before are not fetched again",
                    self.folder or "/")
        return self._full()
