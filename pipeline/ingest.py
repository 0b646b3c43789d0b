"""The gate phase: every staged item is signed, decided and carried out, crash-safely.

For each staged item: sign it (one read, one reduced decode), ``gate.decide`` against the
index of the library, then carry the decision out through a journal:

1. the plan (which file moves where, the decision to record) is written to the store;
2. the moves are made (``library.move_file``: durable and idempotent);
3. one transaction records the decision, the library rows and the origin, and drops the
   plan; then the staged copy is discarded.

A crash after 1 or 2 leaves a plan that the next run replays before anything else, so a
photo is never lost, never promoted twice and never quarantined as a duplicate of itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import catalog, resweep
from pipeline.config import MIB, Config
from pipeline.errors import LibraryError
from pipeline.gate import decide
from pipeline.index import SignatureIndex
from pipeline.items import Decision, StagedItem, Verdict
from pipeline.library import dated_folder, move_file, sanitize_name, unique_target, with_extension
from pipeline.signatures import NotAnImage, Signature, sign_file
from pipeline.staging import Staging

log = logging.getLogger("frame-ingest")

FOLDERS = ("pictures", "quarantine", "rejected")


@dataclass
class GateReport:
    promoted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class Gate:
    """Decides and files every staged item against one library."""

    def __init__(self, config: Config, store, staging: Staging, dry_run: bool = False):
        self.config = config
        self.store = store
        self.staging = staging
        self.dry_run = dry_run
        self.roots = {"pictures": config.library.pictures,
                      "quarantine": config.library.quarantine,
                      "rejected": config.library.rejected}
        self.index: SignatureIndex | None = None

    def run(self) -> GateReport:
        report = GateReport()
        if not self.dry_run:
            self.replay_journal()
        catalog.refresh(self.store, self.roots["pictures"], exclude=self.config.resweep.exclude,
                        max_pixels=self.config.gate.max_pixels)
        self.index = SignatureIndex.from_store(self.store)
        for item in self.staging.items():
            try:
                self.gate_item(item, report)
            except LibraryError as exc:
                log.error("gate: %s: %s", item.provenance.name, exc)
                report.errors.append(f"gate: {item.provenance.name}: {exc}")
                break  # the target folder is unusable; the rest waits for the next run
        return report

    def gate_item(self, item: StagedItem, report: GateReport) -> None:
        if self.store.has_origin(item.provenance.origin_key) or not item.data_path.exists():
            if not self.dry_run:  # filed already; a crash came before the clean-up
                self.staging.discard(item)
            return
        signature, decision = self.judge(item)
        plan = self.plan(item, signature, decision)
        verb = {"promoted": "promote", "quarantined": "quarantine", "replaced": "promote",
                "rejected": "reject"}[decision.verdict.value]
        if self.dry_run:
            log.info("would %s %s%s", verb, item.provenance.name,
                     f": {decision.reason}" if decision.reason else "")
        else:
            self.store_plan(item, plan)
            self.carry_out(item, plan, signature)
            log.info("%s %s%s", decision.verdict.value, item.provenance.name,
                     f": {decision.reason}" if decision.reason else "")
        report.promoted += decision.verdict in (Verdict.PROMOTE, Verdict.REPLACE)
        report.duplicates += decision.verdict in (Verdict.DUPLICATE, Verdict.REPLACE)
        report.rejected += decision.verdict is Verdict.REJECT

    def judge(self, item: StagedItem) -> tuple[Signature | None, Decision]:
        if item.size > self.config.gate.max_file_bytes:
            reason = f"file too large: {item.size / MIB:.1f} MiB (limit " \
                     f"{self.config.gate.max_file_mb:g} MiB)"
            return None, Decision(Verdict.REJECT, reason=reason)
        try:
            signature = sign_file(item.data_path, self.config.gate.max_pixels)
        except NotAnImage as exc:
            return None, Decision(Verdict.REJECT, reason=str(exc))
        excluded = self.store.overridden_partners(signature.sha256)
        decision = decide(signature, self.index, self.store, self.config.dedupe, excluded)
        return signature, decision

    def plan(self, item: StagedItem, signature: Signature | None, decision: Decision) -> dict:
        """Where each file goes, fixed before anything moves (so a replay is exact)."""
        name = sanitize_name(item.provenance.name)
        if signature is not None:
            name = with_extension(name, signature.format)
        folder = {Verdict.PROMOTE: "pictures", Verdict.REPLACE: "pictures",
                  Verdict.DUPLICATE: "quarantine", Verdict.REJECT: "rejected"}[decision.verdict]
        directory = self.roots[folder] if folder == "pictures" else \
            dated_folder(self.roots[folder])
        target = unique_target(directory, name)
        plan = {"verdict": decision.verdict.value, "folder": folder,
                "target": str(target), "reason": decision.reason,
                "matched_path": decision.matched_path, "method": decision.method,
                "distance": decision.distance, "displaced": None}
        if decision.verdict is Verdict.REPLACE:
            old = decision.matched_path
            old_target = unique_target(dated_folder(self.roots["quarantine"]),
                                       os.path.basename(old))
            plan["displaced"] = {"path": old, "target": str(old_target),
                                 "sha256": decision.matched_sha256}
        if decision.matched_path:
            plan["matched_sha256"] = decision.matched_sha256
        return plan

    def store_plan(self, item: StagedItem, plan: dict) -> None:
        with self.store.transaction() as tx:
            self.store.add_journal(tx, item.item_id, plan)

    def carry_out(self, item: StagedItem, plan: dict, signature: Signature | None) -> None:
        """Make the moves of a plan, then record everything in one transaction."""
        displaced = plan.get("displaced")
        target = Path(plan["target"])
        move_file(item.data_path, target)
        if displaced:
            move_file(self.roots["pictures"] / displaced["path"], Path(displaced["target"]))
        if signature is None and plan["folder"] == "pictures":
            signature = sign_file(target, self.config.gate.max_pixels)  # replay after a crash
        self.finish(item, plan, signature)

    def finish(self, item: StagedItem, plan: dict, signature: Signature | None) -> None:
        target = Path(plan["target"])
        folder = plan["folder"]
        relative = self._relative(folder, target)
        provenance = item.provenance
        with self.store.transaction() as tx:
            self.store.record_decision(
                tx, verdict=plan["verdict"], folder=folder, path=relative,
                name=provenance.name, sha256=item.sha256,
                matched_path=plan["matched_path"] or None,
                matched_sha256=plan.get("matched_sha256"), method=plan["method"] or None,
                distance=plan["distance"] if plan["method"] else None,
                reason=plan["reason"] or None, source=provenance.source,
                origin=provenance.origin_key, sender=provenance.sender,
                subject=provenance.subject, message_id=provenance.message_id,
                received=provenance.received)
            if folder == "pictures":
                status = target.stat()
                self.store.put_file(tx, relative, status.st_size, status.st_mtime_ns, signature)
            displaced = plan.get("displaced")
            if displaced:
                self._record_displaced(tx, displaced, relative, plan)
            self.store.add_origin(tx, provenance.origin_key, item.sha256)
            self.store.remove_journal(tx, item.item_id)
        self.staging.discard(item)
        if self.index is not None and folder == "pictures":
            row = self.store.file(relative)
            self.index.add(row["id"], relative, signature)
            if displaced:
                self.index.remove(displaced["path"])

    def _record_displaced(self, tx, displaced: dict, new_path: str, plan: dict) -> None:
        self.store.remove_files(tx, [displaced["path"]])
        target = Path(displaced["target"])
        self.store.record_decision(
            tx, verdict="quarantined", folder="quarantine",
            path=self._relative("quarantine", target), name=os.path.basename(displaced["path"]),
            sha256=displaced["sha256"], matched_path=new_path, matched_sha256=None,
            method=plan["method"], distance=plan["distance"],
            reason=f"a larger copy arrived: {new_path}", source="library",
            origin=f"library:{displaced['path']}")

    def _relative(self, folder: str, target: Path) -> str:
        return target.relative_to(self.roots[folder]).as_posix()

    def replay_journal(self) -> None:
        """Finish every plan a crashed run (or resweep) left behind, before anything else."""
        resweep.replay_journal(self.store, self.config)
        for item_id, plan in self.store.journal():
            if item_id.startswith(resweep.JOURNAL_PREFIX):
                continue
            directory = self.staging.root / item_id
            if not (directory / "meta.json").exists():
                with self.store.transaction() as tx:
                    self.store.remove_journal(tx, item_id)
                continue
            item = self.staging.load(directory)
            log.info("finishing the interrupted move of %s", item.provenance.name)
            if not item.data_path.exists() and not Path(plan["target"]).exists():
                with self.store.transaction() as tx:
                    self.store.remove_journal(tx, item_id)
                continue
            self.carry_out(item, plan, None)
