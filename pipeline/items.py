"""The things that flow through the pipeline: a staged photo, the gate's decision on it, and
the record of what was done.

source -> staging -> gate -> transforms -> moves -> library: a source turns whatever it
fetched into a ``StagedItem`` (bytes durably on disk plus ``Provenance``); ``gate.decide``
returns a ``Decision``; ``moves.carry_out`` carries out a ``moves.Plan`` and writes one
``DecisionRecord`` per file it put somewhere into the store's decision log.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path


class Verdict(enum.Enum):
    """What happens to a staged file."""

    PROMOTE = "promoted"        # unique: into Pictures
    DUPLICATE = "quarantined"   # a copy of a library file: into quarantine
    REPLACE = "replaced"        # a better copy of a library file: newcomer in, old copy out
    REJECT = "rejected"         # not a usable image: into rejected, with the reason


@dataclass(frozen=True)
class Provenance:
    """Where a staged file came from; travels with it into the store's decision log."""

    source: str                 # "folder", "imap", "dropbox"
    origin_id: str              # unique within the source: path+hash, uid+part, id+content_hash
    name: str                   # the file name the sender gave it (unsanitised)
    received: str = ""          # ISO 8601 time the source got it
    sender: str = ""            # mail From, Dropbox modifier, or the drop folder path
    subject: str = ""
    message_id: str = ""
    extra: dict = field(default_factory=dict)
    # What captions are made of (docs/captions.md); items staged before these existed
    # read back with them empty and ``pipeline/captions.py`` falls back on the above.
    sender_name: str = ""       # mail From display name ("" when none)
    body: str = ""              # the first line of the mail's own words (``mail.first_line``)
    date: str = ""              # YYYY-MM-DD: mail Date, Dropbox client_modified, file mtime
    folder: str = ""            # Dropbox or inbox sub-folder it came from, relative ("" at top)

    @property
    def origin_key(self) -> str:
        return f"{self.source}:{self.origin_id}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Provenance":
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


@dataclass(frozen=True)
class StagedItem:
    """A file durably in the staging area: ``directory`` holds ``data`` and ``meta.json``."""

    item_id: str
    directory: Path
    provenance: Provenance
    sha256: str
    size: int

    @property
    def data_path(self) -> Path:
        return self.directory / "data"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one staged file, with the evidence for it."""

    verdict: Verdict
    reason: str = ""
    matched_path: str = ""      # library file it duplicates (relative to Pictures)
    matched_sha256: str = ""    # that library file's SHA-256 (what a restore remembers)
    method: str = ""            # "exact", "rms", "similar"
    distance: float = 0.0       # the confirm distance that decided it


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the store's decision log: where a file went, why, and where it came from.

    Empty evidence is ``None`` (stored as NULL), so a record read back from a journaled
    plan is written exactly as it would have been the first time.
    """

    verdict: str                        # promoted | quarantined | replaced | rejected
    folder: str                         # pictures | quarantine | rejected: where it now is
    path: str                           # relative to that folder, '/'-separated
    name: str                           # the name it arrived with
    sha256: str | None = None           # the bytes now at folder/path
    matched_path: str | None = None     # the library file it was taken for
    matched_sha256: str | None = None
    method: str | None = None           # exact | rms | similar
    distance: float | None = None
    reason: str | None = None
    source: str | None = None           # folder | imap | dropbox | resweep (a library file)
    origin: str | None = None           # the origin key (``Provenance.origin_key``)
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None
    received: str | None = None
    decided_at: str = ""                # ISO 8601; empty: the moment it is recorded
    title: str | None = None            # [captions]: what the file in Pictures carries,
    caption: str | None = None          # or would carry (a quarantined arrival)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DecisionRecord":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
