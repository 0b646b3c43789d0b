"""Keep the store's ``videos`` rows in step with the videos in Pictures, incrementally.

The same rule as ``catalog.py`` for photos: a walk of Pictures by video suffix (hidden
folders and ``[resweep] exclude`` globs skipped, no symlinks followed), files whose size and
mtime are unchanged are not opened, new or changed ones are signed
(``video_signatures.sign_video``), vanished ones dropped. The gate and the resweep call it
beside ``catalog.refresh``; its counts add to theirs (``scanned``, ``signed``, ...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.catalog import CatalogStats, walk_library
from pipeline.video_formats import VIDEO_SUFFIXES
from pipeline.video_signatures import NotAVideo, VideoSignature, sign_video

log = logging.getLogger("frame-ingest")


def refresh(store, pictures: Path, *, exclude=(), max_pixels: int,
            stats: CatalogStats | None = None) -> CatalogStats:
    """Bring the ``videos`` rows in line with Pictures; counts go into ``stats``."""
    stats = stats if stats is not None else CatalogStats()
    known = store.known_videos()
    seen = set()
    for video in walk_library(pictures, exclude, VIDEO_SUFFIXES):
        relative, size, mtime_ns = video.path, video.size, video.mtime_ns
        stats.scanned += 1
        seen.add(relative)
        if known.get(relative) == (size, mtime_ns):
            stats.unchanged += 1
            continue
        signature, error = None, ""
        try:
            signature = sign_video(pictures / relative, max_pixels)
            stats.signed += 1
        except NotAVideo as exc:
            error = str(exc)
            stats.undecodable += 1
            log.warning("library video %s cannot be used: %s", relative, error)
        with store.transaction() as tx:
            store.put_video(tx, relative, size, mtime_ns, signature, error)
    vanished = [path for path in known if path not in seen]
    if vanished:
        with store.transaction() as tx:
            store.remove_videos(tx, vanished)
        stats.removed += len(vanished)
    return stats


def record(store, pictures: Path, relative: str, signature: VideoSignature) -> None:
    """Remember a video the gate just filed into Pictures (signed already)."""
    try:
        status = os.stat(pictures / relative)
    except OSError:
        return
    with store.transaction() as tx:
        store.put_video(tx, relative, status.st_size, status.st_mtime_ns, signature)


def forget(store, paths) -> None:
    with store.transaction() as tx:
        store.remove_videos(tx, list(paths))
