"""The nightly whole-library pass: bring the signatures up to date, quarantine duplicates.

Pictures fills up by other paths too (a USB stick, a Samba share, an old import), so once a
night ``frame-ingest resweep``:

1. finishes any quarantine move a crashed resweep left in the journal;
2. refreshes the signature store (``catalog.refresh``: unchanged files are not opened,
   new and changed ones are signed in a process pool, vanished ones dropped);
3. finds the duplicate groups inside the library (``duplicates.find_groups``: the gate's
   matcher over indexed candidates, groups formed around the kept file);
4. moves every other member of a group to the dated quarantine folder.

Each move is crash-safe the way the gate's are: the plan (source, target, decision) goes
into the store's journal first, then ``library.move_file`` (durable, idempotent), then one
transaction records the decision, drops the file's row and the plan. A crash between the
steps leaves a plan that the next ``run`` or ``resweep`` replays before anything else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import catalog
from pipeline.config import Config
from pipeline.duplicates import find_groups
from pipeline.errors import LibraryError
from pipeline.index import SignatureIndex
from pipeline.library import dated_folder, move_file, unique_target

log = logging.getLogger("frame-ingest")

JOURNAL_PREFIX = "resweep:"


@dataclass
class ResweepReport:
    scanned: int = 0
    signed: int = 0
    unchanged: int = 0
    removed: int = 0
    groups: int = 0
    quarantined: int = 0
    undecodable: list[dict] = field(default_factory=list)   # {"path", "error"}
    planned: list[dict] = field(default_factory=list)       # the moves (made or, dry, not)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    started: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict:
        return {"scanned": self.scanned, "signed": self.signed, "unchanged": self.unchanged,
                "removed": self.removed, "groups": self.groups,
                "quarantined": self.quarantined, "undecodable": self.undecodable,
                "moves": self.planned, "errors": self.errors, "dry_run": self.dry_run,
                "seconds": round(time.monotonic() - self.started, 2)}

    def line(self) -> str:
        data = self.to_dict()
        label = "resweep (dry run)" if self.dry_run else "resweep"
        return (f"{label}: scanned={self.scanned} signed={self.signed} "
                f"unchanged={self.unchanged} removed={self.removed} groups={self.groups} "
                f"quarantined={self.quarantined} undecodable={len(self.undecodable)} "
                f"seconds={data['seconds']}")


def resweep(config: Config, store, dry_run: bool = False, progress=None) -> ResweepReport:
    """One whole-library pass; the caller holds the instance lock."""
    report = ResweepReport(dry_run=dry_run)
    if not dry_run:
        replay_journal(store, config)
    stats = catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                            workers=config.resweep.workers,
                            max_pixels=config.gate.max_pixels,
                            progress=progress)
    report.scanned, report.signed = stats.scanned, stats.signed
    report.unchanged, report.removed = stats.unchanged, stats.removed
    library = SignatureIndex.from_store(store)
    groups = find_groups(store, library, config.dedupe, config.resweep.hash_distance,
                         store.all_overrides())
    report.groups = len(groups)
    for group in groups:
        for position, method, distance in group.members:
            plan = plan_move(config, library, group.keeper, position, method, distance)
            report.planned.append(plan)
            if dry_run:
                continue
            try:
                carry_out(store, config, plan)
            except LibraryError as exc:
                log.error("resweep: %s: %s", plan["path"], exc)
                report.errors.append(f"resweep: {plan['path']}: {exc}")
                break  # the quarantine folder is unusable; the rest waits for tomorrow
            report.quarantined += 1
    for row in store.undecodable_files():
        log.warning("undecodable library file left in place: %s: %s", row["path"], row["error"])
        report.undecodable.append({"path": row["path"], "error": row["error"]})
    return report


def plan_move(config: Config, library: SignatureIndex, keeper: int, position: int, method: str,
              distance: float) -> dict:
    """Where the duplicate goes and the decision to record, fixed before anything moves."""
    path, kept = library.paths[position], library.paths[keeper]
    target = unique_target(dated_folder(config.library.quarantine), Path(path).name)
    return {"path": path, "target": str(target), "sha256": library.sha256[position],
            "matched_path": kept, "matched_sha256": library.sha256[keeper],
            "method": method, "distance": distance,
            "reason": f"duplicate of {kept} ({method}, {distance:g}) found by the resweep"}


def carry_out(store, config: Config, plan: dict) -> None:
    """Journal the plan, move the file, then record the decision and drop the plan."""
    item_id = JOURNAL_PREFIX + plan["path"]
    with store.transaction() as tx:
        store.add_journal(tx, item_id, plan)
    move_file(config.library.pictures / plan["path"], Path(plan["target"]))
    finish(store, config, item_id, plan)
    log.info("quarantined %s: %s", plan["path"], plan["reason"])


def finish(store, config: Config, item_id: str, plan: dict) -> None:
    target = Path(plan["target"])
    with store.transaction() as tx:
        store.record_decision(
            tx, verdict="quarantined", folder="quarantine",
            path=target.relative_to(config.library.quarantine).as_posix(),
            name=Path(plan["path"]).name, sha256=plan["sha256"],
            matched_path=plan["matched_path"], matched_sha256=plan["matched_sha256"],
            method=plan["method"], distance=plan["distance"], reason=plan["reason"],
            source="resweep", origin=f"resweep:{plan['path']}")
        store.remove_files(tx, [plan["path"]])
        store.remove_journal(tx, item_id)


def replay_journal(store, config: Config) -> None:
    """Finish the quarantine moves a crashed resweep left behind (moves are idempotent)."""
    for item_id, plan in store.journal():
        if not item_id.startswith(JOURNAL_PREFIX):
            continue
        source, target = config.library.pictures / plan["path"], Path(plan["target"])
        if not source.exists() and not target.exists():
            with store.transaction() as tx:  # the file went away by other means
                store.remove_journal(tx, item_id)
            continue
        log.info("finishing the interrupted quarantine of %s", plan["path"])
        move_file(source, target)
        finish(store, config, item_id, plan)
