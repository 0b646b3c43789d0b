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

``PlanBatch`` does the same for many plans at once, sharing the fsyncs (the gate's way).
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

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import LibraryError
from pipeline.items import DecisionRecord, Provenance
from pipeline.library import copy_into_place, move_file, remove_source, sync_directory
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
    staging = staging or Staging(config.staging_dir)
    if announce:        # a replay: the staged bytes may have changed while the plan waited
        plan = _without_damaged(config, staging, plan)
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
    with store.transaction() as tx:
        added = _record(store, tx, config, plan_id, plan)
    if plan.discard_staged:
        staging.discard_id(plan.discard_staged)
    return added


def _record(store, tx, config: Config, plan_id: int, plan: Plan,
            rows_written: bool = False) -> list[LibraryRow]:
    """Every store change of a plan whose moves are made, and the end of its journal row
    (``rows_written``: its library rows went in with its journal row, ``PlanBatch.add``)."""
    added = list(plan.add_files) if rows_written else [
        LibraryRow(row.path, row.signature or sign_file(
            config.library.pictures / row.path, config.gate.max_pixels))
        for row in plan.add_files]
    for record in plan.decisions:
        store.record_decision(tx, record)
    for path, kept in plan.remember_removed:    # before its row is dropped
        store.remember_removed(tx, path, kept or None)
    store.remove_files(tx, list(plan.remove_files))
    for row in added if not rows_written else ():
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
    return added


class PlanBatch:
    """Plans carried out together, so that a big drop of small files shares the
    durability work (the gate files its staged items this way).

    ``add`` journals a plan as soon as it is made, with the library rows it adds (so the
    next decision of the batch sees them), in a transaction not synced on its own.
    ``finish`` then makes every plan of the batch happen:

    1. one synced commit makes every journal row of the batch durable;
    2. every file is copied into place, each copy fsynced before it gets its name;
    3. ONE fsync per target folder, then the sources are removed (one fsync per folder
       outside staging; staging's own removals need none, as in ``Staging.discard``);
    4. ONE transaction records every plan and drops its journal row;
    5. the staged items are discarded.

    So, as for ``carry_out``, a plan is durable in the journal before any of its names is
    in a target folder, every copy before its source goes, every record after its files:
    whatever moment a crash or power cut picks, ``replay`` finishes the journaled plans
    (oldest first, so a plan moving the file an earlier one put in place still finds it).
    The durability work per file drops from five fsyncs to one.
    """

    def __init__(self, store, config: Config, staging: Staging):
        self.store, self.config, self.staging = store, config, staging
        self.pending: list[tuple[int, Plan]] = []

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, plan: Plan) -> None:
        sources = {move.target: move.source.resolve(self.config) for move in plan.moves}
        with self.store.unsynced_transaction() as tx:
            plan_id = self.store.add_journal(tx, plan.to_dict())
            for row in plan.add_files:      # as they will be: copies keep size and mtime
                status = sources[Place("pictures", row.path)].stat()
                self.store.put_file(tx, row.path, status.st_size, status.st_mtime_ns,
                                    row.signature)
        self.pending.append((plan_id, plan))

    def finish(self) -> list[tuple[Plan, list[LibraryRow]]]:
        """Carry out every plan added; return each with the library rows it added.
        Raises ``LibraryError`` when a move fails: the plans before it are recorded, the
        others stay journaled for the next run."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        self.store.sync_journal()
        done, moved, failure = [], [], None
        for plan_id, plan in pending:
            try:
                for move in plan.moves:
                    paths = (move.source.resolve(self.config), move.target.resolve(self.config))
                    copy_into_place(*paths, sync_folder=False)
                    moved.append((*paths, move))    # made, as far as carry_out would have
            except LibraryError as exc:
                failure = LibraryError(f"{plan.subject}: {exc}")
                break
            done.append((plan_id, plan))
        for folder in dict.fromkeys(target.parent for _, target, _ in moved):
            sync_directory(folder)
        for source, target, _ in moved:
            remove_source(source, target, sync_folder=False)
        for folder in dict.fromkeys(source.parent for source, _, move in moved
                                    if move.source.folder != "staging"):
            sync_directory(folder)
        with self.store.transaction() as tx:
            finished = [(plan, _record(self.store, tx, self.config, plan_id, plan, True))
                        for plan_id, plan in done]
        for plan, _ in finished:
            if plan.discard_staged:
                self.staging.discard_id(plan.discard_staged)
        if failure is not None:
            raise failure
        return finished


def _without_damaged(config: Config, staging: Staging, plan: Plan) -> Plan:
    """``plan`` without the moves of staged bytes that are no longer the bytes it was made
    for (the SHA-256 its decision records hold). Their staged item is set aside with its
    bytes and the reason (one line); the rest of the plan is carried out."""
    expected = {Place(record.folder, record.path): record.sha256 for record in plan.decisions}
    damaged, reason = [], ""
    for move in plan.moves:
        source = move.source.resolve(config)
        if move.source.folder != "staging" or move.target not in expected \
                or not source.is_file() or move.target.resolve(config).exists():
            continue
        actual = file_sha256(source)
        if actual != expected[move.target]:
            damaged.append(move)
            reason = (f"{move.source.path} changed in staging while the {plan.action} of "
                      f"{plan.subject} waited (SHA-256 {actual[:16]}, planned "
                      f"{expected[move.target][:16]}); that {plan.action} was dropped")
    if not damaged:
        return plan
    item_id = damaged[0].source.path.split("/")[0]
    staging.set_aside(staging.root / item_id, reason)
    return replace(without_lost(plan, damaged), discard_staged="")


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- the pieces plan builders share --------------------------------------------------


def arrival_record(provenance: Provenance, sha256: str, verdict: str, place: Place, *,
                   reason: str = "", matched_path: str = "", matched_sha256: str = "",
                   method: str = "", distance: float = 0.0,
                   captions=None) -> DecisionRecord:
    """The log entry of a staged file put at ``place``, with where it came from (and its
    ``captions.Captions``, if any)."""
    return DecisionRecord(
        verdict=verdict, folder=place.folder, path=place.path, name=provenance.name,
        sha256=sha256, matched_path=matched_path or None,
        matched_sha256=matched_sha256 or None, method=method or None,
        distance=distance if method else None, reason=reason or None,
        source=provenance.source, origin=provenance.origin_key, sender=provenance.sender,
        subject=provenance.subject, message_id=provenance.message_id,
        received=provenance.received,
        title=captions.title or None if captions else None,
        caption=captions.caption or None if captions else None)


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
