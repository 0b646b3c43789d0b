"""Keep the signature store in step with the Pictures folder, incrementally.

A walk of Pictures (no symlinks followed, hidden folders and ``exclude`` globs skipped)
is compared with the store's (size, mtime_ns) of each path: unchanged files are not opened
at all, so an unchanged library costs one directory walk and one query; new and changed
files are signed (in a process pool when there are many), vanished ones are dropped.
Both the gate (before it decides) and the nightly resweep use this.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from pipeline.formats import SUFFIXES
from pipeline.signatures import NotAnImage, Signature, one_decoder_thread, sign_bytes, sign_file

log = logging.getLogger("frame-ingest")

IMAGE_SUFFIXES = SUFFIXES      # the formats the gate files (pipeline/formats.py)
BATCH = 200
POOL_THRESHOLD = 16     # fewer files than this are signed in-process
WINDOW_PER_WORKER = 64  # jobs in flight per worker: bounds the results held in memory
CHUNK = 16              # jobs per message to a worker: 4 cost the parent 0.2 s more CPU per
                        # 1,500 photos in pipe and thread wake-ups (docs/performance.md)
WHOLE_READ = 32 * 1024 * 1024  # files up to this size are read whole, then signed


@dataclass
class CatalogStats:
    scanned: int = 0
    signed: int = 0
    unchanged: int = 0
    removed: int = 0
    undecodable: int = 0


@dataclass(frozen=True)
class LibraryFile:
    path: str           # relative to Pictures, '/'-separated
    size: int
    mtime_ns: int


def walk_library(pictures: Path, exclude: list[str] = (),
                 suffixes=IMAGE_SUFFIXES) -> Iterator[LibraryFile]:
    """Every image file under Pictures (or, ``suffixes``, every video: video_catalog), by
    suffix; symlinks are not followed."""
    for directory, folders, files in os.walk(pictures, followlinks=False):
        relative_dir = os.path.relpath(directory, pictures)
        folders[:] = sorted(folder for folder in folders if not folder.startswith(".")
                            and not _excluded(_join(relative_dir, folder), exclude))
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in suffixes:
                continue
            relative = _join(relative_dir, name)
            if _excluded(relative, exclude):
                continue
            try:
                status = os.stat(os.path.join(directory, name), follow_symlinks=False)
            except OSError:
                continue
            if os.path.stat.S_ISREG(status.st_mode):
                yield LibraryFile(relative, status.st_size, status.st_mtime_ns)


def _join(relative_dir: str, name: str) -> str:
    return name if relative_dir == "." else f"{relative_dir}/{name}".replace(os.sep, "/")


def _excluded(relative: str, patterns) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern)
               for pattern in patterns)


def sign_library_file(job: tuple[str, str, int, int, int]):
    """Worker: (pictures, relative path, size, mtime_ns, max_pixels) -> (file, sig, error).

    A file up to WHOLE_READ bytes (every photo; a 12 MP phone JPEG is 3-5 MB) is read in
    one call and signed from memory: one C-level SHA-256 and a decoder reading from a
    buffer cost 0.5 ms less per photo than streaming it through ``sign_file``'s hashing
    reader (measured, docs/performance.md), for the same signature. Larger files are
    streamed, so a worker never holds more than that."""
    pictures, relative, size, mtime_ns, max_pixels = job
    item = LibraryFile(relative, size, mtime_ns)
    path = Path(pictures) / relative
    try:
        if size > WHOLE_READ:
            return item, sign_file(path, max_pixels), ""
        try:
            with open(path, "rb") as handle:
                # the size the walk saw, plus one byte to notice growth: asking for
                # WHOLE_READ made Python map (and fault in) a 32 MB buffer for every photo
                data = handle.read(size + 1)
        except OSError as exc:
            raise NotAnImage(f"cannot read file: {exc.strerror or exc}") from exc
        if len(data) > size:  # it grew since the walk: stream it, however large it is now
            return item, sign_file(path, max_pixels), ""
        return item, sign_bytes(data, max_pixels), ""
    except NotAnImage as exc:
        return item, None, str(exc)


def signed_files(jobs: list, workers: int) -> Iterator[tuple[LibraryFile, Signature | None, str]]:
    """Sign ``jobs`` in a pool of ``workers`` processes (in-process for a few; 0 = all cores).

    ``Pool.imap_unordered`` queues every task at once and its result thread keeps every
    finished result until the caller takes it, so a slow consumer (SQLite on an SD card)
    would let up to the whole library's signatures pile up. Jobs therefore go to the pool
    in windows of WINDOW_PER_WORKER per worker, the next window queued before the current
    one is drained (so no worker idles at a window's end): at most two windows of results
    (about 1.5 kB each) are ever held, whatever the library size.
    """
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) < POOL_THRESHOLD:
        yield from map(sign_library_file, jobs)
        return
    window = workers * WINDOW_PER_WORKER
    with _pool(workers) as pool:
        draining = None
        for start in range(0, len(jobs), window):
            queued = pool.imap_unordered(sign_library_file, jobs[start:start + window],
                                         chunksize=CHUNK)
            if draining is not None:
                yield from draining
            draining = queued
        yield from draining


@contextlib.contextmanager
def _pool(workers: int):
    """A pool of signing workers forked from this process where the platform can fork.

    Forked workers start with everything this process has imported (numpy, Pillow, the
    pipeline): a pool is ready in milliseconds. A forkserver or spawn pool first starts
    a new interpreter that imports all of it again, then a resource tracker: 0.3-0.5 s
    on a quiet 2-core machine and 2-3 s on a busy one before the first photo is signed
    (measured, docs/performance.md), which is most of what a cold resweep of 1,000 photos
    costs beyond decoding them. Forking is safe here: the command runs no threads of its
    own when the pool starts, and the workers never touch the parent's SQLite connection
    (they end with os._exit, so it is not even closed twice). ``gc.freeze`` keeps the
    parent's objects (the store's known files, the job list) out of the workers' garbage
    collections, so those pages stay shared instead of being copied into every worker.
    """
    context = get_context("fork" if sys.platform.startswith("linux")
                          else "forkserver" if os.name == "posix" else "spawn")
    gc.freeze()
    try:
        pool = context.Pool(workers, initializer=_worker_start)
    finally:
        gc.unfreeze()
    try:
        yield pool
    except BaseException:       # the command stops (a signal, an error): workers go at once
        pool.terminate()
        raise
    else:                       # every job done: workers take their end marker and exit
        pool.close()
    finally:
        pool.join()


def _worker_start() -> None:
    """A signing worker: the signals the command handles are the parent's business.

    A forked worker inherits the command's SIGTERM handler (it raises ``Stopped``), which
    made ``Pool.terminate`` hang for good when it landed in a worker waiting for the job
    queue's lock (seen once in a few dozen cold resweeps: the parent joined a worker that
    never ended). SIGTERM kills a worker outright; a Ctrl-C on the terminal reaches the
    parent, which terminates the pool."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_decoder_thread()


def refresh(store, pictures: Path, *, exclude: list[str] = (), workers: int = 1,
            max_pixels: int,
            progress: Callable[[int, int], None] | None = None,
            vanishing: Callable | None = None) -> CatalogStats:
    """Bring the store's rows in line with the files under ``pictures``.

    ``vanishing(tx, paths)`` is told, in the transaction that drops their rows, which
    library files are gone (``removals.noticer``: a photo removed from the frame is
    remembered). Afterwards, removals whose bytes are in Pictures again are forgotten: a
    photo moved or renamed inside Pictures was not removed."""
    stats = CatalogStats()
    known = store.known_files()
    seen: set[str] = set()
    jobs = []
    for item in walk_library(pictures, exclude):
        stats.scanned += 1
        seen.add(item.path)
        if known.get(item.path) == (item.size, item.mtime_ns):
            stats.unchanged += 1
        else:
            jobs.append((str(pictures), item.path, item.size, item.mtime_ns, max_pixels))
    vanished = [path for path in known if path not in seen]
    if vanished:
        with store.transaction() as tx:
            if vanishing is not None:
                vanishing(tx, vanished)
            store.remove_files(tx, vanished)
        stats.removed = len(vanished)
    _sign_jobs(store, jobs, workers, stats, progress)
    if store.removed_in_library():
        with store.transaction() as tx:
            store.forget_removed_in_library(tx)
    return stats


def _sign_jobs(store, jobs, workers, stats: CatalogStats, progress) -> None:
    pending = []
    for done, (item, signature, error) in enumerate(signed_files(jobs, workers), start=1):
        pending.append((item, signature, error))
        if error:
            stats.undecodable += 1
            log.warning("library file %s cannot be decoded: %s", item.path, error)
        else:
            stats.signed += 1
        if len(pending) >= BATCH or done == len(jobs):
            with store.transaction() as tx:
                for entry, entry_signature, entry_error in pending:
                    store.put_file(tx, entry.path, entry.size, entry.mtime_ns, entry_signature,
                                   entry_error)
            pending.clear()
        if progress:
            progress(done, len(jobs))
