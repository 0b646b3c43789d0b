"""The local drop folder (``~/PhotoInbox``): the source that needs no account.

Every regular file in the inbox (recursively, hidden files and folders skipped, symlinks
not followed) is staged as it is, whatever it is: if it is not a usable photo the gate
rejects it with a reason, so nothing dropped here silently disappears.

Three rules keep what people and sync tools do to the inbox from losing a photo:

- **Settled.** A file modified in the last ``settle_seconds`` is probably still being
  copied in and waits. A file whose mtime says "recent" or lies in the future (a camera
  with a wrong clock) is also taken once *we* have seen it unchanged (size, mtime, ctime,
  inode) for ``settle_seconds``: the observations are kept in the store between runs.
- **The exact file.** A file is read through one descriptor; it leaves the inbox only if
  the name still points at that same file, unchanged since it was opened (device, inode,
  size, mtime, ctime). A sync tool that renamed a new version over it, or an application
  still writing it, gets its file left for the next run (a torn copy is not kept).
- **Each copy once.** The origin of a file is its path, size, mtime, inode and ctime: a
  run that crashed after staging finds the very same file and only removes it, while the
  same photo copied in again (``cp -p``: same name, size and mtime) is a new arrival that
  the gate files (promoted, or quarantined as a duplicate with a reason).

Durability is batched: up to ``BATCH_FILES`` files (or ``BATCH_BYTES``) are staged and made
durable together (``StagingBatch``: two file-system syncs per batch instead of four fsyncs
per file), and only then are the batch's files removed from the inbox.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat as stat_module
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from pipeline.config import FolderSourceConfig
from pipeline.errors import PermanentSourceError
from pipeline.items import Provenance
from pipeline.sources.base import FetchContext, FetchResult
from pipeline.staging import fsync_directory
from pipeline.video_formats import SNIFF_BYTES, sniff_video

log = logging.getLogger("frame-ingest")

BATCH_FILES = 100
BATCH_BYTES = 64 * 1024 * 1024
SETTLING_KEY = "settling"        # source_state: relative path -> what we saw, and when


_KINDS = {stat_module.S_IFIFO: "FIFO", stat_module.S_IFSOCK: "socket",
          stat_module.S_IFCHR: "device", stat_module.S_IFBLK: "device",
          stat_module.S_IFLNK: "symbolic link", stat_module.S_IFDIR: "folder"}


def sub_folder(relative: str) -> str:
    """The inbox sub-folder of a file ("" at the top), what a caption's {folder} shows."""
    parent = PurePosixPath(relative).parent.as_posix()
    return "" if parent == "." else parent


def identity(status: os.stat_result) -> tuple[int, ...]:
    """What tells one version of one file from any other."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns)


def changed_while_read(opened: os.stat_result, after: os.stat_result) -> bool:
    """Written to while we read it. A new ctime alone may just be an unlink or a rename
    over the name (the link count changes too): our copy is whole then, and kept."""
    if (after.st_size, after.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
        return True
    return after.st_ctime_ns != opened.st_ctime_ns and after.st_nlink == opened.st_nlink


@dataclass
class Taken:
    """A file staged in the current batch, waiting to be removed from the inbox."""

    path: Path
    relative: str
    opened: tuple[int, ...]     # identity() of the descriptor, after reading it whole


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
        seen_before = self._observations(context)
        seen_now: dict[str, list] = {}
        batch, taken, batch_bytes = context.batch(), [], 0
        others: list[str] = []
        for path, status in self._files(others):
            relative = path.relative_to(self.inbox).as_posix()
            if not self._settled(relative, status, seen_before, seen_now):
                result.waiting += 1
                continue
            outcome = self._take(path, relative, status, context, batch, result)
            if outcome is not None:
                taken.append(outcome)
                batch_bytes += status.st_size
            if len(taken) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                self._acknowledge(batch, taken, result)
                taken, batch_bytes = [], 0
        self._acknowledge(batch, taken, result)
        if seen_now != seen_before:
            with context.store.transaction() as tx:
                context.store.set_state(tx, self.name, SETTLING_KEY, json.dumps(seen_now))
        if result.waiting:
            log.info("folder: %d file(s) still being written, left for the next run",
                     result.waiting)
        if others:
            result.skipped += len(others)
            shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more"
                                               if len(others) > 10 else "")
            log.info("folder: not a regular file, left in place: %s", shown)
        return result

    def _settled(self, relative: str, status: os.stat_result, seen_before: dict,
                 seen_now: dict) -> bool:
        """Old enough by its mtime, or unchanged for settle_seconds as we saw it."""
        now = time.time()
        if status.st_mtime <= now - self.settings.settle_seconds:
            return True
        mark = list(identity(status)[1:])
        earlier = seen_before.get(relative)
        first_seen = earlier[-1] if earlier and earlier[:-1] == mark else now
        if first_seen > now:        # our clock went back: start watching again
            first_seen = now
        if earlier and earlier[:-1] == mark and now - first_seen >= self.settings.settle_seconds:
            return True
        seen_now[relative] = mark + [first_seen]
        return False

    def _observations(self, context: FetchContext) -> dict:
        try:
            return json.loads(context.store.get_state(self.name, SETTLING_KEY) or "{}")
        except ValueError:
            return {}

    def _take(self, path: Path, relative: str, status: os.stat_result,
              context: FetchContext, batch, result: FetchResult) -> Taken | None:
        """Stage one file through one descriptor; the Taken to acknowledge, or None."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None                 # taken away since the scan: nothing to do
        except OSError as exc:
            if exc.errno == errno.ELOOP:    # a symlink put in its place since the scan
                return None
            self._error(result, relative, exc)
            return None
        with os.fdopen(descriptor, "rb") as stream:
            try:
                opened = os.fstat(descriptor)
                if not stat_module.S_ISREG(opened.st_mode) or \
                        identity(opened) != identity(status):
                    result.waiting += 1     # replaced between the scan and the open
                    return None
                if not context.video.enabled and \
                        sniff_video(os.pread(descriptor, SNIFF_BYTES, 0)):
                    result.videos_left += 1     # videos are switched off: it stays
                    return None
                provenance = Provenance(
                    source=self.name, origin_id=":".join(
                        [relative, *map(str, identity(opened)[2:]), str(opened.st_ino)]),
                    name=path.name, sender=str(self.inbox),
                    received=datetime.fromtimestamp(opened.st_mtime, timezone.utc)
                    .isoformat(timespec="seconds"),
                    date=datetime.fromtimestamp(opened.st_mtime).date().isoformat(),
                    folder=sub_folder(relative))
                staged = None
                if not context.already_taken(provenance):
                    staged = batch.stage(stream, provenance)
                    log.info("staged %s from %s", provenance.name, self.name)
                    result.staged += 1
                after = os.fstat(descriptor)
            except OSError as exc:
                self._error(result, relative, exc)
                return None
        if changed_while_read(opened, after):
            log.info("folder: %s changed while it was read; left for the next run",
                     relative)
            if staged is not None:
                batch.drop(staged)
                result.staged -= 1
            result.waiting += 1
            return None
        return Taken(path, relative, identity(after))

    def _acknowledge(self, batch, taken: list[Taken], result: FetchResult) -> None:
        """Make the batch durable, then remove from the inbox exactly the files staged."""
        batch.commit()
        folders = set()
        for item in taken:
            try:
                now = os.stat(item.path, follow_symlinks=False)
                if identity(now) != item.opened:
                    log.info("folder: %s was replaced while it was staged; the new version "
                             "is left for the next run", item.relative)
                    continue
                os.unlink(item.path)
                folders.add(item.path.parent)
            except FileNotFoundError:
                continue            # moved away by someone else; our copy is staged
            except OSError as exc:
                self._error(result, item.relative, exc)
        for folder in sorted(folders):
            try:
                fsync_directory(folder)
            except OSError as exc:
                self._error(result, str(folder), exc)

    def _error(self, result: FetchResult, relative: str, exc: OSError) -> None:
        message = f"folder: {relative}: {exc.strerror or exc}"
        log.error(message)
        result.errors.append(message)

    def _files(self, others: list[str]):
        """(path, lstat) of every regular file; what else is there goes into ``others``
        as "name (kind)": FIFOs, sockets, devices and symlinks are never opened."""
        walker = os.walk(self.inbox) if self.settings.recursive else \
            [(str(self.inbox), [], [entry.name for entry in os.scandir(self.inbox)])]
        for directory, folders, files in walker:
            folders[:] = sorted(folder for folder in folders if not folder.startswith("."))
            for folder in folders:
                if os.path.islink(os.path.join(directory, folder)):
                    others.append(self._described(Path(directory) / folder, "symbolic link"))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                try:
                    status = os.stat(path, follow_symlinks=False)
                except OSError:
                    continue            # gone since the folder was listed
                if stat_module.S_ISREG(status.st_mode):
                    yield path, status
                else:
                    others.append(self._described(path, _KINDS.get(
                        stat_module.S_IFMT(status.st_mode), "special file")))

    def _described(self, path: Path, kind: str) -> str:
        return f"{path.relative_to(self.inbox).as_posix()} ({kind})"
