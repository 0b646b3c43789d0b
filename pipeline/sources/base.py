"""The Source protocol: what every fetcher (folder, IMAP, Dropbox) implements.

A source's ``fetch`` finds new photos, writes each into the staging area with its
provenance (``context.stage``), and only then acknowledges it at the source (removes it
from the inbox, flags the mail, advances the cursor). ``context.already_taken`` tells
whether an origin was staged or gated before, so a fetch repeated after a crash stages
nothing twice. Library exceptions are translated to SourceError inside the adapter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from pipeline.config import VideoConfig
from pipeline.items import Provenance, StagedItem
from pipeline.staging import Staging, StagingBatch

log = logging.getLogger("frame-ingest")


@dataclass
class FetchResult:
    staged: int = 0             # image files newly staged by this fetch
    skipped: int = 0            # not taken, each with a logged reason
    waiting: int = 0            # seen but left for a later run (still being written)
    errors: list[str] = field(default_factory=list)
    videos_left: int = 0        # videos not taken because [video] enabled = false


class FetchContext:
    """What a source may use: the staging area and the store's memory of origins."""

    def __init__(self, staging: Staging, store, video: VideoConfig | None = None):
        self.staging = staging
        self.store = store
        self.video = video if video is not None else VideoConfig()   # [video]

    def already_taken(self, provenance: Provenance) -> bool:
        return self.staging.contains(provenance) or self.store.has_origin(provenance.origin_key)

    def batch(self) -> StagingBatch:
        """Items staged together and made durable by one ``commit``: a source that stages
        many small files acknowledges each batch only after its commit."""
        return self.staging.batch()

    def stage(self, stream: BinaryIO, provenance: Provenance, **limits) -> StagedItem:
        item = self.staging.stage(stream, provenance, **limits)
        log.info("staged %s from %s", provenance.name, provenance.source)
        return item


class Source(Protocol):
    name: str

    def fetch(self, context: FetchContext) -> FetchResult:
        """Stage everything new; acknowledge each origin only after it is staged."""

    def check(self) -> str:
        """Verify the source can be reached (no fetching); return a one-line OK message or
        raise SourceError saying what is wrong."""
