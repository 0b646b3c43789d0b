"""Looking into quarantine and taking a photo back out of it.

``restore`` moves a quarantined file back into Pictures and records the pair (its bytes and
the bytes of the library file it was taken for) as *not* duplicates, so neither the gate
nor the nightly resweep separates them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.library import move_file, unique_target
from pipeline.signatures import NotAnImage, sign_file
from pipeline.text import shown

log = logging.getLogger("frame-ingest")


@dataclass(frozen=True)
class QuarantineEntry:
    decision_id: int
    name: str               # path relative to the quarantine folder: what `restore` takes
    duplicate_of: str
    method: str
    distance: float | None
    reason: str
    source: str
    sender: str
    subject: str
    received: str           # when it was sent (mail Date) or found, as the source knows it
    message_id: str
    decided_at: str
    exists: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def list_entries(store, config: Config) -> list[QuarantineEntry]:
    """Quarantined files (newest first) whose decision was not undone."""
    entries = []
    for row in store.decisions_in("quarantine"):
        entries.append(QuarantineEntry(
            decision_id=row["id"], name=row["path"], duplicate_of=row["matched_path"] or "",
            method=row["method"] or "", distance=row["distance"], reason=row["reason"] or "",
            source=row["source"] or "", sender=row["sender"] or "",
            subject=row["subject"] or "", received=row["received"] or "",
            message_id=row["message_id"] or "", decided_at=row["decided_at"],
            exists=(config.library.quarantine / row["path"]).exists()))
    return entries


def restore(store, config: Config, name: str) -> Path:
    """Move quarantined ``name`` back into Pictures and remember the pair is not a duplicate."""
    matches = [entry for entry in list_entries(store, config)
               if entry.name == name or Path(entry.name).name == name]
    if not matches:
        raise PipelineError(f"{name}: not in quarantine; see `frame-ingest quarantine list`")
    if len(matches) > 1:
        raise PipelineError(f"{name}: more than one quarantined file has that name; use one of: "
                            + ", ".join(entry.name for entry in matches))
    entry = matches[0]
    row = store.query("SELECT * FROM decisions WHERE id = ?", (entry.decision_id,))[0]
    source = config.library.quarantine / entry.name
    if not source.exists():
        raise PipelineError(f"{source}: the file is no longer in quarantine")
    target = unique_target(config.library.pictures, source.name)
    try:
        signature = sign_file(source, config.gate.max_pixels)
    except NotAnImage as exc:
        raise PipelineError(f"{entry.name}: cannot be restored: {exc}") from None
    partner = row["matched_sha256"] or _sha256_of(store, row["matched_path"])
    move_file(source, target)
    relative = target.relative_to(config.library.pictures).as_posix()
    with store.transaction() as tx:
        status = target.stat()
        store.put_file(tx, relative, status.st_size, status.st_mtime_ns, signature)
        if partner:
            store.add_override(tx, signature.sha256, partner)
        store.mark_restored(tx, entry.decision_id)
    log.info("restored %s to %s; it will not be taken for %s again", entry.name, relative,
             entry.duplicate_of or "a duplicate")
    return target


def _sha256_of(store, library_path: str | None) -> str | None:
    if not library_path:
        return None
    row = store.file(library_path)
    return row["sha256"] if row else None


def describe(entry: QuarantineEntry) -> str:
    """One line for `quarantine list`: name, what it duplicates, why, where it came from."""
    distance = "" if entry.distance is None else f" distance {entry.distance:g}"
    origin = entry.source + (f" from {entry.sender}" if entry.sender else "")
    subject = f' "{entry.subject}"' if entry.subject else ""
    if entry.message_id:
        subject += f" sent {entry.received or '?'} <{entry.message_id}>"
    missing = "" if entry.exists else " [file missing]"
    return shown(f"{entry.name}  duplicate of {entry.duplicate_of or '?'}  "
            f"({entry.method}{distance})  {origin}{subject}  {entry.decided_at}{missing}")
