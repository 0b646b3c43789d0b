"""One run: fetch every source into staging, then the gate phase over staging.

``run_once`` is what `run`, `fetch`, `gate` and every `watch` cycle do, under the instance
lock: ``fetch_all`` asks each enabled source for new photos (one failing source never stops
the others; each source's outcome is kept as its ``last_run`` state for `status`), then
``gate_staged`` files every staged item:

1. finish what a crashed run left in the journal (``moves.replay``);
2. bring the store in step with Pictures (``catalog.refresh``) and load the index;
3. per staged item, oldest first: sign it (one read, one reduced decode), ``gate.decide``
   against the index, run the promotion steps (``transforms.apply``) on a photo going into
   Pictures, build its ``moves.Plan`` (``filing_plan``) and ``moves.carry_out`` it.

Counts and errors go into one ``RunSummary``; turning it into an exit code is ``cli.py``'s.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import catalog, live_photos, moves, transforms, video_catalog, video_gate
from pipeline.config import MIB, Config
from pipeline.errors import LibraryError, SourceError
from pipeline.gate import decide
from pipeline.index import SignatureIndex
from pipeline.items import Decision, StagedItem, Verdict
from pipeline.library import dated_folder, sanitize_name, unique_target, with_extension
from pipeline.locking import instance_lock
from pipeline.moves import LibraryRow, Move, Origin, Place, Plan
from pipeline.signatures import NotAnImage, Signature, sign_file
from pipeline.sources import enabled_sources
from pipeline.sources.base import FetchContext
from pipeline.staging import Staging
from pipeline.store import Store, now_iso
from pipeline.video_formats import with_video_extension
from pipeline.video_matching import VideoIndex
from pipeline.video_signatures import NotAVideo, VideoSignature, sign_video

log = logging.getLogger("frame-ingest")

FOLDER_OF = {Verdict.PROMOTE: "pictures", Verdict.REPLACE: "pictures",
             Verdict.DUPLICATE: "quarantine", Verdict.REJECT: "rejected"}
VERB_OF = {Verdict.PROMOTE: "promote", Verdict.REPLACE: "promote",
           Verdict.DUPLICATE: "quarantine", Verdict.REJECT: "reject"}


@dataclass
class RunSummary:
    fetched: int = 0
    promoted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict:
        return {"fetched": self.fetched, "promoted": self.promoted,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": self.errors,
                "seconds": round(time.monotonic() - self.started, 2)}

    def count(self, decision: Decision | None) -> None:
        if decision is not None:
            self.promoted += decision.verdict in (Verdict.PROMOTE, Verdict.REPLACE)
            self.duplicates += decision.verdict in (Verdict.DUPLICATE, Verdict.REPLACE)
            self.rejected += decision.verdict is Verdict.REJECT

    def line(self, command: str) -> str:
        data = self.to_dict()
        return (f"{command}: fetched={data['fetched']} promoted={data['promoted']} "
                f"duplicates={data['duplicates']} rejected={data['rejected']} "
                f"errors={len(self.errors)} seconds={data['seconds']}")


def run_once(config: Config, *, fetch: bool = True, gate: bool = True, only: str | None = None,
             dry_run: bool = False) -> RunSummary:
    """One fetch and/or gate pass under the instance lock (raises ``AlreadyRunning``)."""
    summary = RunSummary()
    with instance_lock(config.library.state_dir), Store(config.database) as store:
        staging = Staging(config.staging_dir)
        if fetch:
            fetch_all(config, store, staging, summary, only)
        if gate:
            gate_staged(config, store, staging, summary, dry_run=dry_run)
    return summary


def fetch_all(config: Config, store, staging: Staging, summary: RunSummary,
              only: str | None = None) -> None:
    """Fetch every enabled source; one failing source never stops the others."""
    context = FetchContext(staging, store, config.video)
    for source in enabled_sources(config, only):
        outcome = {"at": now_iso(), "staged": 0, "error": ""}
        try:
            result = source.fetch(context)
            summary.fetched += result.staged
            summary.errors.extend(result.errors)
            outcome["staged"] = result.staged
            if result.videos_left:
                log.info("%s: %d video(s) left at the source: [video] enabled = false",
                         source.name, result.videos_left)
        except SourceError as exc:
            message = f"{source.name}: {exc}"
            log.error(message)
            summary.errors.append(message)
            outcome["error"] = str(exc)
        with store.transaction() as tx:
            store.set_state(tx, source.name, "last_run", json.dumps(outcome))


def gate_staged(config: Config, store, staging: Staging, summary: RunSummary,
                dry_run: bool = False) -> None:
    """The gate phase: decide and file every staged item, counted into ``summary``."""
    if not dry_run:
        moves.replay(store, config, staging)
    catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                    max_pixels=config.gate.max_pixels)
    video_catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                          max_pixels=config.gate.max_pixels)
    index = SignatureIndex.from_store(store)
    videos = VideoIndex.from_store(store)
    for item in staging.items():
        try:
            decision = gate_item(config, store, staging, index, item, dry_run=dry_run,
                                 videos=videos)
        except LibraryError as exc:
            log.error("gate: %s: %s", item.provenance.name, exc)
            summary.errors.append(f"gate: {item.provenance.name}: {exc}")
            break  # the target folder is unusable; the rest waits for the next run
        summary.count(decision)


def gate_item(config: Config, store, staging: Staging, index: SignatureIndex,
              item: StagedItem, *, dry_run: bool = False,
              videos: VideoIndex | None = None) -> Decision | None:
    """Decide on one staged item and file it (or, dry, say what would happen); None when
    it was filed already (a crash came before the clean-up of staging)."""
    if store.has_origin(item.provenance.origin_key) or not item.data_path.exists():
        if not dry_run:
            staging.discard(item)
        return None
    videos = videos if videos is not None else VideoIndex.from_store(store)
    signature, decision = judge(config, store, index, item, videos)
    identifier, displaced = "", None
    if isinstance(signature, VideoSignature) and signature.content_identifier:
        identifier = signature.content_identifier
        decision, displaced = live_photos.pair_motion(config, store, identifier, decision)
    elif isinstance(signature, Signature):
        identifier = live_photos.still_identifier(item.data_path)
        if identifier:
            decision, displaced = live_photos.pair_still(config, store, identifier, decision)
    reason = f": {decision.reason}" if decision.reason else ""
    if dry_run:
        log.info("would %s %s%s", VERB_OF[decision.verdict], item.provenance.name, reason)
        return decision
    motion = None
    if isinstance(signature, Signature) and signature.format == "JPEG" and config.video.enabled:
        motion = _motion_part(config, videos, item, signature, decision)
        if motion is not None and config.video.live_photos == "video":
            decision = live_photos.still_of_motion_photo(decision, motion)
    filing = None
    if isinstance(signature, Signature) and FOLDER_OF[decision.verdict] == "pictures":
        filing = transforms.apply(item, signature, config)
    plan = filing_plan(config, item, signature, decision, filing, displaced, motion)
    for row in moves.carry_out(store, config, plan):
        index.add(store.file(row.path)["id"], row.path, row.signature)
    for path in plan.remove_files:
        index.remove(path)
    if isinstance(signature, VideoSignature):
        _record_video(config, store, videos, plan, signature)
    elif identifier and signature is not None:
        filed = plan.moves[0].target
        live_photos.remember_still(store, identifier, filed.folder, filed.path,
                                   signature.sha256)
    if motion is not None and plan.moves[-1].target.folder == "pictures":
        video_catalog.record(store, config.library.pictures, plan.moves[-1].target.path,
                             motion.signature)
        videos.add(plan.moves[-1].target.path, motion.signature)
    if displaced is not None and displaced.is_video:
        video_catalog.forget(store, [displaced.path])
        videos.remove(displaced.path)
    log.info("%s %s%s", decision.verdict.value, item.provenance.name, reason)
    return decision


def _motion_part(config: Config, videos: VideoIndex, item: StagedItem, signature: Signature,
                 decision: Decision) -> live_photos.MotionPart | None:
    """The video a motion photo JPEG carries, copied out into the staged item and
    decided on (None when the JPEG has none, or it is no usable video)."""
    embedded = live_photos.embedded_video(item.data_path)
    if embedded is None or decision.verdict is Verdict.REJECT:
        return None
    copy = item.directory / "motion.mp4"
    if not copy.exists():
        live_photos.copy_out(item.data_path, *embedded, copy)
    try:
        motion_signature = sign_video(copy, config.gate.max_pixels)
    except NotAVideo as exc:
        log.info("%s: its embedded video is not usable (%s); filed as a photo",
                 item.provenance.name, exc)
        return None
    name = Path(sanitize_name(item.provenance.name)).stem + ".mp4"
    return live_photos.MotionPart(copy, motion_signature, live_photos.motion_decision(
        config, videos, motion_signature, item.provenance.name), name)


def _record_video(config: Config, store, videos: VideoIndex, plan: Plan,
                  signature: VideoSignature) -> None:
    """The videos rows after a video was filed: the new one in, a displaced one out."""
    video_catalog.forget(store, plan.remove_files)
    for path in plan.remove_files:
        videos.remove(path)
    filed = plan.moves[0].target
    if filed.folder == "pictures":
        video_catalog.record(store, config.library.pictures, filed.path, signature)
        videos.add(filed.path, signature)


def judge(config: Config, store, index: SignatureIndex, item: StagedItem,
          videos: VideoIndex | None = None
          ) -> tuple[Signature | VideoSignature | None, Decision]:
    """Sign a staged item and decide on it (a file that is no usable image is rejected)."""
    if container := video_gate.container_of(item):
        videos = videos if videos is not None else VideoIndex.from_store(store)
        return video_gate.judge_video(config, store, videos, item, container)
    if item.size > config.gate.max_file_bytes:
        reason = f"file too large: {item.size / MIB:.1f} MiB (limit " \
                 f"{config.gate.max_file_mb:g} MiB)"
        return None, Decision(Verdict.REJECT, reason=reason)
    try:
        signature = sign_file(item.data_path, config.gate.max_pixels)
    except NotAnImage as exc:
        return None, Decision(Verdict.REJECT, reason=str(exc))
    excluded = store.overridden_partners(signature.sha256)
    return signature, decide(signature, index, store, config.dedupe, excluded)


def filing_plan(config: Config, item: StagedItem, signature: Signature | None,
                decision: Decision, filing: transforms.Filing | None = None,
                displaced: live_photos.Displaced | None = None,
                motion: live_photos.MotionPart | None = None) -> Plan:
    """The plan that files a staged item as decided (targets fixed now, so a replay is
    exact): its bytes (or the transformed ones) to their folder; for a replace, the old
    library copy to quarantine; for a transformed photo, the original kept if asked."""
    provenance = item.provenance
    filed = filing.signature if filing else signature
    taken: set[Path] = set()
    target = _new_place(config, FOLDER_OF[decision.verdict], _name(provenance, filed), taken)
    source = filing.path if filing else item.data_path
    sha256 = filed.sha256 if filed else item.sha256
    evidence = dict(matched_path=decision.matched_path, matched_sha256=decision.matched_sha256,
                    method=decision.method, distance=decision.distance)
    moved = [Move(_staged_place(config, source), target)]
    records = [moves.arrival_record(provenance, sha256, decision.verdict.value, target,
                                    reason=decision.reason, **evidence)]
    if filing and filing.keep_original:
        kept = _new_place(config, "quarantine", _name(provenance, signature), taken)
        moved.append(Move(_staged_place(config, item.data_path), kept))
        records.append(moves.arrival_record(provenance, item.sha256, Verdict.DUPLICATE.value,
                                            kept, reason=filing.keep_original))
    if decision.verdict is Verdict.REPLACE:
        old = decision.matched_path
        move, record = moves.library_quarantine(
            old, decision.matched_sha256,
            _new_place(config, "quarantine", Path(old).name, taken), kept_path=target.path,
            kept_sha256=sha256, method=decision.method, distance=decision.distance,
            reason=f"a larger copy arrived: {target.path}")
        moved.append(move)
        records.append(record)
    if displaced is not None:   # the other part of a Live Photo leaves Pictures
        move, record = moves.library_quarantine(
            displaced.path, displaced.sha256,
            _new_place(config, "quarantine", Path(displaced.path).name, taken),
            kept_path=target.path, kept_sha256=sha256, method="live-photo", distance=0.0,
            reason=displaced.reason)
        moved.append(move)
        records.append(record)
    if motion is not None:      # a motion photo's video, filed on its own (always last)
        place = _new_place(config, FOLDER_OF[motion.decision.verdict], motion.name, taken)
        moved.append(Move(_staged_place(config, motion.path), place))
        records.append(moves.arrival_record(
            provenance, motion.signature.sha256, motion.decision.verdict.value, place,
            reason=motion.decision.reason, matched_path=motion.decision.matched_path,
            matched_sha256=motion.decision.matched_sha256, method=motion.decision.method,
            distance=motion.decision.distance))
    return Plan("move", provenance.name, moves=tuple(moved), decisions=tuple(records),
                add_files=(LibraryRow(target.path, filed),)
                if target.folder == "pictures" and not isinstance(filed, VideoSignature)
                else (),
                remove_files=((decision.matched_path,)
                              if decision.verdict is Verdict.REPLACE else ()) +
                ((displaced.path,) if displaced is not None else ()),
                origin=Origin(provenance.origin_key, item.sha256),
                discard_staged=item.item_id)


def _name(provenance, signature: Signature | None) -> str:
    """The sender's name made safe, with the extension of the bytes' real format."""
    name = sanitize_name(provenance.name)
    if isinstance(signature, VideoSignature):
        return with_video_extension(name, signature.container)
    return with_extension(name, signature.format) if signature is not None else name


def _new_place(config: Config, folder: str, name: str, taken: set[Path]) -> Place:
    """A free name in Pictures, or in today's folder of quarantine or rejected."""
    root = Place(folder, "").resolve(config)
    directory = root if folder == "pictures" else dated_folder(root)
    target, number = unique_target(directory, name), 2
    while target in taken:  # two files of one plan may want the same free name
        stem, suffix = Path(name).stem, Path(name).suffix
        target, number = unique_target(directory, f"{stem} ({number}){suffix}"), number + 1
    taken.add(target)
    return Place(folder, target.relative_to(root).as_posix())


def _staged_place(config: Config, path: Path) -> Place:
    return Place("staging", path.relative_to(config.staging_dir).as_posix())
