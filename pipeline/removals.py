"""Photos removed from the frame stay removed.

A person removes a photo from Pictures by deleting it, by picframe's "delete" (which moves
it into ``~/DeletedPictures``), or with ``frame-ingest remove`` (``remove_from_frame``, also
what a web page calls). Each removal is remembered in the store's ``removed`` table with
the signature the photo had in Pictures, so when the same photo arrives again from any
source, by any ``[dedupe] method`` (the one matcher of ``pipeline/matching.py``), the gate
quarantines it: "removed from the frame on <date>". ``quarantine restore`` brings such a
photo back and forgets the removal; ``undo_removal`` moves a removed photo back.

What is not a removal:

- a photo moved or renamed inside Pictures: the library scan (``catalog.refresh``) sees the
  same bytes elsewhere and forgets the removal it noticed a moment before;
- the product's own moves (resweep, replace, quarantine): their plans drop the library row
  themselves, so the scan never sees those files vanish;
- a file an unfinished plan of ours moves out (a crashed resweep, read by a dry run);
- a file that vanished from the scan but is still on disk (a new ``[resweep] exclude``),
  and a whole library vanishing at once (Pictures not mounted): not remembered, one warning.

Removals are noticed by the next ``run``, ``gate`` or ``resweep`` (the scan at their start).
``[library] remember_removed = false`` turns all of it off: a re-sent photo is promoted.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline import moves
from pipeline.config import Config, DedupeConfig
from pipeline.errors import PipelineError
from pipeline.index import SignatureIndex
from pipeline.items import Decision, Verdict
from pipeline.library import unique_target
from pipeline.matching import best_match
from pipeline.moves import LibraryRow, Move, Place, Plan
from pipeline.signatures import NotAnImage, Signature, sign_file, to_unsigned64
from pipeline.staging import Staging

log = logging.getLogger("frame-ingest")


# --- noticing a removal (the library scan) -------------------------------------------


def noticer(config: Config, store):
    """The ``vanishing`` callback of ``catalog.refresh``: remembers library files that
    are gone from Pictures (None when ``remember_removed`` is off)."""
    if not config.library.remember_removed:
        return None
    pictures = config.library.pictures

    def notice(tx, vanished: list[str]) -> None:
        moving = {source[1] for _, plan in store.journal() for source, _ in plan["moves"]
                  if source[0] == "pictures"}   # an unfinished plan of ours moves them
        gone = [path for path in vanished
                if not (pictures / path).exists() and path not in moving]
        if not gone:
            return
        if not pictures.is_dir() or (len(gone) > 1 and len(gone) >= store.count_files()):
            log.warning("every photo in %s is gone at once (not mounted?); not remembered "
                        "as removed from the frame", pictures)
            return
        for path in gone:
            store.remember_removed(tx, path, kept_copy(config, store, path))
            log.info("%s was removed from the frame; a copy sent again will be quarantined",
                     path)
    return notice


def kept_copy(config: Config, store, path: str) -> str | None:
    """Where the removed library file ``path`` now is in ``removed_folder`` (picframe's
    delete moves it there under its name), when the bytes there are the same."""
    row = store.file(path)
    candidate = config.library.removed_folder / Path(path).name
    try:
        if row is None or not candidate.is_file() or candidate.stat().st_size != row["size"]:
            return None
        with open(candidate, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
    return candidate.name if digest == row["sha256"] else None


# --- the gate: is a newcomer a photo that was removed? -------------------------------


@dataclass
class RemovedPhotos:
    """The removed photos' signatures as an index the matcher searches like the library;
    it asks this object for thumbnails (``thumbs``), which come from the removed table."""

    index: SignatureIndex           # keyed by removal id (two removals may share a path)
    paths: dict[int, str]           # index position -> where it was in Pictures
    removed_at: dict[int, str]      # index position -> when it was removed
    store: object

    @classmethod
    def load(cls, store) -> "RemovedPhotos":
        index, paths, removed_at = SignatureIndex(), {}, {}
        for row in store.removed_signatures():
            paths[index.count], removed_at[index.count] = row["path"], row["removed_at"]
            index.add(row["id"], str(row["id"]), Signature(
                sha256=row["sha256"], size=row["size"] or 0, format=row["format"] or "",
                width=row["width"] or 0, height=row["height"] or 0,
                mean=(row["mean_r"], row["mean_g"], row["mean_b"]),
                rms=(row["rms_r"], row["rms_g"], row["rms_b"]),
                phash=to_unsigned64(row["phash"] or 0),
                thumb=row["thumb"] or b""))   # its coarse grid is the search key
        return cls(index, paths, removed_at, store)

    def thumbs(self, ids: list[int]) -> dict[int, bytes]:
        return self.store.removed_thumbs(ids)

    def decide(self, signature: Signature, settings: DedupeConfig,
               excluded: set[str] = frozenset()) -> Decision | None:
        """A quarantine decision when ``signature`` is a removed photo by the configured
        method (the gate passes bytes filed before in another form, such as the original
        of a converted JPEG, with the SHA-256 of what was filed), else None."""
        if len(self.index) == 0:
            return None
        match = best_match(signature, self.index, self, settings, excluded)
        return None if match is None else \
            self._decision(match.position, match.method, match.distance)

    def _decision(self, position: int, method: str, distance: float) -> Decision:
        path = self.paths[position]
        when = self.removed_at[position][:10]
        return Decision(Verdict.DUPLICATE,
                        reason=f"removed from the frame on {when} (it was {path}); "
                               "`quarantine restore` puts it back",
                        matched_path=path, matched_sha256=self.index.sha256[position],
                        method=method, distance=distance)


# --- removing and undoing (frame-ingest remove, web pages) ---------------------------


def remove_from_frame(settings: Config, store, path) -> Path:
    """Move the Pictures photo ``path`` (absolute, or relative to Pictures) into
    ``removed_folder`` and remember it as removed; return its new path. The caller holds
    the instance lock."""
    moves.replay(store, settings, Staging(settings.staging_dir))
    relative = library_path(settings, path)
    source = settings.library.pictures / relative
    row, status = store.file(relative), source.stat()
    if row is None or row["sha256"] is None or \
            (row["size"], row["mtime_ns"]) != (status.st_size, status.st_mtime_ns):
        _sign_into_store(settings, store, relative)   # new or changed since the last scan
    folder = settings.library.removed_folder
    folder.mkdir(parents=True, exist_ok=True)
    target = unique_target(folder, source.name).relative_to(folder).as_posix()
    plan = Plan("remove", relative,
                moves=(Move(Place("pictures", relative), Place("removed", target)),),
                remove_files=(relative,), remember_removed=((relative, target),))
    moves.carry_out(store, settings, plan)
    log.info("removed %s from the frame (now in %s)", relative, folder / target)
    return folder / target


def undo_removal(settings: Config, store, removal_id: int) -> Path:
    """Move removed photo ``removal_id`` (``list_removed``) back into Pictures where it was
    (or beside it under a free name) and forget the removal; return its path."""
    moves.replay(store, settings, Staging(settings.staging_dir))
    row = store.removed_row(int(removal_id))
    if row is None:
        raise PipelineError(f"{removal_id}: no such removed photo; see "
                            "`frame-ingest removed list`")
    kept = settings.library.removed_folder / row["kept"] if row["kept"] else None
    if kept is None or not kept.is_file():
        raise PipelineError(f"{row['path']}: the removed file is not in "
                            f"{settings.library.removed_folder}; copy it back into Pictures "
                            "by hand (the removal is then forgotten)")
    original = settings.library.pictures / row["path"]
    original.parent.mkdir(parents=True, exist_ok=True)
    relative = unique_target(original.parent, original.name) \
        .relative_to(settings.library.pictures).as_posix()
    try:
        signature = sign_file(kept, settings.gate.max_pixels)
    except NotAnImage as exc:
        raise PipelineError(f"{kept}: cannot be put back: {exc}") from None
    plan = Plan("unremove", row["path"],
                moves=(Move(Place("removed", row["kept"]), Place("pictures", relative)),),
                add_files=(LibraryRow(relative, signature),),
                forget_removed=(row["sha256"],))
    moves.carry_out(store, settings, plan)
    log.info("put %s back into Pictures as %s", row["path"], relative)
    return settings.library.pictures / relative


def list_removed(store, limit: int = 100, offset: int = 0) -> list[dict]:
    """Removed photos, newest first: id, path (where it was), kept (its path in
    removed_folder, or None when it was deleted), size, width, height, format, sha256,
    removed_at."""
    return [dict(row) for row in store.removed_rows(limit, offset)]


def library_path(settings: Config, path) -> str:
    """``path`` (absolute or relative to Pictures) as the library's '/'-path, checked."""
    pictures = settings.library.pictures
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = pictures / candidate
    try:
        relative = candidate.absolute().relative_to(pictures.absolute()).as_posix()
    except ValueError:
        raise PipelineError(f"{path}: not in Pictures ({pictures})") from None
    if not (pictures / relative).is_file():
        raise PipelineError(f"{path}: no such photo in Pictures ({pictures})")
    return relative


def _sign_into_store(settings: Config, store, relative: str) -> None:
    path = settings.library.pictures / relative
    try:
        signature = sign_file(path, settings.gate.max_pixels)
    except NotAnImage as exc:
        raise PipelineError(f"{relative}: cannot be removed: {exc}") from None
    status = path.stat()
    with store.transaction() as tx:
        store.put_file(tx, relative, status.st_size, status.st_mtime_ns, signature)
