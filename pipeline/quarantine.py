"""Looking into quarantine and taking a photo back out of it.

``restore`` moves a quarantined file back into Pictures and records the pair (its bytes and
the bytes of the library file it was taken for) as *not* duplicates, so neither the gate
nor the nightly resweep separates them again. It is one ``moves.Plan`` (``restore_plan``):
the move back, the library row, the pair and the "restored" mark are journaled before the
file moves, so a crash in between is finished by the next command, memory included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline import moves
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.library import unique_target
from pipeline.moves import LibraryRow, Move, Place, Plan
from pipeline.signatures import NotAnImage, Signature, sign_file
from pipeline.staging import Staging
from pipeline.text import shown
from pipeline.video_formats import sniff_video_file
from pipeline.video_signatures import NotAVideo, sign_video

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
    title: str = ""         # [captions]: the title and caption it would carry on the frame
    caption: str = ""

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
            exists=(config.library.quarantine / row["path"]).exists(),
            title=row["title"] or "", caption=row["caption"] or ""))
    return entries


def restore(store, config: Config, name: str) -> Path:
    """Move quarantined ``name`` back into Pictures and remember the pair is not a duplicate.

    Whatever a crashed command left in the journal is finished first; if that was the
    restore of ``name`` itself, it is done and its new place is returned.
    """
    for plan in moves.replay(store, config, Staging(config.staging_dir)):
        if plan.action == "restore" and name in (plan.subject, Path(plan.subject).name) \
                and plan.moves:
            return config.library.pictures / plan.moves[0].target.path
    entry = find_entry(store, config, name)
    plan = restore_plan(store, config, entry)
    moves.carry_out(store, config, plan)
    relative = plan.moves[0].target.path
    log.info("restored %s to %s; it will not be taken for %s again", entry.name, relative,
             entry.duplicate_of or "a duplicate")
    return config.library.pictures / relative


def find_entry(store, config: Config, name: str) -> QuarantineEntry:
    """The one quarantined file called ``name`` (its path or just its file name)."""
    matches = [entry for entry in list_entries(store, config)
               if entry.name == name or Path(entry.name).name == name]
    if not matches:
        raise PipelineError(f"{name}: not in quarantine; see `frame-ingest quarantine list`")
    if len(matches) > 1:
        raise PipelineError(f"{name}: more than one quarantined file has that name; use one of: "
                            + ", ".join(entry.name for entry in matches))
    return matches[0]


def restore_plan(store, config: Config, entry: QuarantineEntry) -> Plan:
    """Back to Pictures under a free name, its library row, the pair that is never a
    duplicate (its bytes and those of the file it was taken for), the decision undone; if
    it was taken for a photo removed from the frame, that removal is forgotten instead."""
    source = config.library.quarantine / entry.name
    if not source.exists():
        raise PipelineError(f"{source}: the file is no longer in quarantine")
    try:
        if sniff_video_file(source):    # a video: its row comes with the next library scan
            signature = sign_video(source, config.gate.max_pixels)
        else:
            signature = sign_file(source, config.gate.max_pixels)
    except (NotAnImage, NotAVideo) as exc:
        raise PipelineError(f"{entry.name}: cannot be restored: {exc}") from None
    row = store.decision(entry.decision_id)
    partner = row["matched_sha256"] or _sha256_of(store, row["matched_path"])
    # taken for a photo removed from the frame: the removal is forgotten, and no pair is
    # remembered (the two are the same photo; a third copy is a duplicate as usual)
    removal = bool(partner) and store.is_removed(partner)
    relative = unique_target(config.library.pictures, source.name) \
        .relative_to(config.library.pictures).as_posix()
    return Plan("restore", entry.name,
                moves=(Move(Place("quarantine", entry.name), Place("pictures", relative)),),
                add_files=(LibraryRow(relative, signature),)
                if isinstance(signature, Signature) else (),
                overrides=((signature.sha256, partner),) if partner and not removal else (),
                restored=(entry.decision_id,), forget_removed=(partner,) if removal else ())


def _sha256_of(store, library_path: str | None) -> str | None:
    if not library_path:
        return None
    row = store.file(library_path)
    return row["sha256"] if row else None


def describe(entry: QuarantineEntry) -> str:
    """One line for `quarantine list`: name, what it duplicates, why, where it came from."""
    distance = "" if entry.distance is None else f" distance {entry.distance:g}"
    why = f"duplicate of {entry.duplicate_of or '?'}  ({entry.method}{distance})"
    if entry.reason and not entry.reason.startswith("duplicate of"):
        # kept for a reason of its own (converted for the frame, removed from the frame)
        why = f"{why}: {entry.reason}" if entry.method else \
            f"{entry.reason} (in Pictures as {entry.duplicate_of})" if entry.duplicate_of \
            else entry.reason
    origin = entry.source + (f" from {entry.sender}" if entry.sender else "")
    subject = f' "{entry.subject}"' if entry.subject else ""
    if entry.message_id:
        subject += f" sent {entry.received or '?'} <{entry.message_id}>"
    missing = "" if entry.exists else " [file missing]"
    captioned = "".join(f"  {label} \"{text}\"" for label, text in
                        (("title", entry.title), ("caption", entry.caption)) if text)
    return shown(f"{entry.name}  {why}  {origin}{subject}{captioned}  {entry.decided_at}{missing}")
