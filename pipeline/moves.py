"""THE way the library changes: a typed ``Plan``, one ``carry_out`` and one ``replay``.

Every change to Pictures, quarantine and rejected is a plan: the gate's promote, quarantine,
reject and replace (``run.filing_plan``), the resweep's quarantine moves
(``resweep.plan_quarantine``) and ``quarantine restore`` (``quarantine.restore_plan``). A plan
says everything before anything happens: which files move where (``Move``), which decisions
are logged (``DecisionRecord``), which library rows are added or dropped, the origin taken,
the pairs that are never duplicates, the decisions undone, the staged item to discard.

``carry_out`` runs it in four steps:

1. the plan goes into the store's journal (one transaction);
2. the moves, in order (``library.move_file``: durable, never overwriting, idempotent);
3. ONE transaction makes every store change and drops the journal row;
4. the staged item, if any, is discarded.

A crash after 1 or 2 leaves a journaled plan that ``replay`` (the first thing every
command that changes the library does) finishes exactly: moves already made are no-ops,
library rows whose signature was not journaled are signed again from the file on disk. A
move whose source is gone and whose target is not there either (a person deleted the file
in between) cannot be made: the plan records what still holds, logs one line and is dropped,
so the run goes on.

Paths in a plan are ``Place``s, a folder name and a path relative to it, so a journaled plan
means the same thing whatever the absolute paths (and old journal rows can be converted
without the configuration, see ``from_old_journal``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.config import Config
from pipeline.items import DecisionRecord, Provenance
from pipeline.library import move_file
from pipeline.signatures import Signature, sign_file
from pipeline.staging import Staging

log = logging.getLogger("frame-ingest")

FOLDERS = ("pictures", "quarantine", "rejected", "staging", "removed")
LIBRARY_SOURCE = "resweep"  # the source of a library file moved out (resweep or displaced)


@dataclass(frozen=True)
class Place:
    """A file named by its folder (``FOLDERS``) and its path relative to it."""

    folder: str
    path: str               # '/'-separated

    def resolve(self, config: Config) -> Path:
        roots = {"pictures": config.library.pictures, "quarantine": config.library.quarantine,
                 "rejected": config.library.rejected, "staging": config.staging_dir,
                 "removed": config.library.removed_folder}
        return roots[self.folder] / self.path

    def to_list(self) -> list[str]:
        return [self.folder, self.path]


@dataclass(frozen=True)
class Move:
    source: Place
    target: Place


@dataclass(frozen=True)
class LibraryRow:
    """A file the plan puts into Pictures; its signature is not journaled (re-signed on
    replay from the file itself, which is what Pictures really holds)."""

    path: str
    signature: Signature | None = None


@dataclass(frozen=True)
class Origin:
    key: str                # Provenance.origin_key
    sha256: str             # the bytes the source gave


@dataclass(frozen=True)
class Plan:
    """One library action, fixed before anything moves (so a replay is exact)."""

    action: str             # what the replay log calls it: move | quarantine | restore
    subject: str            # the name the log uses
    moves: tuple[Move, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()
    add_files: tuple[LibraryRow, ...] = ()
    remove_files: tuple[str, ...] = ()          # library rows (paths in Pictures) to drop
    origin: Origin | None = None
    overrides: tuple[tuple[str, str], ...] = ()  # sha256 pairs that are never duplicates
    restored: tuple[int, ...] = ()              # decision ids undone
    discard_staged: str = ""                    # staged item id, discarded at the end
    # photos removed from the frame (pipeline/removals.py): (path in Pictures, its path in
    # removed_folder or ""), remembered with their library row's signature; and the
    # SHA-256 values of removals forgotten
    remember_removed: tuple[tuple[str, str], ...] = ()
    forget_removed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"action": self.action, "subject": self.subject,
                "moves": [[move.source.to_list(), move.target.to_list()]
                          for move in self.moves],
                "decisions": [record.to_dict() for record in self.decisions],
                "add_files": [row.path for row in self.add_files],
                "remove_files": list(self.remove_files),
                "origin": [self.origin.key, self.origin.sha256] if self.origin else None,
                "overrides": [list(pair) for pair in self.overrides],
                "restored": list(self.restored), "discard_staged": self.discard_staged,
                "remember_removed": [list(pair) for pair in self.remember_removed],
                "forget_removed": list(self.forget_removed)}

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(action=data["action"], subject=data["subject"],
                   moves=tuple(Move(Place(*source), Place(*target))
                               for source, target in data["moves"]),
                   decisions=tuple(DecisionRecord.from_dict(record)
                                   for record in data["decisions"]),
                   add_files=tuple(LibraryRow(path) for path in data["add_files"]),
                   remove_files=tuple(data["remove_files"]),
                   origin=Origin(*data["origin"]) if data["origin"] else None,
                   overrides=tuple(tuple(pair) for pair in data["overrides"]),
                   restored=tuple(data["restored"]), discard_staged=data["discard_staged"],
                   remember_removed=tuple(tuple(pair)
                                          for pair in data.get("remember_removed", ())),
                   forget_removed=tuple(data.get("forget_removed", ())))


def carry_out(store, config: Config, plan: Plan) -> list[LibraryRow]:
    """Journal ``plan``, make its moves, record it; return the library rows it added (signed).

    Raises ``LibraryError`` when a move fails: the plan stays journaled for the next run.
    """
    with store.transaction() as tx:
        plan_id = store.add_journal(tx, plan.to_dict())
    return _finish(store, config, plan_id, plan, announce="")


def replay(store, config: Config, staging: Staging | None = None) -> list[Plan]:
    """Finish every journaled plan a crashed run left behind, oldest first; return them."""
    finished = []
    for plan_id, data in store.journal():
        plan = Plan.from_dict(data)
        _finish(store, config, plan_id, plan,
                announce=f"finishing the interrupted {plan.action} of {plan.subject}",
                staging=staging)
        finished.append(plan)
    return finished


def _finish(store, config: Config, plan_id: int, plan: Plan, announce: str,
            staging: Staging | None = None) -> list[LibraryRow]:
    lost = [move for move in plan.moves if not move.source.resolve(config).exists()
            and not move.target.resolve(config).exists()]
    if lost:
        log.warning("cannot finish the interrupted %s of %s: %s is gone and %s is not "
                    "there; recorded the rest of it", plan.action, plan.subject,
                    lost[0].source.resolve(config), lost[0].target.resolve(config))
        plan = without_lost(plan, lost)
    elif announce:
        log.info("%s", announce)
    for move in plan.moves:
        move_file(move.source.resolve(config), move.target.resolve(config))
    added = [LibraryRow(row.path, row.signature or sign_file(
        config.library.pictures / row.path, config.gate.max_pixels)) for row in plan.add_files]
    with store.transaction() as tx:
        for record in plan.decisions:
            store.record_decision(tx, record)
        for path, kept in plan.remember_removed:    # before its row is dropped
            store.remember_removed(tx, path, kept or None)
        store.remove_files(tx, list(plan.remove_files))
        for row in added:
            status = (config.library.pictures / row.path).stat()
            store.put_file(tx, row.path, status.st_size, status.st_mtime_ns, row.signature)
        if plan.origin:
            store.add_origin(tx, plan.origin.key, plan.origin.sha256)
        for first, second in plan.overrides:
            store.add_override(tx, first, second)
        for decision_id in plan.restored:
            store.mark_restored(tx, decision_id)
        store.forget_removed(tx, list(plan.forget_removed))
        store.remove_journal(tx, plan_id)
    if plan.discard_staged:
        _discard(staging or Staging(config.staging_dir), plan.discard_staged)
    return added


def without_lost(plan: Plan, lost: list[Move]) -> Plan:
    """The part of ``plan`` that still holds when the moves in ``lost`` cannot be made: no
    record, library row or restore mark for a file that is nowhere; no library file taken
    out for a copy that is nowhere (a replace whose newcomer vanished); no origin when the
    staged bytes are gone (so the source may deliver them again); the rest stays."""
    gone = {move.target for move in lost}
    vanished = {place.path for place in gone if place.folder == "pictures"}
    gone |= {Place(record.folder, record.path) for record in plan.decisions
             if record.folder != "pictures" and record.matched_path in vanished}
    dropped = [move for move in plan.moves if move.target in gone]
    kept_in_place = {move.source.path for move in dropped if move.source.folder == "pictures"}
    return replace(
        plan, moves=tuple(move for move in plan.moves if move not in dropped),
        decisions=tuple(record for record in plan.decisions
                        if Place(record.folder, record.path) not in gone),
        add_files=tuple(row for row in plan.add_files if Place("pictures", row.path) not in gone),
        remove_files=tuple(path for path in plan.remove_files if path not in kept_in_place),
        origin=None if any(move.source.folder == "staging" for move in lost) else plan.origin,
        restored=() if any(move.source.folder == "quarantine" for move in lost)
        else plan.restored,
        forget_removed=() if any(move.source.folder == "removed" for move in lost)
        else plan.forget_removed,
        remember_removed=tuple((path, "" if Place("removed", kept) in gone else kept)
                               for path, kept in plan.remember_removed))


def _discard(staging: Staging, item_id: str) -> None:
    directory = staging.root / item_id
    if (directory / "meta.json").exists():
        staging.discard(staging.load(directory))


# --- the pieces plan builders share --------------------------------------------------


def arrival_record(provenance: Provenance, sha256: str, verdict: str, place: Place, *,
                   reason: str = "", matched_path: str = "", matched_sha256: str = "",
                   method: str = "", distance: float = 0.0) -> DecisionRecord:
    """The log entry of a staged file put at ``place``, with where it came from."""
    return DecisionRecord(
        verdict=verdict, folder=place.folder, path=place.path, name=provenance.name,
        sha256=sha256, matched_path=matched_path or None,
        matched_sha256=matched_sha256 or None, method=method or None,
        distance=distance if method else None, reason=reason or None,
        source=provenance.source, origin=provenance.origin_key, sender=provenance.sender,
        subject=provenance.subject, message_id=provenance.message_id,
        received=provenance.received)


def library_quarantine(path: str, sha256: str, target: Place, *, kept_path: str,
                       kept_sha256: str, method: str, distance: float,
                       reason: str) -> tuple[Move, DecisionRecord]:
    """The move and log entry of a library file taken out as a copy of ``kept_path``: the
    same event whether the resweep found it or a better copy displaced it (``reason`` says
    which), recorded under one source name, ``LIBRARY_SOURCE``."""
    record = DecisionRecord(
        verdict="quarantined", folder="quarantine", path=target.path, name=Path(path).name,
        sha256=sha256, matched_path=kept_path, matched_sha256=kept_sha256 or None,
        method=method, distance=distance, reason=reason, source=LIBRARY_SOURCE,
        origin=f"{LIBRARY_SOURCE}:{path}")
    return Move(Place("pictures", path), target), record


# --- journal rows of the old code ----------------------------------------------------


def from_old_journal(key: str, old: dict, staging_root: Path) -> Plan | None:
    """The plan a journal row of the old code meant (store migration 2), or None when the
    old code would have dropped it. Its two shapes: ``resweep:<path>`` rows, and gate rows
    keyed by the staged item id (whose provenance is in the staged item's meta.json)."""
    if key.startswith("resweep:"):
        move, record = library_quarantine(
            old["path"], old["sha256"], _old_place("quarantine", old["target"]),
            kept_path=old["matched_path"], kept_sha256=old["matched_sha256"],
            method=old["method"], distance=old["distance"], reason=old["reason"])
        return Plan("quarantine", old["path"], moves=(move,), decisions=(record,),
                    remove_files=(old["path"],))
    meta = staging_root / key / "meta.json"
    if not meta.exists():
        return None
    staged = json.loads(meta.read_text(encoding="utf-8"))
    provenance = Provenance.from_dict(staged["provenance"])
    target = _old_place(old["folder"], old["target"])
    moves = [Move(Place("staging", f"{key}/data"), target)]
    decisions = [arrival_record(
        provenance, staged["sha256"], old["verdict"], target, reason=old["reason"],
        matched_path=old["matched_path"], matched_sha256=old.get("matched_sha256") or "",
        method=old["method"], distance=old["distance"])]
    displaced = old.get("displaced")
    if displaced:
        move, record = library_quarantine(
            displaced["path"], displaced["sha256"], _old_place("quarantine", displaced["target"]),
            kept_path=target.path, kept_sha256="", method=old["method"],
            distance=old["distance"], reason=f"a larger copy arrived: {target.path}")
        moves.append(move)
        decisions.append(record)
    return Plan("move", provenance.name, moves=tuple(moves), decisions=tuple(decisions),
                add_files=(LibraryRow(target.path),) if target.folder == "pictures" else (),
                remove_files=(displaced["path"],) if displaced else (),
                origin=Origin(provenance.origin_key, staged["sha256"]), discard_staged=key)


def _old_place(folder: str, target: str) -> Place:
    """An absolute target of the old code as a Place: Pictures targets are at its top,
    quarantine and rejected ones in a dated folder."""
    parts = Path(target).parts
    return Place(folder, parts[-1] if folder == "pictures" else "/".join(parts[-2:]))
