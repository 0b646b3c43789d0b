"""The local drop folder (``~/PhotoInbox``): the source that needs no account.

Every regular file in the inbox (recursively, hidden files and folders skipped, symlinks
not followed) is staged as it is, whatever it is: if it is not a usable photo the gate
rejects it with a reason, so nothing dropped here silently disappears. A file modified in
the last ``settle_seconds`` is probably still being copied in and waits for the next run.
A file leaves the inbox only after its bytes are durably staged.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline.config import FolderSourceConfig
from pipeline.errors import PermanentSourceError
from pipeline.items import Provenance
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.staging import fsync_directory

log = logging.getLogger("frame-ingest")


class FolderSource:
    name = "folder"

    def __init__(self, settings: FolderSourceConfig):
        self.settings = settings
        self.inbox = settings.path

    def check(self) -> str:
        self._ensure_inbox()
        if not os.access(self.inbox, os.R_OK | os.W_OK | os.X_OK):
            raise PermanentSourceError(f"{self.inbox}: not readable and writable", self.name)
        return f"drop folder {self.inbox} is ready"

    def _ensure_inbox(self) -> None:
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermanentSourceError(f"cannot create drop folder {self.inbox}: "
                                       f"{exc.strerror}", self.name) from exc

    def fetch(self, context: FetchContext) -> FetchResult:
        self._ensure_inbox()
        result = FetchResult()
        settled_before = time.time() - self.settings.settle_seconds
        for path, status in self._files():
            if status.st_mtime > settled_before:
                result.waiting += 1
                continue
            relative = path.relative_to(self.inbox).as_posix()
            provenance = Provenance(
                source=self.name, origin_id=f"{relative}:{status.st_size}:{status.st_mtime_ns}",
                name=path.name, sender=str(self.inbox),
                received=datetime.fromtimestamp(status.st_mtime, timezone.utc)
                .isoformat(timespec="seconds"))
            try:
                if not context.already_taken(provenance):
                    with open(path, "rb") as stream:
                        context.stage(stream, provenance)
                    result.staged += 1
                path.unlink()
                fsync_directory(path.parent)
            except OSError as exc:
                message = f"folder: {relative}: {exc.strerror or exc}"
                log.error(message)
                result.errors.append(message)
        if result.waiting:
            log.info("folder: %d file(s) still being written, left for the next run",
                     result.waiting)
        return result

    def _files(self):
        walker = os.walk(self.inbox) if self.settings.recursive else \
            [(str(self.inbox), [], [entry.name for entry in os.scandir(self.inbox)])]
        for directory, folders, files in walker:
            folders[:] = sorted(folder for folder in folders if not folder.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                try:
                    status = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue
                if os.path.stat.S_ISREG(status.st_mode):
                    yield path, status
