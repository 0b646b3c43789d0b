"""The nightly resweep's video half: refresh the ``videos`` rows, quarantine copies.

``resweep.resweep`` calls ``sweep`` after the photos. The rows are refreshed incrementally
(``video_catalog.refresh``: unchanged files are not opened; its counts add to the report's
``scanned``, ``signed``, ``unchanged``, ``removed``). Groups are formed around the best
copy: videos are taken best first (most pixels, then highest bit rate, then path), and
each takes every not yet grouped video that ``VideoIndex.match`` confirms as its copy;
pairs a person restored from quarantine are never grouped. Each copy becomes the same
quarantine plan a photo gets (``resweep.plan_quarantine``'s shape, through
``moves.carry_out``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import moves, video_catalog
from pipeline.catalog import CatalogStats
from pipeline.errors import LibraryError
from pipeline.library import dated_folder, unique_target
from pipeline.moves import Place, Plan
from pipeline.video_matching import VideoIndex, _signature_of

log = logging.getLogger("frame-ingest")


def sweep(config, store, report, dry_run: bool = False) -> None:
    """Refresh the video rows and quarantine the copies; counts go into ``report``."""
    stats = video_catalog.refresh(store, config.library.pictures,
                                  exclude=config.resweep.exclude,
                                  max_pixels=config.gate.max_pixels, stats=CatalogStats())
    report.scanned += stats.scanned
    report.signed += stats.signed
    report.unchanged += stats.unchanged
    report.removed += stats.removed
    rows = sorted(store.usable_videos(), key=lambda row: (
        -(row["width"] or 0) * (row["height"] or 0), -(row["bit_rate"] or 0), row["path"]))
    overrides = store.all_overrides()
    grouped: set[str] = set()
    library = VideoIndex(rows)
    for keeper in rows:
        if keeper["path"] in grouped:
            continue
        excluded = {b for a, b in overrides if a == keeper["sha256"]} | \
                   {a for a, b in overrides if b == keeper["sha256"]}
        signature = _signature_of(keeper)
        members, skip = [], grouped | {keeper["path"]}
        while (match := library.match(signature, excluded, skip)) is not None:
            members.append(match)
            skip = skip | {match.path}
        if not members:
            continue
        grouped.add(keeper["path"])
        report.groups += 1
        for match in members:
            grouped.add(match.path)
            if not _quarantine(config, store, report, keeper, match, dry_run):
                return
    for row in store.query("SELECT path, error FROM videos WHERE error IS NOT NULL "
                           "ORDER BY path"):
        report.undecodable.append({"path": row["path"], "error": row["error"]})


def _quarantine(config, store, report, keeper, match, dry_run: bool) -> bool:
    quarantine = config.library.quarantine
    target = unique_target(dated_folder(quarantine), Path(match.path).name)
    move, record = moves.library_quarantine(
        match.path, match.sha256,
        Place("quarantine", target.relative_to(quarantine).as_posix()),
        kept_path=keeper["path"], kept_sha256=keeper["sha256"], method=match.method,
        distance=match.distance,
        reason=f"duplicate of {keeper['path']} ({match.method}, {match.distance:g}) found "
               f"by the resweep")
    plan = Plan("quarantine", match.path, moves=(move,), decisions=(record,),
                remove_files=(match.path,))
    report.planned.append({"path": match.path, "target": str(target),
                           "sha256": match.sha256, "matched_path": keeper["path"],
                           "matched_sha256": keeper["sha256"], "method": match.method,
                           "distance": match.distance, "reason": record.reason})
    if dry_run:
        return True
    try:
        moves.carry_out(store, config, plan)
    except LibraryError as exc:
        log.error("resweep: %s: %s", match.path, exc)
        report.errors.append(f"resweep: {match.path}: {exc}")
        return False
    video_catalog.forget(store, [match.path])
    log.info("quarantined %s: %s", match.path, record.reason)
    report.quarantined += 1
    return True
