"""Title and caption of a photo, made from where it came from (``[captions]``).

A template is text with fields in braces, ``"{subject}"`` or ``"{sender_name}: {body}"``,
over the item's provenance (``fields``). What a family sees must read well when a field is
empty (a mail without a subject, a Dropbox photo with no sender), so ``render`` follows one
rule: **the text between two fields is a separator, kept only when there is a non-empty
field before it and the field right after it is non-empty.** Text before the first field
and after the last is kept when any field is non-empty; a template whose fields are all
empty gives "" (nothing is written). Whitespace is then collapsed and trimmed.

    "{sender_name} – {subject}"        "Oma", ""            -> "Oma"
    "{subject}, {body}, {date}"        "Hi", "", "2026-12-01" -> "Hi, 2026-12-01"
    "Von {sender_name}"                ""                   -> ""
    "Von {sender_name}: {subject}"     "", "Zoo"            -> "Von Zoo"

Text that belongs to one field rather than between two (brackets: "{subject} ({date})")
is a separator like any other: with an empty subject it gives "2026-12-01)"; keep such a
field alone in its template or put it last with a plain separator.

``max_length`` (characters) cuts at the last space that leaves room for "…"; a single word
longer than that is cut inside it.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path

from pipeline import embed
from pipeline.items import Provenance
from pipeline.text import shown

log = logging.getLogger("frame-ingest")

FIELDS = ("sender_name", "sender", "subject", "body", "date", "source", "folder", "filename")
MAIL_SOURCE = "imap"
ELLIPSIS = "…"


@dataclass(frozen=True)
class Captions:
    title: str
    caption: str


def template_problem(template: str) -> str:
    """Why ``template`` cannot be used ("" when it can): a config rule."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            known = ", ".join("{" + field + "}" for field in FIELDS)
            return f"unknown field {{{name}}} in {_quoted(template)}; known fields: {known}"
        if spec or conversion:
            return f"{{{name}}} takes no format or conversion in {_quoted(template)}"
    return ""


def fields(provenance: Provenance) -> dict[str, str]:
    """The template fields of one item (mail fields are "" for the other sources)."""
    mail = provenance.source == MAIL_SOURCE
    sender = provenance.sender if mail else ""
    # items staged before provenance carried the name still have the From header in extra
    from email.utils import parseaddr  # here: email.utils costs 10 ms of every command's start

    sender_name = provenance.sender_name or parseaddr(str(provenance.extra.get("from", "")))[0]
    values = {
        "sender_name": (sender_name or sender.partition("@")[0]) if mail else "",
        "sender": sender,
        "subject": provenance.subject if mail else "",
        "body": provenance.body if mail else "",
        "date": provenance.date or provenance.received[:10],
        "source": provenance.source,
        "folder": provenance.folder,
        "filename": provenance.name,
    }
    return {key: " ".join(embed.clean(str(value)).split()) for key, value in values.items()}


def render(template: str, values: dict[str, str], max_length: int = 0) -> str:
    """``template`` filled from ``values`` by the separator rule of the module docstring."""
    literals: list[str] = []
    names: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        literals.append(literal)
        if name is not None:
            names.append(name)
    if not names:
        return cut(" ".join("".join(literals).split()), max_length)
    filled = [values.get(name, "") for name in names]
    if not any(filled):
        return ""
    output = [literals[0]]      # text before the first field
    seen = False
    for position, value in enumerate(filled):
        if value:
            if seen:
                output.append(literals[position])   # the separator before this field
            output.append(value)
            seen = True
    output.append(literals[len(names)] if len(literals) > len(names) else "")
    return cut(" ".join("".join(output).split()), max_length)


def cut(text: str, max_length: int) -> str:
    """``text`` within ``max_length`` characters (0: any length), cut at a word with "…"."""
    if not max_length or len(text) <= max_length:
        return text
    room = max_length - len(ELLIPSIS)
    if room <= 0:
        return text[:max_length]
    head = text[:room + 1]
    space = head.rfind(" ")
    kept = head[:space] if space > 0 else text[:room]
    return kept.rstrip(" ,;:-–—") + ELLIPSIS


def captions_for(settings, provenance: Provenance) -> Captions:
    """What ``[captions]`` (``CaptionsConfig``) makes of one item's provenance."""
    values = fields(provenance)
    return Captions(render(settings.title, values, settings.max_length),
                    render(settings.caption, values, settings.max_length))


def caption_photo(promotion):
    """The promotion step (``transforms.STEPS``): the photo with its title and caption
    written in (``embed.write``), or None when captions are off, there is nothing to write,
    the file has its own and ``overwrite`` is false, or the format cannot carry them."""
    from pipeline.transforms import Transformed

    settings = promotion.config.captions
    if not settings.enabled:
        return None
    wanted = captions_for(settings, promotion.provenance)
    if not wanted.title and not wanted.caption:
        return None
    image_format = promotion.signature.format
    name = shown(promotion.provenance.name)
    if image_format not in embed.WRITERS:
        log.info("captions: %s left uncaptioned: %s files are not captioned (it would mean "
                 "re-encoding the picture)", name, image_format)
        return None
    try:
        result = embed.write(promotion.path.read_bytes(), image_format,
                             embed.Texts(wanted.title, wanted.caption), settings.overwrite)
    except embed.NotWritable as exc:
        log.warning("captions: %s left uncaptioned: %s", name, exc)
        return None
    return Transformed(result.data) if result is not None else None


def recorded(config, provenance: Provenance, folder: str, path: Path | None,
             image_format: str) -> Captions | None:
    """What a decision record shows (None with captions off): for a photo going into
    Pictures the title and caption its file really carries, else the ones it would get."""
    if not config.captions.enabled or folder == "rejected":
        return None
    if folder == "pictures" and path is not None:
        try:
            texts = embed.read(path.read_bytes(), image_format)
        except (OSError, embed.NotWritable):
            return None
        return Captions(texts.title, texts.caption)
    return captions_for(config.captions, provenance)


def _quoted(template: str) -> str:
    return '"' + template + '"'
