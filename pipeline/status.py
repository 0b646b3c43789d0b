"""What `frame-ingest status` reports: library size, staging, quarantine, rejected, sources."""

from __future__ import annotations

import json

from pipeline.config import Config
from pipeline.sources import source_names
from pipeline.staging import Staging
from pipeline.text import shown


def gather_status(config: Config, store) -> dict:
    sources = {}
    for name in source_names():
        raw = store.get_state(name, "last_run")
        sources[name] = json.loads(raw) if raw else None
    recent = store.recent_decisions(10)
    return {
        "library_files": store.count_files(),
        "undecodable_library_files": len(store.undecodable_files()),
        "staged": Staging(config.staging_dir).count(),
        "quarantined": len(store.decisions_in("quarantine")),
        "rejected": len(store.decisions_in("rejected")),
        "removed_remembered": store.count_removed(),
        "decisions": store.counts(),
        "sources": sources,
        "recent": [dict(row) for row in recent],
        "pictures": str(config.library.pictures),
        "config": str(config.path) if config.path else "built-in defaults",
    }


def format_status(status: dict) -> str:
    lines = [f"library:     {status['library_files']} photos in {status['pictures']}",
             f"staged:      {status['staged']} waiting for the gate",
             f"quarantined: {status['quarantined']}",
             f"rejected:    {status['rejected']}",
             f"removed:     {status['removed_remembered']} photos removed from the frame "
             "remembered"]
    if status["undecodable_library_files"]:
        lines.append(f"undecodable: {status['undecodable_library_files']} library files")
    for name, last in status["sources"].items():
        if last is None:
            lines.append(f"source {name}: never run")
        else:
            result = f"error: {last['error']}" if last.get("error") else \
                f"{last['staged']} staged"
            lines.append(f"source {name}: last run {last['at']}, {result}")
    for row in status["recent"]:
        came = row["source"] + (f" from {row['sender']}" if row["sender"] else "")
        subject = f' "{row["subject"]}"' if row["subject"] else ""
        lines.append(f"  {row['decided_at']} {row['verdict']:<11} {row['name']} "
                     f"({came}{subject})")
    lines.append(f"config:      {status['config']}")
    return "\n".join(shown(line) for line in lines)
