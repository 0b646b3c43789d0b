"""File moves into and out of Pictures, quarantine and rejected: durable, never overwriting.

Every move is: copy to a hidden temp name in the target folder, fsync, link it under the
final name (a hard link fails if the name exists: no overwrite, ever; on filesystems
without hard links, a rename after an existence check under our lock), fsync the folder,
then remove the source. A move is idempotent, so a journal entry can simply be replayed
after a crash: if the target already holds the same bytes, only the source is removed.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import unicodedata
from datetime import date
from pathlib import Path

from pipeline import formats
from pipeline.errors import LibraryError
from pipeline.text import readable_name
from pipeline.staging import fsync_directory

MAX_NAME_BYTES = 200
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", *(f"COM{n}" for n in range(1, 10)),
                     *(f"LPT{n}" for n in range(1, 10))}
EXTENSIONS, _ACCEPTED_SUFFIXES = formats.EXTENSIONS, formats.ACCEPTED_SUFFIXES


def sanitize_name(name: str, fallback: str = "photo") -> str:
    """A safe single file name: no path parts, no control characters, NFC, bounded length,
    no Windows-reserved stem, no leading/trailing spaces or trailing dot (the frame's
    library may be shared to Windows machines or live on a FAT card)."""
    name = re.split(r"[\\/]", readable_name(name or ""))[-1]   # drop any directory part
    # control/format characters go before normalising: removing one later could leave a
    # letter and its accent side by side, which is no longer NFC
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = unicodedata.normalize("NFC", name)
    name = _trimmed(re.sub(r'[<>:"|?*]', "_", name)) or fallback
    stem, suffix = os.path.splitext(name)
    if stem.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    if len(suffix.encode()) > 16:
        stem, suffix = stem + suffix, ""
    while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    name = unicodedata.normalize("NFC", (_trimmed(stem) if not suffix else stem) + suffix)
    return name if _trimmed(name) == name and name.strip(".") else fallback


def _trimmed(name: str) -> str:
    """Without leading/trailing white space and dots (Windows drops trailing ones)."""
    previous = None
    while previous != name:
        previous, name = name, name.strip().strip(".")
    return name


def with_extension(name: str, image_format: str) -> str:
    """Give the name the extension of its real format when it lacks a fitting one."""
    suffix = os.path.splitext(name)[1].lower()
    accepted = _ACCEPTED_SUFFIXES.get(image_format, {EXTENSIONS.get(image_format, suffix)})
    if image_format in EXTENSIONS and suffix not in accepted:
        return name + EXTENSIONS[image_format]
    return name


def unique_target(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name (2)``, ``name (3)``... if that is taken."""
    stem, suffix = os.path.splitext(name)
    candidate = directory / name
    number = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = directory / f"{stem} ({number}){suffix}"
        number += 1
    return candidate


def dated_folder(root: Path, day: date | None = None) -> Path:
    return root / (day or date.today()).isoformat()


def move_file(source: Path, target: Path) -> None:
    """Durably move ``source`` to ``target`` (which must not hold other bytes); idempotent."""
    copy_into_place(source, target)
    remove_source(source, target)


def copy_into_place(source: Path, target: Path, *, sync_folder: bool = True) -> None:
    """The first half of a move: ``target`` holds the bytes of ``source``, fsynced, under
    its final name (a no-op when it does already). ``sync_folder=False`` leaves the fsync
    of the target folder to the caller (``moves.PlanBatch``: one per folder per batch),
    which must make it before the source is removed."""
    try:
        _clear_leftover(target)
        if target.exists():
            if source.exists() and not _same_bytes(source, target):
                raise LibraryError(f"{target}: already exists with other content; not overwritten")
        else:
            _publish_copy(source, target, sync_folder)
    except OSError as exc:
        raise LibraryError(_describe(exc, target)) from exc


def remove_source(source: Path, target: Path, *, sync_folder: bool = True) -> None:
    """The second half of a move, once ``target`` is durable: ``source`` goes."""
    try:
        if source.exists():
            source.unlink()
            if sync_folder:
                fsync_directory(source.parent)
    except OSError as exc:
        raise LibraryError(_describe(exc, target)) from exc


def sync_directory(folder: Path) -> None:
    """``fsync_directory`` with the errors of a move."""
    try:
        fsync_directory(folder)
    except OSError as exc:
        raise LibraryError(_describe(exc, folder / ".")) from exc


def _clear_leftover(target: Path) -> None:
    """Remove the hidden copy a run killed mid-copy left beside ``target``. Looked for
    first: unlinking a name that is not there still fails on a read-only folder (EROFS),
    and a move already made must not need its target folder to be writable."""
    temporary = _temporary_for(target)
    if temporary.exists() or temporary.is_symlink():
        temporary.unlink()


def _publish_copy(source: Path, target: Path, sync_folder: bool = True) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_for(target)
    try:
        with open(source, "rb") as reader, open(temporary, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        _link_no_overwrite(temporary, target)
        if sync_folder:
            fsync_directory(target.parent)
    finally:
        if temporary.exists():
            temporary.unlink()


def _temporary_for(target: Path) -> Path:
    """The hidden name a copy is built under. The same for every run (moves happen under
    the instance lock), so a run killed mid-copy leaves a name the replay of its journal
    entry finds and clears, instead of a stray file nobody ever removes."""
    return target.parent / f".frame-ingest-tmp-{target.name}"[:250]


def _link_no_overwrite(temporary: Path, target: Path) -> None:
    try:
        os.link(temporary, target)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if target.exists():  # filesystems without hard links (FAT, some shares)
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from exc
        os.rename(temporary, target)


def _same_bytes(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as one, open(second, "rb") as two:
        while True:
            left, right = one.read(1024 * 1024), two.read(1024 * 1024)
            if left != right:
                return False
            if not left:
                return True


def _describe(exc: OSError, target: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"{target.parent}: no space left on device; nothing was lost, free space and rerun"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{target.parent}: not writable ({exc.strerror}); nothing was lost"
    return f"{target}: {exc.strerror or exc}"
