"""Title and caption into a photo's own metadata, without touching its pixels.

What a frame viewer reads (picframe: title from IPTC Object Name 2:05 or XMP
photoshop:Headline, caption from IPTC Caption/Abstract 2:120 or XMP dc:description, XMP
winning), per format:

- **JPEG** (and MPO): an APP13 "Photoshop 3.0" IPTC block (record 1:90 = ESC % G, so the
  text is UTF-8; 2:00, 2:05, 2:120) and an APP1 XMP packet (photoshop:Headline, dc:title,
  dc:description). Only those two segments are written or replaced; every other byte (SOI,
  JFIF, Exif with its orientation, ICC, quantisation tables, the entropy-coded data, an
  MPO's second picture) stays as it was. New segments go right after the leading JFIF/Exif
  segments, before an MPO's MPF index, whose offsets are relative to itself.
- **PNG**: an iTXt chunk "XML:com.adobe.xmp" (uncompressed UTF-8), before the first IDAT or
  in place of the old one. PNG has no IPTC block that readers agree on.
- Anything else (HEIF among them): ``WRITERS`` has no entry; the caller logs and leaves the
  photo as it is (writing HEIF metadata means re-encoding the picture with today's tools).

An existing title (IPTC 2:05, Headline or dc:title) or caption (2:120 or dc:description) is
kept unless ``overwrite``. An XMP packet already in the file is edited (the three properties
replaced, everything else kept); one that is not well-formed XML is left alone and only IPTC
is written (JPEG) or nothing (PNG). What goes inside the IPTC block and the XMP packet is
``xmp_iptc.py``'s.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from pipeline import xmp_iptc
from pipeline.xmp_iptc import Texts, clean

XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC_RESOURCE = 0x0404
MAX_SEGMENT = 65533                 # payload of one JPEG marker segment
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"


class NotWritable(Exception):
    """The bytes are not the format they were signed as, or have no room for the text."""


@dataclass(frozen=True)
class Embedded:
    data: bytes
    texts: Texts            # what the file now says (kept existing text included)


def write(data: bytes, image_format: str, wanted: Texts, overwrite: bool) -> Embedded | None:
    """``data`` with ``wanted`` written in; None when there is nothing to change."""
    return WRITERS[image_format](data, Texts(clean(wanted.title), clean(wanted.caption)),
                                 overwrite)


def read(data: bytes, image_format: str) -> Texts:
    """The title and caption a file carries (XMP first, as picframe reads them)."""
    if image_format in ("JPEG", "MPO"):
        segments, _ = jpeg_segments(data)
        xmp = next((payload for marker, payload in segments if _is_xmp(marker, payload)), None)
        iptc = _iptc_of(segments)
        from_xmp = xmp_iptc.xmp_texts(xmp[len(XMP_NAMESPACE):]) if xmp else Texts()
        return xmp_iptc.merged(from_xmp, xmp_iptc.iptc_texts(iptc))
    if image_format == "PNG":
        chunk = next((body for kind, body in png_chunks(data) if _is_png_xmp(kind, body)),
                     None)
        return xmp_iptc.xmp_texts(_png_xmp_text(chunk)) if chunk else Texts()
    return Texts()


# --- JPEG -----------------------------------------------------------------------------

def jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The marker segments before the first SOS as (marker, payload), and where the SOS
    starts (everything from there on is kept as it is)."""
    if data[:2] != b"\xff\xd8":
        raise NotWritable("not a JPEG (no SOI marker)")
    segments, position = [], 2
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise NotWritable("a JPEG segment is damaged")
        marker = data[position + 1]
        if marker == 0xDA:
            return segments, position
        if marker == 0xFF:          # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            segments.append((marker, b""))
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if length < 2 or position + 2 + length > len(data):
            raise NotWritable("a JPEG segment is damaged")
        segments.append((marker, data[position + 4:position + 2 + length]))
        position += 2 + length


def _segment(marker: int, payload: bytes) -> bytes:
    if not payload and (marker == 0x01 or 0xD0 <= marker <= 0xD7):
        return bytes((0xFF, marker))
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _is_xmp(marker: int, payload: bytes) -> bool:
    return marker == 0xE1 and payload.startswith(XMP_NAMESPACE)


def _is_photoshop(marker: int, payload: bytes) -> bool:
    return marker == 0xED and payload.startswith(PHOTOSHOP)


def _is_mpf(marker: int, payload: bytes) -> bool:
    return marker == 0xE2 and payload.startswith(b"MPF\x00")


def write_jpeg(data: bytes, wanted: Texts, overwrite: bool) -> Embedded | None:
    segments, scan = jpeg_segments(data)
    xmp_at = next((n for n, (m, p) in enumerate(segments) if _is_xmp(m, p)), None)
    ps_at = next((n for n, (m, p) in enumerate(segments) if _is_photoshop(m, p)), None)
    old_xmp = segments[xmp_at][1][len(XMP_NAMESPACE):] if xmp_at is not None else None
    old_iptc = _iptc_of(segments)
    xmp_tree = xmp_iptc.parse_xmp(old_xmp) if old_xmp is not None else None
    from_xmp = xmp_iptc.xmp_texts(old_xmp) if xmp_tree is not None else Texts()
    existing = xmp_iptc.merged(from_xmp, xmp_iptc.iptc_texts(old_iptc))
    texts = xmp_iptc.to_write(existing, wanted, overwrite)
    if not texts.title and not texts.caption:
        return None
    photoshop = _photoshop_payload(segments[ps_at][1] if ps_at is not None else None,
                                   xmp_iptc.iptc_block(old_iptc, texts))
    new: dict[int, bytes] = {}
    inserted: list[tuple[int, bytes]] = []
    if old_xmp is None or xmp_tree is not None:
        packet = XMP_NAMESPACE + xmp_iptc.xmp_packet(xmp_tree, texts)
        if len(packet) <= MAX_SEGMENT:
            if xmp_at is None:
                inserted.append((0xE1, packet))
            else:
                new[xmp_at] = packet
    if ps_at is None:
        inserted.append((0xED, photoshop))
    else:
        new[ps_at] = photoshop
    if len(photoshop) > MAX_SEGMENT:
        raise NotWritable("the IPTC block would not fit in one JPEG segment")
    mpf_at = next((n for n, (m, p) in enumerate(segments) if _is_mpf(m, p)), len(segments))
    if any(index > mpf_at for index in new):
        raise NotWritable("its metadata lies after the MPO index (it would break the "
                          "second picture)")
    insert_at = 0
    while insert_at < len(segments) and segments[insert_at][0] in (0xE0, 0xE1) and \
            not _is_xmp(*segments[insert_at]):
        insert_at += 1
    output = [b"\xff\xd8"]
    for number, (marker, payload) in enumerate(segments):
        if number == insert_at:
            output.extend(_segment(m, p) for m, p in inserted)
        output.append(_segment(marker, new.get(number, payload)))
    if insert_at == len(segments):
        output.extend(_segment(m, p) for m, p in inserted)
    output.append(data[scan:])
    return Embedded(b"".join(output), xmp_iptc.merged(texts, existing))


# --- IPTC (in a Photoshop image resource block) ---------------------------------------

def _resources(payload: bytes) -> list[tuple[int, bytes, bytes]]:
    """The 8BIM resources of an APP13 payload as (id, name field, data)."""
    found, position = [], len(PHOTOSHOP)
    while position + 12 <= len(payload) and payload[position:position + 4] == b"8BIM":
        resource = struct.unpack(">H", payload[position + 4:position + 6])[0]
        name_length = payload[position + 6]
        name_end = position + 6 + 1 + name_length
        name_end += (name_end - position - 6) % 2           # name field padded to even
        name = payload[position + 6:name_end]
        if name_end + 4 > len(payload):
            break
        size = struct.unpack(">I", payload[name_end:name_end + 4])[0]
        start = name_end + 4
        found.append((resource, name, payload[start:start + size]))
        position = start + size + size % 2
    return found


def _iptc_of(segments) -> bytes:
    for marker, payload in segments:
        if _is_photoshop(marker, payload):
            for resource, _, data in _resources(payload):
                if resource == IPTC_RESOURCE:
                    return data
    return b""


def _photoshop_payload(old: bytes | None, iptc: bytes) -> bytes:
    # the IPTC digest (0x0425) of the old block would mark the new one as edited elsewhere
    resources = [r for r in _resources(old) if r[0] not in (IPTC_RESOURCE, 0x0425)] \
        if old else []
    resources.insert(0, (IPTC_RESOURCE, b"\x00\x00", iptc))
    output = [PHOTOSHOP]
    for resource, name, data in resources:
        output.append(b"8BIM" + struct.pack(">H", resource) + name +
                      struct.pack(">I", len(data)) + data + b"\x00" * (len(data) % 2))
    return b"".join(output)


# --- PNG ------------------------------------------------------------------------------

def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk as (type, data); CRCs are not checked (the gate decoded the file)."""
    if not data.startswith(PNG_SIGNATURE):
        raise NotWritable("not a PNG (no signature)")
    chunks, position = [], len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        size = struct.unpack(">I", data[position:position + 4])[0]
        kind = data[position + 4:position + 8]
        chunks.append((kind, data[position + 8:position + 8 + size]))
        position += 12 + size
        if kind == b"IEND":
            break
    return chunks


def _is_png_xmp(kind: bytes, body: bytes) -> bool:
    return kind == b"iTXt" and body.startswith(PNG_XMP_KEYWORD + b"\x00")


def _png_xmp_text(body: bytes) -> bytes:
    """The XML of an iTXt XMP chunk (keyword, 0, flag, method, language 0, keyword 0, text)."""
    rest = body[len(PNG_XMP_KEYWORD) + 1:]
    compressed = rest[:1] == b"\x01"
    rest = rest[2:]
    rest = rest.split(b"\x00", 2)[-1]           # past the language tag and translated keyword
    try:
        return zlib.decompress(rest) if compressed else rest
    except zlib.error:
        return b""


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + \
        struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png(data: bytes, wanted: Texts, overwrite: bool) -> Embedded | None:
    png_chunks(data)
    position, at, old = len(PNG_SIGNATURE), None, None
    first_data = None
    while position + 12 <= len(data):
        size = struct.unpack(">I", data[position:position + 4])[0]
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + size]
        if _is_png_xmp(kind, body) and at is None:
            at, old = (position, position + 12 + size), _png_xmp_text(body)
        if kind == b"IDAT" and first_data is None:
            first_data = position
        position += 12 + size
        if kind == b"IEND":
            break
    tree = xmp_iptc.parse_xmp(old) if old else None
    if old and tree is None:
        return None                 # an XMP packet we cannot edit safely: left alone
    existing = xmp_iptc.xmp_texts(old) if old else Texts()
    texts = xmp_iptc.to_write(existing, wanted, overwrite)
    if not texts.title and not texts.caption:
        return None
    chunk = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" +
                       xmp_iptc.xmp_packet(tree, texts))
    if at is None:
        where = first_data if first_data is not None else len(PNG_SIGNATURE)
        at = (where, where)
    return Embedded(data[:at[0]] + chunk + data[at[1]:], xmp_iptc.merged(texts, existing))


WRITERS = {"JPEG": write_jpeg, "MPO": write_jpeg, "PNG": write_png}
