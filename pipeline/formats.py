"""The image formats frame-ingest files: one list, read by the gate, the names and the scan.

A format the gate promotes must be a format the library scan reads back, or the scan
drops the photo's row and an identical second copy gets into Pictures. So there is one
table: Pillow's format name -> the suffix a photo of that format is filed with, and the
other suffixes that already name it correctly. ``signatures.decode_reduced`` rejects any
other format ("unsupported image format ICO"), ``library.with_extension`` names a file by
it, and ``catalog.walk_library`` looks at exactly these suffixes.
"""

from __future__ import annotations

FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "JPEG": (".jpg", (".jpeg", ".jpe", ".jfif")),
    "MPO": (".jpg", (".jpeg",)),            # multi-picture JPEG (some cameras, 3D)
    "PNG": (".png", ()),
    "WEBP": (".webp", ()),
    "GIF": (".gif", ()),
    "TIFF": (".tif", (".tiff",)),
    "HEIF": (".heic", (".heif", ".hif")),
    "BMP": (".bmp", (".dib",)),
    "TGA": (".tga", (".icb", ".vda", ".vst")),
    "PPM": (".ppm", (".pgm", ".pbm", ".pnm")),
    "JPEG2000": (".jp2", (".j2k", ".jpx", ".jpf", ".j2c")),
}

EXTENSIONS = {name: suffix for name, (suffix, _) in FORMATS.items()}
ACCEPTED_SUFFIXES = {name: {suffix, *others} for name, (suffix, others) in FORMATS.items()}
SUFFIXES = frozenset(suffix for accepted in ACCEPTED_SUFFIXES.values() for suffix in accepted)
