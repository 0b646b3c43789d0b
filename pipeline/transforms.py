"""The step between deciding and filing: plain functions applied to a promoted photo.

After ``gate.decide`` says a staged photo goes into Pictures (promote or replace), each
function in ``STEPS`` is called in turn with a ``Promotion``: the path of the bytes to be
filed, their signature, the provenance and the configuration. A step returns ``None``
(nothing to change) or a ``Transformed``: new encoded bytes, and optionally a reason to
keep the bytes as they arrived in quarantine (for a format conversion). Like beets'
importer stages, steps are a list of plain functions over one object; they know nothing of
the journal, the store or the folders.

``apply`` writes each step's bytes durably into the staged item's own directory (temp,
fsync, rename), signs them again, and hands the result (``Filing``) to the gate's plan
builder, which files it through the same ``moves.Plan`` as any photo: the store keeps the
SHA-256 and signature of what is really in Pictures. A crash before the plan is journaled
simply transforms again on the next run; after, the journaled plan names the written file.

Steps: ``conversion.convert_for_frame`` (a JPEG for a format the frame cannot show,
``[library] frame_formats``). Adding one is a function and a line in ``STEPS``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import Config
from pipeline.conversion import convert_for_frame
from pipeline.items import Provenance, StagedItem
from pipeline.signatures import NotAnImage, Signature, sign_bytes
from pipeline.staging import fsync_directory

log = logging.getLogger("frame-ingest")


@dataclass(frozen=True)
class Promotion:
    """What a step is given: the bytes about to be filed, and what is known about them."""

    path: Path
    signature: Signature
    provenance: Provenance
    config: Config


@dataclass(frozen=True)
class Transformed:
    """What a step returns when it changes the photo."""

    data: bytes
    keep_original: str = ""     # non-empty: keep the arrived bytes in quarantine, this reason


Step = Callable[[Promotion], "Transformed | None"]

STEPS: list[Step] = [
    convert_for_frame,
]


@dataclass(frozen=True)
class Filing:
    """What goes into Pictures: the file, its signature, and whether the original stays."""

    path: Path
    signature: Signature
    keep_original: str = ""


def apply(item: StagedItem, signature: Signature, config: Config,
          steps: list[Step] | None = None) -> Filing:
    """Run ``steps`` (default ``STEPS``) over a photo to be promoted; each changed result is
    written durably next to the staged data and signed again."""
    filing = Filing(item.data_path, signature)
    for number, step in enumerate(STEPS if steps is None else steps, start=1):
        result = step(Promotion(filing.path, filing.signature, item.provenance, config))
        if result is None:
            continue
        try:
            new_signature = sign_bytes(result.data, config.gate.max_pixels)
        except NotAnImage as exc:  # a step's fault, not the photo's: file it unchanged
            log.warning("%s: %s made no usable image (%s); left as it was",
                        item.provenance.name, getattr(step, "__name__", step), exc)
            continue
        path = write_durably(item.directory / f"transformed-{number}", result.data)
        filing = Filing(path, new_signature, filing.keep_original or result.keep_original)
    return filing


def write_durably(target: Path, data: bytes) -> Path:
    """``data`` under ``target``: a temp file, fsynced, renamed into place, folder fsynced."""
    temporary = target.with_name(f".tmp-{target.name}")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, target)
    fsync_directory(target.parent)
    return target

