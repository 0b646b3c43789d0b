"""Durable writes into the staging area.

A staged item is a directory ``staging/<item_id>/`` holding ``data`` (the bytes exactly as
fetched) and ``meta.json`` (its provenance). It is built under ``staging/.tmp-<item_id>/``,
every file fsynced, and then renamed into place in one step: an item either exists whole or
not at all, whatever moment a crash picks. Only after ``stage`` returns may a source
acknowledge (remove from the inbox, flag the mail, advance the Dropbox cursor).

The item id is derived from the origin key, so fetching the same origin twice (a crash
between staging and acknowledging) finds the item already there instead of staging it again.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from pipeline.items import Provenance, StagedItem

log = logging.getLogger("frame-ingest")

CHUNK = 1024 * 1024


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def item_id_for(origin_key: str) -> str:
    return hashlib.sha256(origin_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class DamagedItem(Exception):
    """Raised by ``Staging.load`` when an item's meta.json is empty, garbled or incomplete."""


class TooLarge(Exception):
    """Raised by ``Staging.stage`` when a stream exceeds its size limit; nothing is kept."""


class Staging:
    """The staging area under ``state_dir/staging``."""

    def __init__(self, root: Path):
        self.root = root
        self.damaged = root.parent / "staging-damaged"
        self.root.mkdir(parents=True, exist_ok=True)

    def contains(self, provenance: Provenance) -> bool:
        return (self.root / item_id_for(provenance.origin_key) / "meta.json").exists()

    def stage(self, stream: BinaryIO, provenance: Provenance, *,
              max_bytes: int | None = None, expected_sha256: str | None = None) -> StagedItem:
        """Copy ``stream`` into a new staged item and make it durable; return it.

        If the same origin is already staged, the existing item is returned untouched.
        Raises ``TooLarge`` past ``max_bytes`` and ``ValueError`` on a hash mismatch; in both
        cases nothing is left behind.
        """
        item_id = item_id_for(provenance.origin_key)
        final = self.root / item_id
        if (final / "meta.json").exists():
            return self.load(final)
        building = self.root / f".tmp-{item_id}"
        item = self._build(building, final, stream, provenance, max_bytes, expected_sha256,
                           durable=True)
        try:
            fsync_directory(building)
            os.rename(building, final)
            fsync_directory(self.root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return item

    def batch(self) -> "StagingBatch":
        """A batch of items made durable together (see ``StagingBatch``)."""
        return StagingBatch(self)

    def _build(self, building: Path, final: Path, stream: BinaryIO, provenance: Provenance,
               max_bytes: int | None, expected_sha256: str | None, durable: bool) -> StagedItem:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        try:
            digest, size = _write_stream(stream, building / "data", max_bytes, durable)
            if expected_sha256 and digest != expected_sha256:
                raise ValueError(f"sha256 mismatch: got {digest}, expected {expected_sha256}")
            meta = {"provenance": provenance.to_dict(), "sha256": digest, "size": size}
            _write_json(building / "meta.json", meta, durable)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return StagedItem(final.name, final, provenance, digest, size)

    def load(self, directory: Path) -> StagedItem:
        """The item in ``directory``; raises ``DamagedItem`` when its meta.json is unreadable."""
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            return StagedItem(directory.name, directory,
                              Provenance.from_dict(meta["provenance"]), meta["sha256"],
                              meta["size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
                raise      # a read error of the disk is not damage to the item
            raise DamagedItem(f"meta.json unreadable ({type(exc).__name__}: {exc})") from exc

    def items(self) -> Iterator[StagedItem]:
        """Every complete staged item, oldest first; leftovers of crashed writes are removed
        and damaged items set aside (``set_aside``)."""
        entries = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if (entry / "meta.json").exists():
                entries.append((entry.stat().st_mtime_ns, entry.name, entry))
            elif (entry / "data").exists():     # its bytes, but not what they are
                self.set_aside(entry, "meta.json missing")
            elif entry.is_dir():    # half deleted by a version that deleted in place
                shutil.rmtree(entry, ignore_errors=True)
        for _, _, directory in sorted(entries):
            try:
                item = self.load(directory)
            except DamagedItem as exc:
                self.set_aside(directory, str(exc))
                continue
            yield item

    def set_aside(self, directory: Path, reason: str) -> Path:
        """Move a damaged item, bytes and all, to ``<state_dir>/staging-damaged/`` with a
        ``reason.txt``; the run goes on without it and a person can look at it there."""
        target = self.damaged / directory.name
        self.damaged.mkdir(exist_ok=True)
        if target.exists():
            target = self.damaged / f"{directory.name}-{time.time_ns()}"
        (directory / "reason.txt").write_text(reason + "\n", encoding="utf-8")
        os.rename(directory, target)
        fsync_directory(self.root)
        log.warning("staging: damaged item set aside in %s: %s", target, reason)
        return target

    def count(self) -> int:
        return sum(1 for entry in self.root.iterdir() if (entry / "meta.json").exists())

    def count_damaged(self) -> int:
        """How many damaged items were set aside (and are still there for a person)."""
        if not self.damaged.is_dir():
            return 0
        return sum(1 for entry in self.damaged.iterdir() if entry.is_dir())

    def discard(self, item: StagedItem) -> None:
        """Remove a staged item once the library holds its bytes (idempotent).

        The item is first renamed to its ``.tmp-`` name in one step and only then deleted:
        a kill in the middle of a recursive delete would otherwise leave a half-deleted
        directory that is neither an item nor a leftover ``items`` knows to clear. The
        rename is not fsynced: the store has already recorded the origin, so an item that a
        power cut brings back (whole or half deleted) is recognised as filed and cleared.
        """
        self.discard_id(item.item_id)

    def discard_id(self, item_id: str) -> None:
        """``discard`` by id alone: for an item whose meta.json is damaged or gone, once a
        journaled plan has filed what it held (the plan, not meta.json, says what that was)."""
        directory = self.root / item_id
        if directory.exists():
            doomed = self.root / f".tmp-{item_id}"
            shutil.rmtree(doomed, ignore_errors=True)
            os.rename(directory, doomed)
            shutil.rmtree(doomed)


class StagingBatch:
    """Items staged together and made durable with two file-system syncs for the batch.

    A big drop of small files would otherwise cost four fsyncs per item in staging alone.
    ``stage`` writes an item under its ``.tmp-`` name without any fsync; ``commit`` makes
    every byte and name of the batch durable (``sync_filesystem``), renames each item into
    place, and syncs again. Only after ``commit`` returns may the source acknowledge the
    batch's origins; until then the items are leftovers that ``Staging.items`` clears, so an
    item still exists whole or not at all, whatever moment a crash (or power cut) picks.
    """

    def __init__(self, staging: Staging):
        self.staging = staging
        self.pending: list[StagedItem] = []

    def __len__(self) -> int:
        return len(self.pending)

    def stage(self, stream: BinaryIO, provenance: Provenance, *,
              max_bytes: int | None = None, expected_sha256: str | None = None) -> StagedItem:
        """Like ``Staging.stage``, but durable (and in place) only after ``commit``."""
        item_id = item_id_for(provenance.origin_key)
        final = self.staging.root / item_id
        if (final / "meta.json").exists():
            return self.staging.load(final)
        item = self.staging._build(self.staging.root / f".tmp-{item_id}", final, stream,
                                   provenance, max_bytes, expected_sha256, durable=False)
        self.pending.append(item)
        return item

    def commit(self) -> None:
        if not self.pending:
            return
        try:
            sync_filesystem(self.staging.root)
            for item in self.pending:
                os.rename(self.staging.root / f".tmp-{item.item_id}", item.directory)
            sync_filesystem(self.staging.root)
        except BaseException:
            self.abandon()
            raise
        self.pending.clear()

    def drop(self, item: StagedItem) -> None:
        """Forget one item of the batch before ``commit`` (its source changed under it)."""
        self.pending.remove(item)
        shutil.rmtree(self.staging.root / f".tmp-{item.item_id}", ignore_errors=True)

    def abandon(self) -> None:
        """Drop the items not committed yet (their origins were not acknowledged)."""
        for item in self.pending:
            shutil.rmtree(self.staging.root / f".tmp-{item.item_id}", ignore_errors=True)
        self.pending.clear()


def _load_syncfs():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):   # not Linux: sync(2) below
        return None


_syncfs = _load_syncfs()


def sync_filesystem(path: Path) -> None:
    """Make every write to the file system holding ``path`` durable (syncfs(2)): one call
    for a whole batch instead of an fsync per file and folder."""
    if _syncfs is None:
        os.sync()
        return
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(descriptor) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))
    finally:
        os.close(descriptor)


def _write_stream(stream: BinaryIO, target: Path, max_bytes: int | None,
                  durable: bool = True) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as handle:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise TooLarge(f"larger than {max_bytes} bytes")
            digest.update(chunk)
            handle.write(chunk)
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    return digest.hexdigest(), size


def _write_json(target: Path, data: dict, durable: bool = True) -> None:
    with open(target, "x", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)   # ASCII: names keep non-UTF-8 bytes
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
