"""Where a photo's title and caption live inside its metadata: an IPTC block and an XMP
packet, each read, built and edited here (``embed.py`` puts them into JPEG and PNG files).

- IPTC: record 1:90 = ESC % G (the text is UTF-8), 2:00 record version, 2:05 Object Name
  (the title), 2:120 Caption/Abstract; other datasets already there are kept, their text
  converted to UTF-8 when it was in another character set.
- XMP: photoshop:Headline and dc:title (the title), dc:description (the caption), the last
  two as ``rdf:Alt`` with ``xml:lang="x-default"`` (what picframe's reader expects). An
  existing packet is edited: the three properties are removed wherever they are and written
  in one new ``rdf:Description``; everything else stays. XML comes from senders, so it is
  parsed with the standard library's expat (entity expansion bounded, no external entities).
"""

from __future__ import annotations

import struct
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass


def escape(text: str) -> str:
    """XML character data: ``&``, ``<`` and ``>`` escaped (as xml.sax.saxutils.escape, whose
    import pulls in urllib and ssl: 13 ms of every command's start)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


UTF8_MARKER = b"\x1b%G"
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


@dataclass(frozen=True)
class Texts:
    title: str = ""
    caption: str = ""


def clean(text: str) -> str:
    """Text XML and IPTC can carry: control characters and lone surrogates left out."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))


def merged(first: Texts, second: Texts) -> Texts:
    return Texts(first.title or second.title, first.caption or second.caption)


def to_write(existing: Texts, wanted: Texts, overwrite: bool) -> Texts:
    """What is written: a text already there stays unless ``overwrite``."""
    title = wanted.title if overwrite or not existing.title else ""
    caption = wanted.caption if overwrite or not existing.caption else ""
    return Texts(title, caption)


# --- IPTC ----------------------------------------------------------------------

def datasets(block: bytes) -> list[tuple[int, int, bytes]]:
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


def iptc_block(old: bytes, texts: Texts) -> bytes:
    """The IPTC datasets with 1:90 = UTF-8 and the title/caption set; the rest kept (text
    in another character set converted to UTF-8, since 1:90 now says UTF-8)."""
    old_sets = datasets(old)
    utf8 = any(r == 1 and n == 90 and v == UTF8_MARKER for r, n, v in old_sets)
    replaced = {5} if texts.title else set()
    replaced |= {120} if texts.caption else set()
    record1 = [(r, n, v) for r, n, v in old_sets if r == 1 and n != 90] + \
        [(1, 90, UTF8_MARKER)]
    record2 = [(r, n, v if utf8 or n in BINARY_DATASETS else as_utf8(v))
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


def as_utf8(value: bytes) -> bytes:
    try:
        value.decode("utf-8")
        return value
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace").encode()


def iptc_texts(block: bytes) -> Texts:
    values = {(r, n): v for r, n, v in datasets(block)}

    def text(number: int) -> str:
        raw = values.get((2, number), b"")
        return as_utf8(raw).decode("utf-8", errors="replace").strip()
    return Texts(text(5), text(120))


# --- XMP ------------------------------------------------------------------------------

def parse_xmp(packet: bytes | str) -> ET.Element | None:
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        return None
    return root if root.find(f".//{{{RDF}}}RDF") is not None or root.tag == f"{{{RDF}}}RDF" \
        else None


def xmp_texts(packet: bytes | str | None) -> Texts:
    root = parse_xmp(packet) if packet else None
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


def xmp_packet(tree: ET.Element | None, texts: Texts) -> bytes:
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
