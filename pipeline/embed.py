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
is written (JPEG) or nothing (PNG).
"""

from __future__ import annotations

import struct
import unicodedata
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from xml.sax.saxutils import escape

XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
PHOTOSHOP = b"Photoshop 3.0\x00"
IPTC_RESOURCE = 0x0404
UTF8_MARKER = b"\x1b%G"
MAX_SEGMENT = 65533                 # payload of one JPEG marker segment
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
PS = "http://ns.adobe.com/photoshop/1.0/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
PREFIXES = {"x": "adobe:ns:meta/", "rdf": RDF, "dc": DC, "photoshop": PS,
            "xmp": "http://ns.adobe.com/xap/1.0/", "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
            "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
            "exif": "http://ns.adobe.com/exif/1.0/", "tiff": "http://ns.adobe.com/tiff/1.0/",
            "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"}
for _prefix, _uri in PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


class NotWritable(Exception):
    """The bytes are not the format they were signed as, or have no room for the text."""


@dataclass(frozen=True)
class Texts:
    title: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Embedded:
    data: bytes
    texts: Texts            # what the file now says (kept existing text included)


def clean(text: str) -> str:
    """Text XML and IPTC can carry: control characters and lone surrogates left out."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))


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
        return _merged(_xmp_texts(xmp[len(XMP_NAMESPACE):]) if xmp else Texts(),
                       _iptc_texts(iptc))
    if image_format == "PNG":
        chunk = next((body for kind, body in png_chunks(data) if _is_png_xmp(kind, body)),
                     None)
        return _xmp_texts(_png_xmp_text(chunk)) if chunk else Texts()
    return Texts()


def _merged(first: Texts, second: Texts) -> Texts:
    return Texts(first.title or second.title, first.caption or second.caption)


def _to_write(existing: Texts, wanted: Texts, overwrite: bool) -> Texts:
    """What is written: a text already there stays unless ``overwrite``."""
    title = wanted.title if overwrite or not existing.title else ""
    caption = wanted.caption if overwrite or not existing.caption else ""
    return Texts(title, caption)


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
    xmp_tree = _parse_xmp(old_xmp) if old_xmp is not None else None
    existing = _merged(_xmp_texts(old_xmp) if xmp_tree is not None else Texts(),
                       _iptc_texts(old_iptc))
    texts = _to_write(existing, wanted, overwrite)
    if not texts.title and not texts.caption:
        return None
    photoshop = _photoshop_payload(segments[ps_at][1] if ps_at is not None else None,
                                   _iptc_block(old_iptc, texts))
    new: dict[int, bytes] = {}
    inserted: list[tuple[int, bytes]] = []
    if old_xmp is None or xmp_tree is not None:
        packet = XMP_NAMESPACE + _xmp_packet(xmp_tree, texts)
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
    return Embedded(b"".join(output), _merged(texts, existing))


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


def _datasets(block: bytes) -> list[tuple[int, int, bytes]]:
    found, position = [], 0
    while position + 5 <= len(block) and block[position] == 0x1C:
        record, number = block[position + 1], block[position + 2]
        size = struct.unpack(">H", block[position + 3:position + 5])[0]
        if size & 0x8000:           # extended length: not a text dataset; stop reading
            break
        found.append((record, number, block[position + 5:position + 5 + size]))
        position += 5 + size
    return found


BINARY_DATASETS = {0, 125, 150, 200, 201, 202}      # record 2 datasets that are not text


def _iptc_block(old: bytes, texts: Texts) -> bytes:
    """The IPTC datasets with 1:90 = UTF-8 and the title/caption set; the rest kept (text
    in another character set converted to UTF-8, since 1:90 now says UTF-8)."""
    old_sets = _datasets(old)
    utf8 = any(r == 1 and n == 90 and v == UTF8_MARKER for r, n, v in old_sets)
    replaced = {5} if texts.title else set()
    replaced |= {120} if texts.caption else set()
    record1 = [(r, n, v) for r, n, v in old_sets if r == 1 and n != 90] + \
        [(1, 90, UTF8_MARKER)]
    record2 = [(r, n, v if utf8 or n in BINARY_DATASETS else _as_utf8(v))
               for r, n, v in old_sets if r == 2 and n not in replaced]
    if not any(n == 0 for _, n, _ in record2):
        record2.insert(0, (2, 0, b"\x00\x04"))
    if texts.title:
        record2.append((2, 5, texts.title.encode()))
    if texts.caption:
        record2.append((2, 120, texts.caption.encode()))
    record2.sort(key=lambda dataset: dataset[1])
    later = [(r, n, v) for r, n, v in old_sets if r > 2]
    return b"".join(bytes((0x1C, r, n)) + struct.pack(">H", len(v)) + v
                    for r, n, v in record1 + record2 + later if len(v) < 0x8000)


def _as_utf8(value: bytes) -> bytes:
    try:
        value.decode("utf-8")
        return value
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace").encode()


def _iptc_texts(block: bytes) -> Texts:
    values = {(r, n): v for r, n, v in _datasets(block)}

    def text(number: int) -> str:
        raw = values.get((2, number), b"")
        return _as_utf8(raw).decode("utf-8", errors="replace").strip()
    return Texts(text(5), text(120))


# --- XMP ------------------------------------------------------------------------------

def _parse_xmp(packet: bytes | str) -> ET.Element | None:
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        return None
    return root if root.find(f".//{{{RDF}}}RDF") is not None or root.tag == f"{{{RDF}}}RDF" \
        else None


def _xmp_texts(packet: bytes | str | None) -> Texts:
    root = _parse_xmp(packet) if packet else None
    if root is None:
        return Texts()
    headline = title = description = ""
    for element in root.iter(f"{{{RDF}}}Description"):
        headline = headline or element.get(f"{{{PS}}}Headline", "") or \
            _text(element.find(f"{{{PS}}}Headline"))
        title = title or _alt_text(element.find(f"{{{DC}}}title"))
        description = description or _alt_text(element.find(f"{{{DC}}}description"))
    return Texts((headline or title).strip(), description.strip())


def _text(element: ET.Element | None) -> str:
    return (element.text or "") if element is not None else ""


def _alt_text(element: ET.Element | None) -> str:
    if element is None:
        return ""
    items = element.findall(f".//{{{RDF}}}li")
    chosen = next((li for li in items if li.get(XML_LANG) == "x-default"),
                  items[0] if items else None)
    return _text(chosen) if chosen is not None else _text(element)


def _xmp_packet(tree: ET.Element | None, texts: Texts) -> bytes:
    """A whole XMP packet: ``tree`` (an existing packet) with the properties replaced, or
    a new one."""
    if tree is None:
        body = _new_xmp(texts)
    else:
        rdf = tree if tree.tag == f"{{{RDF}}}RDF" else tree.find(f".//{{{RDF}}}RDF")
        drop = ([f"{{{PS}}}Headline", f"{{{DC}}}title"] if texts.title else []) + \
            ([f"{{{DC}}}description"] if texts.caption else [])
        for description in rdf.findall(f"{{{RDF}}}Description"):
            for name in drop:
                description.attrib.pop(name, None)
                for child in description.findall(name):
                    description.remove(child)
        rdf.append(_description_element(texts))
        body = ET.tostring(tree, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>' + body +
            '<?xpacket end="w"?>').encode()


def _new_xmp(texts: Texts) -> str:
    properties = []
    if texts.title:
        title = escape(texts.title)
        properties.append(f"<photoshop:Headline>{title}</photoshop:Headline>"
                          f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}'
                          f"</rdf:li></rdf:Alt></dc:title>")
    if texts.caption:
        properties.append(f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
                          f"{escape(texts.caption)}</rdf:li></rdf:Alt></dc:description>")
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
            f'<rdf:Description rdf:about="" xmlns:dc="{DC}" xmlns:photoshop="{PS}">'
            + "".join(properties) + "</rdf:Description></rdf:RDF></x:xmpmeta>")


def _description_element(texts: Texts) -> ET.Element:
    description = ET.Element(f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})

    def alternative(name: str, text: str) -> None:
        holder = ET.SubElement(ET.SubElement(description, name), f"{{{RDF}}}Alt")
        ET.SubElement(holder, f"{{{RDF}}}li", {XML_LANG: "x-default"}).text = text
    if texts.title:
        ET.SubElement(description, f"{{{PS}}}Headline").text = texts.title
        alternative(f"{{{DC}}}title", texts.title)
    if texts.caption:
        alternative(f"{{{DC}}}description", texts.caption)
    return description


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
    tree = _parse_xmp(old) if old else None
    if old and tree is None:
        return None                 # an XMP packet we cannot edit safely: left alone
    existing = _xmp_texts(old) if old else Texts()
    texts = _to_write(existing, wanted, overwrite)
    if not texts.title and not texts.caption:
        return None
    chunk = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" +
                       _xmp_packet(tree, texts))
    if at is None:
        where = first_data if first_data is not None else len(PNG_SIGNATURE)
        at = (where, where)
    return Embedded(data[:at[0]] + chunk + data[at[1]:], _merged(texts, existing))


WRITERS = {"JPEG": write_jpeg, "MPO": write_jpeg, "PNG": write_png}
