"""The things that flow through the pipeline: a staged photo and the gate's decision on it.

source -> staging -> gate -> library: a source turns whatever it fetched into a
``StagedItem`` (bytes durably on disk plus ``Provenance``); the gate reads it and returns a
``Decision``; the library carries the decision out.
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
