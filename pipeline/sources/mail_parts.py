"""Reading the pictures of an e-mail without holding it: its parts from the server's
structure, and each part decoded chunk by chunk.

A phone video beside a photo makes a 200 MB message; parsed whole it takes about seven
times that in memory. So the IMAP source asks the server for the message's structure
(BODYSTRUCTURE, turned into ``MimePart`` trees by ``imap_session``), numbers its leaf parts
exactly as ``mail.extract`` numbers them (depth first, a forwarded message/rfc822 counting
as a level: the same origin ids, so parts taken before are recognised), and fetches only
the parts that may be pictures, each decoded straight to a file through a ``Decoder``.

The numbering only agrees with Python's parser on structures both read the same way; a
structure that may be read differently, or that lies beyond ``mail.extract``'s bounds,
raises ``Untrusted`` and the message is fetched whole (bounded by ``max_message_mb``).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from pipeline.sources.mail import MAX_DEPTH, MAX_PARTS

IDENTITY = ("7bit", "8bit", "binary")


@dataclass(frozen=True)
class MimePart:
    """One node of a message's structure as the server describes it."""

    content_type: str                 # lower case: "image/jpeg", "multipart/mixed"
    section: str = ""                 # where its bytes are ("4.2"); "" for a multipart
    header_section: str = ""          # where its own headers are ("4.2.MIME", "HEADER")
    encoding: str = "7bit"            # content-transfer-encoding, lower case
    size: int = 0                     # octets as stored (still encoded)
    children: tuple["MimePart", ...] = ()   # multipart: its parts; message/rfc822: its body
    boundary: bool = True             # a multipart names its boundary


@dataclass(frozen=True)
class Leaf:
    index: int                        # the leaf-part number ``mail.extract`` gives it
    part: MimePart


class Untrusted(Exception):
    """The structure may not number the parts as Python's parser would: fetch it whole."""


def leaves(root: MimePart, message_size: int) -> list[Leaf]:
    """Every leaf part in walk order, numbered from 1; ``Untrusted`` when in doubt."""
    found: list[Leaf] = []
    _walk(root, 0, found)
    if sum(leaf.part.size for leaf in found) > message_size:
        raise Untrusted("its parts add up to more than the message")
    return found


def _walk(node: MimePart, depth: int, found: list[Leaf]) -> None:
    if depth > MAX_DEPTH:
        raise Untrusted(f"nesting deeper than {MAX_DEPTH} levels")
    maintype = node.content_type.partition("/")[0]
    if maintype == "multipart":
        if not node.children or not node.boundary:
            raise Untrusted(f"a {node.content_type} without parts or boundary")
        for child in node.children:
            _walk(child, depth + 1, found)
        return
    if maintype == "message":
        # Python's parser makes a list of other message/* types (delivery-status) and
        # reads an encoded message/rfc822 differently from a server: whole message then
        if node.content_type != "message/rfc822" or node.encoding not in IDENTITY \
                or len(node.children) != 1:
            raise Untrusted(f"a {node.content_type} part in {node.encoding}")
        _walk(node.children[0], depth + 1, found)
        return
    if node.encoding not in DECODERS:
        raise Untrusted(f"a part in {node.encoding or 'no'} encoding")
    if len(found) >= MAX_PARTS:
        raise Untrusted(f"more than {MAX_PARTS} parts")
    found.append(Leaf(len(found) + 1, node))


class Decoder:
    """Content-transfer decoding fed chunk by chunk; holds at most one chunk's leftover."""

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


class Base64Decoder(Decoder):
    """What ``get_payload(decode=True)`` gives for well-formed base64, in pieces: bytes
    outside the alphabet (line breaks) are dropped and groups of four decoded."""

    _NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + self._NOT_BASE64.sub(b"", chunk)
        whole = len(data) - len(data) % 4
        self.pending = data[whole:]
        return binascii.a2b_base64(data[:whole]) if whole else b""

    def finish(self) -> bytes:
        data, self.pending = self.pending, b""
        if not data.rstrip(b"="):
            return b""
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


class QuotedPrintableDecoder(Decoder):
    """Quoted-printable, decoded a whole line at a time (soft breaks end a line)."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        self.pending = data[cut:]
        return binascii.a2b_qp(data[:cut]) if cut else b""

    def finish(self) -> bytes:
        data, self.pending = self.pending, b""
        return binascii.a2b_qp(data) if data else b""


DECODERS = {"base64": Base64Decoder, "quoted-printable": QuotedPrintableDecoder,
            **{name: Decoder for name in IDENTITY}}


def decoder_for(encoding: str) -> Decoder:
    return DECODERS[encoding]()
