"""Live Photos: a still and a short MOV that belong together, recognised by their id.

An iPhone writes the same identifier into both parts: in the MOV as the QuickTime key
``com.apple.quicktime.content.identifier`` (``video_decode.Probe.content_identifier``),
in the still (HEIC or JPEG) as tag 0x0011 of its Apple maker note (ExifTool calls it
MediaGroupUUID) or, in exported copies, as XMP ``apple-fi:ContentIdentifier``. The pair is
found by that id only, never by file name, whatever order and source the parts come in:
each still with an id is remembered (store ``live_stills``), each video's id is in its
``videos`` row.

``[video] live_photos`` says which part the frame shows:

- ``still`` (default): the still is filed; the motion part goes to quarantine with the
  reason (when the MOV came first and is in Pictures already, it is moved out then);
- ``video``: the motion part is filed, the still goes to quarantine the same way;
- ``both``: each part is filed (and deduplicated) on its own.

A motion part whose still never comes is a video like any other.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from pipeline.items import Decision, Verdict
from pipeline.signatures import register_heif

MAKER_NOTE = 0x927C
EXIF_IFD = 0x8769
APPLE_CONTENT_ID = 0x0011
_XMP_ID = re.compile(rb"ContentIdentifier(?:=\"|>)([^\"<]{1,128})")


@dataclass(frozen=True)
class Displaced:
    """A part already in Pictures that has to leave it because its partner arrived."""

    path: str
    sha256: str
    is_video: bool
    reason: str


def still_identifier(path) -> str:
    """The Live Photo id of a still (JPEG, HEIC), or "" when it has none."""
    register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                xmp = image.info.get("xmp") or b""
                note = image.getexif().get_ifd(EXIF_IFD).get(MAKER_NOTE) or b""
    except Exception:       # noqa: BLE001  any unreadable header: simply no id
        return ""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    return apple_maker_note_identifier(note) or _xmp_identifier(xmp)


def apple_maker_note_identifier(note: bytes) -> str:
    """Tag 0x0011 of an Apple maker note ("Apple iOS\\0", version, "MM", then an IFD whose
    offsets count from the note's start)."""
    if not isinstance(note, bytes) or not note.startswith(b"Apple iOS\0") or \
            note[12:14] != b"MM":
        return ""
    try:
        count, = struct.unpack_from(">H", note, 14)
        for number in range(min(count, 256)):
            tag, kind, length, value = struct.unpack_from(">HHI4s", note, 16 + 12 * number)
            if tag == APPLE_CONTENT_ID and kind == 2:
                raw = value[:length] if length <= 4 else \
                    note[struct.unpack(">I", value)[0]:][:length]
                return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    except struct.error:
        return ""
    return ""


def _xmp_identifier(xmp: bytes) -> str:
    found = _XMP_ID.search(xmp)
    return found.group(1).decode("utf-8", "replace").strip() if found else ""


def _exists(config, folder: str, path: str) -> bool:
    root = config.library.pictures if folder == "pictures" else config.library.quarantine
    return (root / path).is_file()


def pair_still(config, store, identifier: str, decision: Decision
               ) -> tuple[Decision, Displaced | None]:
    """A still with a Live Photo id arrives: its decision, and the motion part to move out
    of Pictures (``still``), or the still itself to quarantine (``video``)."""
    mode = config.video.live_photos
    motion = [row for row in store.videos_with_identifier(identifier)
              if _exists(config, "pictures", row["path"])]
    if not motion or mode == "both" or decision.verdict is Verdict.REJECT:
        return decision, None
    video = motion[0]
    if mode == "video":
        return Decision(Verdict.DUPLICATE, reason=(
            f"the still of a Live Photo whose motion part {video['path']} is on the frame "
            f"([video] live_photos = \"video\")"), matched_path=video["path"],
            matched_sha256=video["sha256"], method="live-photo"), None
    if decision.verdict is Verdict.DUPLICATE:
        return decision, None       # a copy of a still already filed: nothing changes
    return decision, Displaced(video["path"], video["sha256"], True, (
        "the motion part of a Live Photo whose still arrived "
        "([video] live_photos = \"still\")"))


def pair_motion(config, store, identifier: str, decision: Decision
                ) -> tuple[Decision, Displaced | None]:
    """A video with a Live Photo id arrives: the same rules from the other side."""
    mode = config.video.live_photos
    stills = [row for row in store.live_stills(identifier)
              if _exists(config, row["folder"], row["path"])]
    if not stills or mode == "both" or decision.verdict is Verdict.REJECT:
        return decision, None
    in_pictures = [row for row in stills if row["folder"] == "pictures"]
    still = (in_pictures or stills)[0]
    if mode == "still":
        return Decision(Verdict.DUPLICATE, reason=(
            f"the motion part of a Live Photo whose still is {still['path']} "
            f"([video] live_photos = \"still\")"), matched_path=still["path"],
            matched_sha256=still["sha256"], method="live-photo"), None
    if decision.verdict is Verdict.DUPLICATE or not in_pictures:
        return decision, None
    return decision, Displaced(still["path"], still["sha256"], False, (
        "the still of a Live Photo whose motion part arrived "
        "([video] live_photos = \"video\")"))


def remember_still(store, identifier: str, folder: str, path: str, sha256: str) -> None:
    with store.transaction() as tx:
        store.put_live_still(tx, identifier, folder, path, sha256)


# --- motion photos (Google, Samsung): an MP4 embedded after the JPEG ------------------

_XMP_LENGTHS = (re.compile(rb'Item:Semantic="MotionPhoto"[^>]*?Item:Length="(\d+)"'),
                re.compile(rb'Item:Length="(\d+)"[^>]*?Item:Semantic="MotionPhoto"'),
                re.compile(rb'MicroVideoOffset="(\d+)"'))
SAMSUNG_MARKER = b"MotionPhoto_Data"
HEAD_BYTES = 256 * 1024     # the XMP is in the JPEG's first segments
TAIL_BYTES = 64 * 1024 * 1024


def embedded_video(path) -> tuple[int, int] | None:
    """(offset, length) of the MP4 a motion photo JPEG carries after its image, or None.

    Google writes its length into the XMP (``Container:Directory`` item with
    ``Item:Semantic="MotionPhoto"``, or the older ``GCamera:MicroVideoOffset``: bytes from
    the end); Samsung puts the marker ``MotionPhoto_Data`` right before it. Either way the
    bytes found there must begin as an MP4 (``ftyp``), or it is no motion photo."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            if not head.startswith(b"\xff\xd8"):
                return None
            size = handle.seek(0, 2)
            for pattern in _XMP_LENGTHS:
                if found := pattern.search(head):
                    length = int(found.group(1))
                    if 0 < length < size and _is_mp4_at(handle, size - length):
                        return size - length, length
            handle.seek(max(0, size - TAIL_BYTES))
            tail_start = handle.tell()
            tail = handle.read()
            at = tail.rfind(SAMSUNG_MARKER)
            if at >= 0:
                offset = tail_start + at + len(SAMSUNG_MARKER)
                if _is_mp4_at(handle, offset):
                    return offset, size - offset
    except OSError:
        return None
    return None


def _is_mp4_at(handle, offset: int) -> bool:
    handle.seek(offset)
    return handle.read(8)[4:8] == b"ftyp"


@dataclass(frozen=True)
class MotionPart:
    """The MP4 of a motion photo, copied out into the staged item, and what becomes of it."""

    path: object                # Path of the copy inside the staged item
    signature: object           # VideoSignature
    decision: Decision
    name: str


def motion_decision(config, videos, signature, still_name: str) -> Decision:
    """Where a motion photo's video goes: quarantine in ``still`` mode, else decided as
    any video (a better copy is not swapped in here: it is taken as a copy)."""
    from pipeline.video_matching import decide_video
    if config.video.live_photos == "still":
        return Decision(Verdict.DUPLICATE, reason=(
            f"the motion part of the motion photo {still_name} ([video] live_photos = "
            f"\"still\")"), method="live-photo")
    decision = decide_video(signature, videos, config.dedupe)
    if decision.verdict is Verdict.REPLACE:
        return Decision(Verdict.DUPLICATE, reason=f"a copy of {decision.matched_path}",
                        matched_path=decision.matched_path,
                        matched_sha256=decision.matched_sha256, method=decision.method,
                        distance=decision.distance)
    return decision


def still_of_motion_photo(decision: Decision, motion: MotionPart) -> Decision:
    """``video`` mode: the still goes to quarantine, its video is what the frame shows."""
    if decision.verdict is Verdict.REJECT:
        return decision
    return Decision(Verdict.DUPLICATE, reason=(
        "the still of a motion photo whose video is filed ([video] live_photos = "
        "\"video\")"), method="live-photo")


def copy_out(source, offset: int, length: int, target) -> None:
    """The embedded MP4 durably under ``target`` (temp, fsync, rename), chunk by chunk."""
    import os

    from pipeline.staging import CHUNK, fsync_directory
    temporary = target.with_name(f".tmp-{target.name}")
    with open(source, "rb") as reader, open(temporary, "wb") as writer:
        reader.seek(offset)
        left = length
        while left and (chunk := reader.read(min(CHUNK, left))):
            writer.write(chunk)
            left -= len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.rename(temporary, target)
    fsync_directory(target.parent)
