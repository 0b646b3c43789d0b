"""Taking the pictures out of one e-mail: pure functions from raw message bytes to image parts.

No network and no files here, so every odd shape of mail can be tested on its own. A family
member's mail client may put a photo anywhere: as an attachment, inline in a
multipart/related body, deep inside nested multiparts, or inside a forwarded message
(message/rfc822). ``extract`` walks all of them, decodes the file names (RFC 2231 and
encoded words, which the standard library's ``email.policy.default`` understands), and
decides whether a part is an image by its *bytes*: ``application/octet-stream`` named
``IMG_1.JPG`` is a photo, a text file named ``x.jpg`` is not. Tiny images (signature logos,
social icons) are skipped. Each skip carries a one-line reason for the log.

The walk is bounded (``MAX_DEPTH`` levels, ``MAX_PARTS`` parts) so a hostile message cannot
make it recurse or loop for long. Part numbers count the leaf parts in walk order, so the
same bytes always give the same numbers: what lets a rescan recognise parts taken before.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from PIL import Image, UnidentifiedImageError

from pipeline.config import MIB
from pipeline.signatures import register_heif
from pipeline.video_formats import SNIFF_BYTES, sniff_video

MAX_DEPTH = 12          # nesting of multiparts and forwarded messages
MAX_PARTS = 500         # leaf parts looked at in one message



@dataclass(frozen=True)
class ImagePart:
    """One picture found in a message; ``index`` is its leaf-part number in walk order."""

    index: int
    filename: str           # as the sender named it (decoded, unsanitised), or a made-up name
    data: bytes
    image_format: str


@dataclass
class MailContents:
    """What ``extract`` found: the headers provenance needs, the images and the skips."""

    sender: str                         # the bare From address, lower-case ("" if none/many)
    sender_display: str                 # From as written, for people
    subject: str
    date: str                           # ISO 8601, "" when missing or unreadable
    message_id: str                     # without angle brackets, "" when missing
    message_key: str                    # message_id, or "sha256:<hex>" of the raw bytes
    sender_name: str = ""               # the From display name, "" when none or ambiguous
    body: str = ""                      # first_line of the plain-text body
    images: list[ImagePart] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)    # one reason per skipped part
    message: EmailMessage | None = None                 # the parsed message (for sender rules)


def parse(raw: bytes) -> EmailMessage:
    """Parse raw RFC 5322 bytes; never raises on malformed mail (defects are tolerated)."""
    return BytesParser(policy=policy.default).parsebytes(raw)


def extract(raw: bytes, *, min_side: int = 0, max_bytes: int | None = None,
            take_videos: bool = False) -> MailContents:
    """Every image part of the message in ``raw``, with the reasons for what was left out.

    ``min_side``: images with a width or height below it are taken for logos and skipped.
    ``max_bytes``: decoded parts larger than this are skipped (nothing is staged for them).
    ``take_videos``: a part whose bytes are a video container is taken too ([video]).
    """
    message = parse(raw)
    contents = _headers(message, raw)
    contents.body = first_line(_plain_body(message))
    counter = _Counter()
    for part in _leaves(message, 0, counter, contents.skipped):
        image = _image_part(part, counter.leaves, min_side, max_bytes, contents.skipped,
                            take_videos)
        if image is not None:
            contents.images.append(image)
    return contents


class _Counter:
    def __init__(self) -> None:
        self.leaves = 0


def _leaves(part: EmailMessage, depth: int, counter: _Counter, skipped: list[str]):
    """Yield leaf parts depth-first, numbering them in ``counter``; bounded walk."""
    if depth > MAX_DEPTH:
        skipped.append(f"nesting deeper than {MAX_DEPTH} levels: the rest is ignored")
        return
    if part.is_multipart():  # multipart/* and message/rfc822 (its payload is [message])
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, EmailMessage):
                yield from _leaves(child, depth + 1, counter, skipped)
        return
    if counter.leaves >= MAX_PARTS:
        if counter.leaves == MAX_PARTS:
            skipped.append(f"more than {MAX_PARTS} parts: the rest is ignored")
            counter.leaves += 1
        return
    counter.leaves += 1
    yield part


def _image_part(part: EmailMessage, index: int, min_side: int, max_bytes: int | None,
                skipped: list[str], take_videos: bool = False) -> ImagePart | None:
    """The part as an ImagePart, or None (with a reason in ``skipped`` when worth saying)."""
    filename = _filename(part)
    declared = part.get_content_type()
    if part.get_content_maintype() == "text" and not filename:
        return None  # the message body: not a candidate, nothing to say
    label = filename or f"part {index} ({declared})"
    try:
        data = part.get_payload(decode=True) or b""
    except (ValueError, TypeError, LookupError) as exc:
        skipped.append(f"{label}: cannot decode the part: {exc}")
        return None
    if max_bytes is not None and len(data) > max_bytes:
        skipped.append(f"{label}: {len(data) / MIB:.1f} MiB is more than max_attachment_mb "
                       f"({max_bytes / MIB:g} MiB); not taken")
        return None
    if take_videos and (container := sniff_video(data[:SNIFF_BYTES])):
        return ImagePart(index, filename or f"mail-video-{index}", data, container)
    image_format = judge(identify(data), part, label, min_side, skipped)
    if image_format is None:
        return None
    return ImagePart(index, filename or f"mail-image-{index}", data, image_format)


def judge(identified: tuple[str, int, int] | None, part: EmailMessage, label: str,
          min_side: int, skipped: list[str]) -> str | None:
    """The image format when ``identify`` found a photo worth taking, else None with the
    reason in ``skipped`` (when worth saying): shared by both ways of reading a part."""
    if identified is None:
        if _filename(part) or part.get_content_maintype() in ("image", "application"):
            skipped.append(f"{label}: not an image (declared {part.get_content_type()})")
        return None
    image_format, width, height = identified
    if min_side and (width < min_side or height < min_side):
        skipped.append(f"{label}: {width}x{height} is smaller than min_image_side "
                       f"({min_side}); taken for a logo or icon")
        return None
    return image_format


NEVER_DOWNLOADED = ("video", "audio")   # until videos are taken: never worth the bytes


def wanted(part: EmailMessage, index: int, skipped: list[str],
           take_videos: bool = False) -> str | None:
    """For a part known by its headers alone: its label when its bytes are worth fetching
    (it may be an image, whatever it says it is), else None, with a reason in ``skipped``
    when worth saying. The message body and videos are never downloaded."""
    filename = _filename(part)
    declared = part.get_content_type()
    maintype = part.get_content_maintype()
    if maintype == "text" and not filename:
        return None
    label = filename or f"part {index} ({declared})"
    if maintype == "video" and take_videos:
        return label
    if maintype in NEVER_DOWNLOADED:
        if filename:
            skipped.append(f"{label}: not an image (declared {declared}); not downloaded")
        return None
    return label


def filename_of(part: EmailMessage, index: int) -> str:
    """The name a picture is staged under: the sender's, or a made-up one."""
    return _filename(part) or f"mail-image-{index}"


def identify(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) when the bytes are an image Pillow knows, else None.

    Only the header is read, nothing is decoded: cheap on a Pi. A picture too large to
    open safely still counts as an image, so the gate rejects it with its reason.
    """
    if not data:
        return None
    return identify_file(io.BytesIO(data))


def identify_file(handle) -> tuple[str, int, int] | None:
    """``identify`` for an open binary file (a part decoded to disk); reads its header."""
    register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                return image.format or "unknown", image.size[0], image.size[1]
    except Image.DecompressionBombError:
        return "unknown", 1 << 16, 1 << 16
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, TypeError,
            IndexError, KeyError):
        return None


def _filename(part: EmailMessage) -> str:
    """The decoded file name from Content-Disposition or Content-Type (RFC 2231/2047)."""
    try:
        name = part.get_filename() or part.get_param("name", header="content-type") or ""
    except (ValueError, TypeError, LookupError):
        return ""
    if isinstance(name, tuple):  # an undecodable RFC 2231 value: (charset, language, text)
        name = name[2]
    return str(name).strip()


def headers(header_bytes: bytes) -> MailContents:
    """What the headers alone say (the structured path fetches them without the body).

    ``message_key`` is the Message-ID, or "" when there is none: the key is then a hash of
    the whole raw message, which only ``extract`` can compute.
    """
    return _headers(parse(header_bytes), None)


def _headers(message: EmailMessage, raw: bytes | None) -> MailContents:
    sender_display = _header_text(message, "from")
    sender = _single_sender(message, sender_display)
    message_id = _header_text(message, "message-id").strip().strip("<>").strip()
    key = message_id or ("sha256:" + hashlib.sha256(raw).hexdigest() if raw is not None else "")
    return MailContents(sender=sender, sender_display=sender_display,
                        sender_name=_display_name(sender_display) if sender else "",
                        subject=_header_text(message, "subject"),
                        date=_iso_date(_header_text(message, "date")),
                        message_id=message_id, message_key=key, message=message)


def _single_sender(message: EmailMessage, sender_display: str) -> str:
    """The one From address, lower-case; "" when there is none or it is ambiguous.

    Ambiguous is what spoofers use: two From headers (readers show one, parsers may take
    the other), several addresses, or an address-like display name that differs from the
    address (``grandma@family.example <evil@x.example>``, which parsers read either way).
    """
    raw = [str(value) for name, value in message.raw_items() if name.lower() == "from"]
    addresses = [address for _, address in getaddresses([sender_display]) if address]
    if len(raw) != 1 or len(addresses) != 1:
        return ""
    sender = addresses[0].strip().lower()
    mentioned = {token.lower() for text in (raw[0], sender_display)
                 for token in _ADDRESS_LIKE.findall(text)}
    return sender if mentioned <= {sender} else ""


def _display_name(sender_display: str) -> str:
    names = [name for name, _ in getaddresses([sender_display])]
    return " ".join(names[0].split()) if len(names) == 1 else ""


_ADDRESS_LIKE = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


def _header_text(message: EmailMessage, name: str) -> str:
    """A header as text; malformed headers give their raw text rather than an exception."""
    try:
        value = message.get(name)
    except (ValueError, TypeError, LookupError, IndexError):
        value = None
    return " ".join(str(value).split()) if value is not None else ""


def _iso_date(text: str) -> str:
    if not text:
        return ""
    try:
        return parsedate_to_datetime(text).isoformat()
    except (ValueError, TypeError, IndexError):
        return ""


# --- the sender's own words, for captions -------------------------------------------------

BODY_LIMIT = 16 * 1024      # characters of a body looked at (and bytes fetched for it)
_ATTRIBUTION = re.compile(r"^(on\b.*\bwrote|am\b.*\bschrieb\b.*|le\b.*\ba écrit)\s*:\s*$",
                          re.IGNORECASE)
_FORWARD = re.compile(r"^-{2,}\s*(original message|forwarded message|ursprüngliche nachricht"
                      r"|weitergeleitete nachricht)", re.IGNORECASE)


def first_line(text: str) -> str:
    """The first non-empty line of a plain-text body that the sender wrote: quoted lines
    ("> ...") and their "On ... wrote:" attribution are left out, and the signature ("-- "
    and all below it) and a quoted or forwarded original end the search. "" when none."""
    for line in text[:BODY_LIMIT].splitlines():
        stripped = line.strip()
        if line.rstrip() in ("--", "-- ") or _FORWARD.match(stripped):
            return ""
        if not stripped or stripped.startswith(">") or _ATTRIBUTION.match(stripped):
            continue
        return " ".join(stripped.split())
    return ""


def is_body_part(part: EmailMessage) -> bool:
    """Whether a leaf part is the message's plain-text body (not a text attachment)."""
    return part.get_content_type() == "text/plain" and not _filename(part) and \
        part.get_content_disposition() != "attachment"


def body_text(data: bytes, part: EmailMessage) -> str:
    """Decoded bytes of a text part as text, in its declared charset (else UTF-8)."""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _plain_body(message: EmailMessage) -> str:
    """The plain-text body of a parsed message ("" when it has none)."""
    try:
        body = message.get_body(preferencelist=("plain",))
        if body is None or not is_body_part(body):
            return ""
        return body_text(body.get_payload(decode=True) or b"", body)
    except (ValueError, TypeError, LookupError, AttributeError, KeyError):
        return ""
