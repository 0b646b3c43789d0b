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

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

from pipeline.items import Provenance, StagedItem

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


class TooLarge(Exception):
    """Raised by ``Staging.stage`` when a stream exceeds its size limit; nothing is kept."""


class Staging:
    """The staging area under ``state_dir/staging``."""

    def __init__(self, root: Path):
        self.root = root
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
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        try:
            digest, size = _write_stream(stream, building / "data", max_bytes)
            if expected_sha256 and digest != expected_sha256:
                raise ValueError(f"sha256 mismatch: got {digest}, expected {expected_sha256}")
            meta = {"provenance": provenance.to_dict(), "sha256": digest, "size": size}
            _write_json(building / "meta.json", meta)
            fsync_directory(building)
            os.rename(building, final)
            fsync_directory(self.root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return StagedItem(item_id, final, provenance, digest, size)

    def load(self, directory: Path) -> StagedItem:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        return StagedItem(directory.name, directory, Provenance.from_dict(meta["provenance"]),
                          meta["sha256"], meta["size"])

    def items(self) -> Iterator[StagedItem]:
        """Every complete staged item, oldest first; leftovers of crashed writes are removed."""
        entries = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if (entry / "meta.json").exists():
                entries.append((entry.stat().st_mtime_ns, entry.name, entry))
            elif entry.is_dir():    # half deleted by a version that deleted in place
                shutil.rmtree(entry, ignore_errors=True)
        for _, _, directory in sorted(entries):
            yield self.load(directory)

    def count(self) -> int:
        return sum(1 for entry in self.root.iterdir() if (entry / "meta.json").exists())

    def discard(self, item: StagedItem) -> None:
        """Remove a staged item once the library holds its bytes (idempotent).

        The item is first renamed to its ``.tmp-`` name in one step and only then deleted:
        a kill in the middle of a recursive delete would otherwise leave a half-deleted
        directory that is neither an item nor a leftover ``items`` knows to clear.
        """
        if item.directory.exists():
            doomed = self.root / f".tmp-{item.item_id}"
            shutil.rmtree(doomed, ignore_errors=True)
            os.rename(item.directory, doomed)
            fsync_directory(self.root)
            shutil.rmtree(doomed)


def _write_stream(stream: BinaryIO, target: Path, max_bytes: int | None) -> tuple[str, int]:
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
        os.fsync(handle.fileno())
    return digest.hexdigest(), size


def _write_json(target: Path, data: dict) -> None:
    with open(target, "x", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)   # ASCII: names keep non-UTF-8 bytes
        handle.flush()
        os.fsync(handle.fileno())
