"""Every photo in a format the frame shows: the promotion step that converts the others.

picframe shows only JPEG, PNG and HEIF/HEIC (``.jpg .jpeg .png .heif .heic``). The gate
accepts more (``pipeline/formats.py``: WebP, GIF, TIFF, BMP, TGA, PPM, JPEG 2000), so a
photo in a format outside ``[library] frame_formats`` (default JPEG, PNG, HEIF; MPO, the
stereo JPEG, counts as JPEG) is converted on its way into Pictures:

- a JPEG at quality 92 (4:2:0 below 92 would show on a large screen; 92 keeps a 12 MP photo
  around 3 MB);
- orientation applied to the pixels (the EXIF Orientation then says 1), so the frame needs
  no EXIF to show it upright;
- EXIF kept where the format has it (WebP, TIFF; GIF, BMP, TGA and PPM have none): the
  descriptive tags of its first directory and the Exif and GPS sub-directories, not TIFF's
  own layout tags (strip offsets, compression, ...), which describe the old file;
- the ICC profile kept (a CMYK photo is turned into RGB first, and its CMYK profile cannot
  describe the result, so that one is dropped);
- transparency flattened onto white (as the library's signatures see it), an animation by
  its first frame, 16-bit and other modes brought to 8-bit RGB or grey.

The step returns the JPEG bytes with ``keep_original = "converted for the frame"``: the
gate's plan files the JPEG and moves the original, in the same journaled plan, into
quarantine, where ``quarantine list`` shows it as the duplicate of the JPEG. Sending the
original again is an exact duplicate of the JPEG (``run._as_filed``). The resweep
runs no promotion step, so photos already in Pictures are left as they are.
"""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageOps

from pipeline.signatures import register_heif, to_rgb

log = logging.getLogger("frame-ingest")

QUALITY = 92
REASON = "converted for the frame"
SAME_AS = {"MPO": "JPEG"}          # formats the frame shows as another
# EXIF tags of the first directory that describe the photo (not the old file's layout)
DESCRIPTIVE_TAGS = {
    0x010E,     # ImageDescription
    0x010F,     # Make
    0x0110,     # Model
    0x0112,     # Orientation (set to 1: the pixels are turned)
    0x011A, 0x011B, 0x0128,     # XResolution, YResolution, ResolutionUnit
    0x0131,     # Software
    0x0132,     # DateTime
    0x013B,     # Artist
    0x8298,     # Copyright
    0x8769,     # the Exif sub-directory (exposure, DateTimeOriginal, ...)
    0x8825,     # the GPS sub-directory
}


def convert_for_frame(promotion):
    """The promotion step: ``Transformed`` JPEG bytes for a photo the frame cannot show,
    None when it can (or when the photo cannot be converted: it is filed as it is)."""
    from pipeline.transforms import Transformed

    shown_formats = {name.upper() for name in promotion.config.library.frame_formats}
    image_format = SAME_AS.get(promotion.signature.format, promotion.signature.format)
    if image_format in shown_formats:
        return None
    try:
        data = to_jpeg(promotion.path.read_bytes())
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        log.warning("%s: cannot be converted for the frame (%s); filed as %s",
                    promotion.provenance.name, exc, promotion.signature.format)
        return None
    log.info("%s: %s converted to JPEG for the frame (the original is kept in quarantine)",
             promotion.provenance.name, promotion.signature.format)
    return Transformed(data, keep_original=REASON)


def to_jpeg(data: bytes) -> bytes:
    """The photo in ``data`` as a JPEG for the frame (see the module docstring)."""
    register_heif()
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)                           # an animation: its first frame
        exif = image.getexif()
        icc = image.info.get("icc_profile")
        if image.mode == "CMYK":
            icc = None
        upright = ImageOps.exif_transpose(image)
        pixels = upright.convert("L") if upright.mode in ("1", "L") else to_rgb(upright)
    options = {"quality": QUALITY, "optimize": True}
    if icc:
        options["icc_profile"] = icc
    kept = frame_exif(exif)
    if kept is not None:
        options["exif"] = kept
    buffer = io.BytesIO()
    pixels.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def frame_exif(exif: Image.Exif) -> bytes | None:
    """The descriptive part of ``exif`` as bytes for the JPEG, orientation 1; None when
    there is nothing worth keeping."""
    if not any(tag in DESCRIPTIVE_TAGS and tag != 0x0112 for tag in exif):
        return None
    kept = Image.Exif()
    for tag in DESCRIPTIVE_TAGS & set(exif):
        if tag in (0x8769, 0x8825):
            directory = exif.get_ifd(tag)
            if directory:
                kept[tag] = dict(directory)
        else:
            kept[tag] = exif[tag]
    kept[0x0112] = 1
    return kept.tobytes()
