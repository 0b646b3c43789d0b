"""What each page lists, read from the store: one function per page, one ``Page`` back.

Every text is passed through ``text.shown`` here (the templates escape it for HTML);
files are found from their decision row only (``actions.inside``: never outside their
folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipeline import video_decode
from pipeline.config import Config
from pipeline.sources import source_names
from pipeline.sources.senders import is_allowed
from pipeline.text import shown
from pipeline.video_formats import sniff_video_file
from pipeline.web.actions import inside

PER_PAGE = 20
STALE_SECONDS = 3600


@dataclass
class Page:
    title: str
    number: int = 1
    count: int = 0
    entries: list[dict] = field(default_factory=list)
    note: str = ""

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // PER_PAGE))


def _offset(number: int) -> int:
    return (number - 1) * PER_PAGE


def when(stamp: str | None) -> str:
    """An ISO 8601 time as people read it: ``2026-12-02 12:47 UTC`` (as stored if odd)."""
    try:
        moment = datetime.fromisoformat(stamp or "")
    except ValueError:
        return shown(stamp or "")
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _origin(row) -> dict:
    return {"source": shown(row["source"] or ""), "sender": shown(row["sender"] or ""),
            "subject": shown(row["subject"] or ""), "received": when(row["received"]),
            "when": when(row["decided_at"]), "name": shown(row["name"] or ""),
            "path": shown(row["path"]), "id": row["id"]}


def length(path) -> str:
    """``"video, 12 s"`` for a video file (its poster is the preview), else ``""``."""
    try:
        if path is None or not sniff_video_file(path):
            return ""
    except OSError:
        return ""
    seconds = video_decode.duration_seconds(path)
    return "video" if seconds is None else f"video, {seconds:.0f} s"


def arrivals(config: Config, store, number: int) -> Page:
    page = Page("Recent arrivals", number, store.count_in("pictures"))
    for row in store.decisions_page("pictures", PER_PAGE, _offset(number)):
        entry = _origin(row)
        file = inside(config.library.pictures, row["path"])
        entry["on_frame"] = file is not None
        entry["length"] = length(file)
        page.entries.append(entry)
    return page


def quarantine(config: Config, store, number: int) -> Page:
    page = Page("Quarantine", number, store.count_in("quarantine"))
    for row in store.decisions_page("quarantine", PER_PAGE, _offset(number)):
        entry = _origin(row)
        file = inside(config.library.quarantine, row["path"])
        entry.update(duplicate_of=shown(row["matched_path"] or ""),
                     method=shown(row["method"] or ""), reason=shown(row["reason"] or ""),
                     exists=file is not None, length=length(file),
                     matched=matched_file_of(config, store, row["id"]) is not None,
                     removed=inside(config.library.pictures, row["matched_path"] or "")
                     is None and store.removed_kept(row["matched_sha256"]) is not None)
        page.entries.append(entry)
    return page


def rejected(config: Config, store, number: int) -> Page:
    page = Page("Rejected", number, store.count_in("rejected"))
    for row in store.decisions_page("rejected", PER_PAGE, _offset(number)):
        entry = _origin(row)
        entry["reason"] = shown(row["reason"] or "")
        page.entries.append(entry)
    return page


def removed(config: Config, store, number: int) -> Page:
    """Photos taken off the frame (``removals.list_removed``), newest first."""
    from pipeline import removals
    rows = removals.list_removed(store, PER_PAGE + 1, _offset(number))
    page = Page("Removed from the frame", number, _offset(number) + len(rows))
    folder = config.library.removed_folder
    for row in rows[:PER_PAGE]:
        kept = bool(row.get("kept")) and inside(folder, row["kept"]) is not None
        page.entries.append({"id": row["id"], "path": shown(row["path"]),
                             "kept": shown(row.get("kept") or ""), "on_disk": kept,
                             "when": when(row.get("removed_at")),
                             "folder": shown(folder)})
    return page


def sources(config: Config, store, number: int) -> Page:
    page = Page("Sources")
    for name in source_names():
        enabled = getattr(config, name).enabled
        raw = store.get_state(name, "last_run")
        last = json.loads(raw) if raw else None
        page.entries.append({"name": name, "enabled": enabled,
                             "at": when(last["at"]) if last else "",
                             "staged": last.get("staged", 0) if last else 0,
                             "error": shown(last.get("error", "")) if last else "",
                             "advice": advice(name, enabled, last)})
    page.count = len(page.entries)
    return page


def advice(name: str, enabled: bool, last: dict | None) -> str:
    """What to do about a source, in a sentence ("" when all is well)."""
    if not enabled:
        return f"Not used: set enabled = true in [sources.{name}] to use it."
    if last is None:
        return "No run yet: the timer starts one every 15 minutes (systemctl status " \
               "frame-ingest.timer)."
    if last.get("error"):
        fixes = {"imap": "check [sources.imap] (host, username, password) and run "
                         "`frame-ingest check` on the Pi; an expired Microsoft sign-in needs "
                         "`frame-ingest imap-auth`.",
                 "dropbox": "run `frame-ingest check` on the Pi; if the link to Dropbox "
                            "was revoked, run `frame-ingest dropbox-auth` again.",
                 "folder": "check that the drop folder exists and frame-ingest may read it."}
        return "The last run failed: " + fixes.get(name, "run `frame-ingest check`.")
    try:
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(last["at"])).total_seconds()
    except (KeyError, ValueError, TypeError):
        return ""
    if age > STALE_SECONDS:
        return "No run for over an hour: check `systemctl status frame-ingest.timer`."
    return ""


def senders(config: Config, store, number: int) -> Page:
    page = Page("Refused senders", number, store.count_refused_senders())
    allowed = tuple(config.imap.allowed_senders)
    for row in store.refused_senders(PER_PAGE, _offset(number)):
        page.entries.append({
            "id": row["id"], "address": shown(row["address"]),
            "display": shown(row["display"] or ""), "subject": shown(row["subject"] or ""),
            "messages": row["messages"], "when": when(row["last_refused_at"]),
            "allowed": config.imap.allow_any_sender or is_allowed(row["address"], allowed)})
    if not config.imap.processed_folder:
        page.note = ("processed_folder is empty, so refused mail stays in the inbox above the "
                     "last processed message and is not fetched again by itself.")
    return page


PAGES = {"arrivals": arrivals, "quarantine": quarantine, "rejected": rejected,
         "removed": removed, "senders": senders, "sources": sources}


def file_of(config: Config, store, decision_id: int):
    """The file decision ``decision_id`` put somewhere, if it is still there."""
    row = store.decision(decision_id)
    roots = {"pictures": config.library.pictures, "quarantine": config.library.quarantine,
             "rejected": config.library.rejected}
    if row is None or row["folder"] not in roots:
        return None
    return inside(roots[row["folder"]], row["path"])


def removed_file_of(config: Config, store, removal_id: int):
    """The kept file of removal ``removal_id`` in ``[library] removed_folder``."""
    row = store.removed_row(removal_id)
    if row is None or not row["kept"]:
        return None
    return inside(config.library.removed_folder, row["kept"])


def matched_file_of(config: Config, store, decision_id: int):
    """The library photo decision ``decision_id`` took its file for a copy of (or, when it
    was taken for a photo removed from the frame, that photo in removed_folder)."""
    row = store.decision(decision_id)
    if row is None or not row["matched_path"]:
        return None
    on_frame = inside(config.library.pictures, row["matched_path"])
    if on_frame is not None:
        return on_frame
    kept = store.removed_kept(row["matched_sha256"])   # taken for a removed photo
    return inside(config.library.removed_folder, kept) if kept else None
