"""The nightly whole-library pass: bring the signatures up to date, quarantine duplicates.

Pictures fills up by other paths too (a USB stick, a Samba share, an old import), so once a
night ``frame-ingest resweep``:

1. finishes every plan a crashed command left in the journal (``moves.replay``);
2. refreshes the signature store (``catalog.refresh``: unchanged files are not opened,
   new and changed ones are signed in a process pool, vanished ones dropped);
3. finds the duplicate groups inside the library (``duplicates.find_groups``: the gate's
   matcher over indexed candidates, groups formed around the kept file);
4. moves every other member of a group to the dated quarantine folder.

Each move is a ``moves.Plan`` (``plan_quarantine``) carried out by ``moves.carry_out``, the
way the gate's are: journaled first, then moved, then recorded in one transaction. A crash
between the steps leaves a plan that the next ``run`` or ``resweep`` replays before
anything else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import catalog, moves
from pipeline.config import Config
from pipeline.duplicates import find_groups
from pipeline.errors import LibraryError
from pipeline.index import SignatureIndex
from pipeline.library import dated_folder, unique_target
from pipeline.moves import Place, Plan
from pipeline.staging import Staging

log = logging.getLogger("frame-ingest")


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
        moves.replay(store, config, Staging(config.staging_dir))
    stats = catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                            workers=config.resweep.workers,
                            max_pixels=config.gate.max_pixels,
                            progress=progress)
    report.scanned, report.signed = stats.scanned, stats.signed
    report.unchanged, report.removed = stats.unchanged, stats.removed
    library = SignatureIndex.from_store(store)
    groups = find_groups(store, library, config.dedupe, store.all_overrides())
    report.groups = len(groups)
    for group in groups:
        for position, method, distance in group.members:
            plan = plan_quarantine(config, library, group.keeper, position, method, distance)
            report.planned.append(describe(config, plan))
            if dry_run:
                continue
            path, reason = plan.subject, plan.decisions[0].reason
            try:
                moves.carry_out(store, config, plan)
            except LibraryError as exc:
                log.error("resweep: %s: %s", path, exc)
                report.errors.append(f"resweep: {path}: {exc}")
                break  # the quarantine folder is unusable; the rest waits for tomorrow
            log.info("quarantined %s: %s", path, reason)
            report.quarantined += 1
    for row in store.undecodable_files():
        log.warning("undecodable library file left in place: %s: %s", row["path"], row["error"])
        report.undecodable.append({"path": row["path"], "error": row["error"]})
    return report


def plan_quarantine(config: Config, library: SignatureIndex, keeper: int, position: int,
                    method: str, distance: float) -> Plan:
    """The duplicate to today's quarantine folder, its decision and its row dropped."""
    path, kept = library.paths[position], library.paths[keeper]
    quarantine = config.library.quarantine
    target = unique_target(dated_folder(quarantine), Path(path).name)
    move, record = moves.library_quarantine(
        path, library.sha256[position], Place("quarantine", target.relative_to(quarantine)
                                              .as_posix()),
        kept_path=kept, kept_sha256=library.sha256[keeper], method=method, distance=distance,
        reason=f"duplicate of {kept} ({method}, {distance:g}) found by the resweep")
    return Plan("quarantine", path, moves=(move,), decisions=(record,), remove_files=(path,))


def describe(config: Config, plan: Plan) -> dict:
    """A quarantine plan as the report (and `resweep --json`) shows it."""
    record = plan.decisions[0]
    return {"path": plan.subject, "target": str(plan.moves[0].target.resolve(config)),
            "sha256": record.sha256, "matched_path": record.matched_path,
            "matched_sha256": record.matched_sha256, "method": record.method,
            "distance": record.distance, "reason": record.reason}
