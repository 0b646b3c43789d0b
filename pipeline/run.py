"""One run: fetch every source into staging, then the gate phase over staging.

``run_once`` is what `run`, `fetch`, `gate` and every `watch` cycle do, under the instance
lock: ``fetch_all`` asks each enabled source for new photos (one failing source never stops
the others; each source's outcome is kept as its ``last_run`` state for `status`), then
``gate_staged`` files every staged item:

1. finish what a crashed run left in the journal (``moves.replay``);
2. bring the store in step with Pictures (``catalog.refresh``) and load the index;
3. per staged item, oldest first: sign it (one read, one reduced decode), ``gate.decide``
   against the index, run the promotion steps (``transforms.apply``) on a photo going into
   Pictures, build its ``moves.Plan`` (``filing_plan``) and add it to a ``moves.PlanBatch``,
   carried out ``BATCH_PLANS`` at a time (the index sees each plan's rows at once).

Counts and errors go into one ``RunSummary``; turning it into an exit code is ``cli.py``'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import (captions, catalog, hooks, live_photos, moves, removals, transforms,
                      video_catalog, video_gate)
from pipeline.config import MIB, Config
from pipeline.errors import LibraryError, SourceError
from pipeline.formats import SUFFIXES
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
    filed: list[Path] = field(default_factory=list)    # promoted into Pictures: after_promote

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
    if summary.filed:   # after the lock: the command may ask frame-ingest things
        hooks.after_promote(config, summary.filed)
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


BATCH_PLANS = 100   # plans carried out together (``moves.PlanBatch``)


def gate_staged(config: Config, store, staging: Staging, summary: RunSummary,
                dry_run: bool = False) -> None:
    """The gate phase: decide and file every staged item, counted into ``summary``. Plans
    are carried out in batches of ``BATCH_PLANS``, which share the durability work."""
    if not dry_run:
        moves.replay(store, config, staging)
    catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                    max_pixels=config.gate.max_pixels,
                    vanishing=removals.noticer(config, store))
    video_catalog.refresh(store, config.library.pictures, exclude=config.resweep.exclude,
                          max_pixels=config.gate.max_pixels)
    index = SignatureIndex.from_store(store)
    videos = VideoIndex.from_store(store)
    removed = removals.RemovedPhotos.load(store) if config.library.remember_removed else None
    batch = GateBatch(moves.PlanBatch(store, config, staging), summary)
    try:
        for item in staging.items():
            try:
                decision = gate_item(config, store, staging, index, item, dry_run=dry_run,
                                     batch=batch, removed=removed, filed=summary.filed,
                                     videos=videos)
            except LibraryError:
                batch.finish()       # what was planned before it
                raise
            if dry_run:
                summary.count(decision)
            elif len(batch.plans) >= BATCH_PLANS:
                batch.finish()
        batch.finish()
    except LibraryError as exc:
        log.error("gate: %s", exc)
        summary.errors.append(f"gate: {exc}")
        # the target folder is unusable; the rest waits for the next run


@dataclass
class GateBatch:
    """The gate's plans waiting to be carried out together, with what the log says of
    each when it is done, and the names they take (not on disk until then)."""

    plans: moves.PlanBatch
    summary: RunSummary
    said: list[tuple[str, Decision]] = field(default_factory=list)
    taken: set[Path] = field(default_factory=set)

    def finish(self) -> None:
        said, self.said = self.said, []
        self.taken.clear()
        for _, (name, decision) in zip(self.plans.finish(), said):
            reason = f": {decision.reason}" if decision.reason else ""
            log.info("%s %s%s", decision.verdict.value, name, reason)
            self.summary.count(decision)


def gate_item(config: Config, store, staging: Staging, index: SignatureIndex,
              item: StagedItem, *, dry_run: bool = False,
              batch: GateBatch | None = None,
              removed: removals.RemovedPhotos | None = None,
              filed: list[Path] | None = None,
              videos: VideoIndex | None = None) -> Decision | None:
    """Decide on one staged item and plan its filing into ``batch`` (or, dry, say what
    would happen); None when it was filed already (a crash came before the clean-up of
    staging) or is damaged (set aside). ``removed``: the photos removed from the frame;
    ``filed`` collects the paths promoted into Pictures."""
    if store.has_origin(item.provenance.origin_key):
        if not dry_run:
            staging.discard(item)
        return None
    if not item.data_path.is_file():
        if not dry_run:
            staging.set_aside(item.directory, "the staged bytes are gone")
        return None
    videos = videos if videos is not None else VideoIndex.from_store(store)
    signature, decision = judge(config, store, index, item, removed, videos)
    if signature is not None and signature.sha256 != item.sha256:
        if not dry_run:
            staging.set_aside(item.directory, f"the staged bytes changed since they were "
                              f"fetched (SHA-256 {signature.sha256[:16]}, fetched as "
                              f"{item.sha256[:16]})")
        return None
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
    plan = filing_plan(config, item, signature, decision, filing, batch.taken, displaced,
                       motion)
    # videos and the parts of a Live Photo keep rows of their own in step with the files:
    # their plan is carried out at once, after the batch planned before it
    at_once = isinstance(signature, VideoSignature) or bool(identifier) or \
        motion is not None or displaced is not None
    if at_once:
        batch.finish()
        added = moves.carry_out(store, config, plan)
    else:
        batch.plans.add(plan)
        batch.said.append((item.provenance.name, decision))
        added = list(plan.add_files)    # the next decision sees it before it is filed
    for row in added:
        index.add(store.file(row.path)["id"], row.path, row.signature)
        if filed is not None:
            filed.append(config.library.pictures / row.path)
    for path in plan.remove_files:
        index.remove(path)
    if isinstance(signature, VideoSignature):
        _record_video(config, store, videos, plan, signature)
        if filed is not None and plan.moves[0].target.folder == "pictures":
            filed.append(config.library.pictures / plan.moves[0].target.path)
    elif identifier and signature is not None:
        still = plan.moves[0].target
        live_photos.remember_still(store, identifier, still.folder, still.path,
                                   signature.sha256)
    if motion is not None and plan.moves[-1].target.folder == "pictures":
        video_catalog.record(store, config.library.pictures, plan.moves[-1].target.path,
                             motion.signature)
        videos.add(plan.moves[-1].target.path, motion.signature)
    if displaced is not None and displaced.is_video:
        video_catalog.forget(store, [displaced.path])
        videos.remove(displaced.path)
    if at_once:
        log.info("%s %s%s", decision.verdict.value, item.provenance.name, reason)
        batch.summary.count(decision)
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
          removed: removals.RemovedPhotos | None = None, videos: VideoIndex | None = None
          ) -> tuple[Signature | VideoSignature | None, Decision]:
    """Sign a staged item and decide on it (a file that is no usable image is rejected):
    bytes filed before in another form are that file's exact duplicate; a photo the
    library does not hold but that was removed from the frame is quarantined."""
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
    matched_as = _as_filed(store, signature)
    decision = decide(matched_as, index, store, config.dedupe, excluded)
    if decision.verdict is Verdict.PROMOTE and removed is not None:
        decision = removed.decide(matched_as, config.dedupe, excluded) or decision
    return signature, decision


def _as_filed(store, signature: Signature) -> Signature:
    """The signature to match: bytes that a promotion step changed on the way in (a
    captioned or converted copy is in Pictures) are looked up as what was filed, so
    ``exact`` knows them when they are sent again."""
    filed = store.filed_as(signature.sha256)
    return dataclasses.replace(signature, sha256=filed) if filed else signature


def filing_plan(config: Config, item: StagedItem, signature: Signature | None,
                decision: Decision, filing: transforms.Filing | None = None,
                taken: set[Path] | None = None,
                displaced: live_photos.Displaced | None = None,
                motion: live_photos.MotionPart | None = None) -> Plan:
    """The plan that files a staged item as decided (targets fixed now, so a replay is
    exact): its bytes (or the transformed ones) to their folder; for a replace, the old
    library copy to quarantine; for a transformed photo, the original kept if asked."""
    provenance = item.provenance
    filed = filing.signature if filing else signature
    taken = set() if taken is None else taken   # names planned but not on disk yet
    converted = filing is not None and signature is not None and \
        filing.signature.format != signature.format
    target = _new_place(config, FOLDER_OF[decision.verdict],
                        _name(provenance, filed, converted), taken)
    source = filing.path if filing else item.data_path
    sha256 = filed.sha256 if filed else item.sha256
    evidence = dict(matched_path=decision.matched_path, matched_sha256=decision.matched_sha256,
                    method=decision.method, distance=decision.distance)
    moved = [Move(_staged_place(config, source), target)]
    shown_captions = None if not isinstance(filed, Signature) else captions.recorded(
        config, provenance, target.folder, source, filed.format)
    records = [moves.arrival_record(provenance, sha256, decision.verdict.value, target,
                                    reason=decision.reason, captions=shown_captions,
                                    **evidence)]
    if filing and filing.keep_original:
        kept = _new_place(config, "quarantine", _name(provenance, signature), taken)
        moved.append(Move(_staged_place(config, item.data_path), kept))
        records.append(moves.arrival_record(provenance, item.sha256, Verdict.DUPLICATE.value,
                                            kept, reason=filing.keep_original,
                                            matched_path=target.path, matched_sha256=sha256))
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


def _name(provenance, signature: Signature | None, converted: bool = False) -> str:
    """The sender's name made safe, with the extension of the bytes' real format (for a
    photo converted to another format, instead of the old one: photo.webp -> photo.jpg)."""
    name = sanitize_name(provenance.name)
    if isinstance(signature, VideoSignature):
        return with_video_extension(name, signature.container)
    if converted and Path(name).suffix.lower() in SUFFIXES and Path(name).stem:
        name = Path(name).stem
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
