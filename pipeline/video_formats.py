"""The video containers frame-ingest takes: what their first bytes look like, and the suffix
a video of each is filed with (picframe plays ``.mp4 .mkv .flv .mov .avi .webm .hevc``).

Sources and the gate decide "is it a video" by bytes, never by the name: ``sniff_video``
reads the container's signature (ISO-BMFF ``ftyp`` with a video brand, QuickTime atoms,
EBML for Matroska/WebM, RIFF AVI, FLV, an HEVC Annex-B elementary stream).
"""

from __future__ import annotations

import os

SNIFF_BYTES = 64

# container name -> (suffix it is filed with, other suffixes that already name it)
CONTAINERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "MP4": (".mp4", (".m4v", ".3gp", ".3g2")),
    "MOV": (".mov", (".qt",)),
    "MKV": (".mkv", ()),
    "WEBM": (".webm", ()),
    "AVI": (".avi", ()),
    "FLV": (".flv", ()),
    "HEVC": (".hevc", (".h265", ".265")),
}
VIDEO_SUFFIXES = frozenset(suffix for main, others in CONTAINERS.values()
                           for suffix in (main, *others))

# ISO base media brands of still images (HEIF/HEIC/AVIF): not videos
_STILL_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                 b"avif", b"avis"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def sniff_video(prefix: bytes) -> str | None:
    """The container the first bytes (``SNIFF_BYTES`` of them) announce, or None."""
    if prefix[4:8] == b"ftyp":
        brand = prefix[8:12]
        if brand in _STILL_BRANDS:
            return None
        return "MOV" if brand == b"qt  " else "MP4"
    if prefix[4:8] in _QUICKTIME_ATOMS and len(prefix) >= 8:
        return "MOV"
    if prefix.startswith(b"\x1a\x45\xdf\xa3"):
        return "WEBM" if b"webm" in prefix[:SNIFF_BYTES] else "MKV"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"AVI ":
        return "AVI"
    if prefix[:4] == b"FLV\x01":
        return "FLV"
    if prefix.startswith((b"\x00\x00\x00\x01\x40\x01", b"\x00\x00\x01\x40\x01")):
        return "HEVC"
    return None


def sniff_video_file(path) -> str | None:
    with open(path, "rb") as handle:
        return sniff_video(handle.read(SNIFF_BYTES))


def suffix_of(container: str) -> str:
    return CONTAINERS[container][0]


def with_video_extension(name: str, container: str) -> str:
    """Give ``name`` the suffix of its real container when it lacks a fitting one."""
    main, others = CONTAINERS[container]
    if os.path.splitext(name)[1].lower() in (main, *others):
        return name
    return name + main


def taken(container: str, formats: list[str]) -> bool:
    """Whether ``[video] formats`` lists this container's suffix."""
    main, others = CONTAINERS[container]
    wanted = {suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
              for suffix in formats}
    return bool(wanted & {main, *others})
