"""`frame-ingest review`: a static HTML page of every quarantined and rejected file.

Someone looks at it from a file:// URL on any machine that can see the folder: no server,
no scripts, no CDN; thumbnails are small JPEGs written next to the page (decoded with
Pillow's draft mode, so a 12-megapixel photo costs a 1/8 decode). Each entry shows the
file beside the library file it was taken for, why, where it came from, and the exact
shell command that undoes the decision. File names, senders and subjects arrive from
strangers' e-mail, so every text is HTML-escaped and every command shell-quoted.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from PIL import Image, ImageOps

from pipeline.config import Config
from pipeline.signatures import NotAnImage, decode_reduced
from pipeline.text import shell_word, shown
from pipeline.video_decode import duration_seconds, poster_frame
from pipeline.video_formats import sniff_video_file

PER_PAGE = 200
THUMB_SIDE = 160

STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #f4f4f2; color: #222; }
h1 { font-size: 1.4em; } nav a, nav strong { margin-right: .6em; }
.entry { display: flex; gap: 1em; background: #fff; border: 1px solid #ccc;
         border-radius: 6px; padding: .8em; margin: .8em 0; align-items: flex-start; }
figure { margin: 0; width: 170px; text-align: center; font-size: .8em; }
figure img { max-width: 160px; max-height: 160px; border: 1px solid #999; }
.missing { width: 160px; height: 110px; background: #ddd; display: flex;
           align-items: center; justify-content: center; color: #666; }
.facts { flex: 1; font-size: .9em; } .facts dt { font-weight: bold; float: left;
         width: 7em; } .facts dd { margin-left: 7.5em; }
code { background: #eee; padding: .2em .4em; display: inline-block; word-break: break-all; }
.verdict-rejected { border-left: 6px solid #c33; } .verdict-quarantined { border-left:
  6px solid #e90; }
"""


def write_review(store, config: Config, output: Path) -> tuple[Path, int]:
    """Write the pages (index.html, page-2.html, ...) and thumbnails; return the first
    page and the number of entries."""
    rows = store.decisions_in("quarantine") + store.decisions_in("rejected")
    rows.sort(key=lambda row: (row["decided_at"], row["id"]), reverse=True)
    (output / "thumbs").mkdir(parents=True, exist_ok=True)
    pages = [rows[start:start + PER_PAGE] for start in range(0, len(rows), PER_PAGE)] or [[]]
    removed = {row["sha256"]: config.library.removed_folder / row["kept"]
               for row in store.removed_rows() if row["kept"]}
    for number, page_rows in enumerate(pages, start=1):
        entries = "\n".join(render_entry(row, config, output, removed) for row in page_rows)
        text = PAGE.format(style=STYLE, count=len(rows), nav=navigation(number, len(pages)),
                           entries=entries or "<p>Nothing in quarantine or rejected.</p>")
        (output / page_name(number)).write_text(text, encoding="utf-8")
    return output / page_name(1), len(rows)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>frame-ingest: files to review</title><style>{style}</style></head>
<body><h1>frame-ingest: {count} file(s) to review</h1>
<p>Newest first. Each file stands next to the library photo it was taken for; to undo a
decision, run the command shown under it.</p>
<nav>{nav}</nav>
{entries}
<nav>{nav}</nav>
</body></html>
"""


def page_name(number: int) -> str:
    return "index.html" if number == 1 else f"page-{number}.html"


def navigation(current: int, total: int) -> str:
    if total == 1:
        return ""
    return "pages: " + " ".join(
        f"<strong>{number}</strong>" if number == current
        else f'<a href="{page_name(number)}">{number}</a>' for number in range(1, total + 1))


def render_entry(row, config: Config, output: Path, removed: dict | None = None) -> str:
    """One decision as an HTML block; every value from the store is escaped. ``removed``:
    SHA-256 -> file in removed_folder, shown for a photo taken for one removed from the
    frame (its library file is gone)."""
    folder = config.library.quarantine if row["folder"] == "quarantine" else \
        config.library.rejected
    here = folder / row["path"]
    kept = config.library.pictures / row["matched_path"] if row["matched_path"] else None
    kept_label = "library file"
    if removed and row["matched_sha256"] in removed:
        kept, kept_label = removed[row["matched_sha256"]], "removed from the frame"
    distance = "" if row["distance"] is None else f"{row['distance']:g}"
    facts = [("verdict", row["verdict"]), ("file", row["path"]), ("arrived as", row["name"]),
             ("duplicate of", row["matched_path"] or ""), ("method", row["method"] or ""),
             ("distance", distance), ("reason", row["reason"] or ""),
             ("source", row["source"] or ""), ("sender", row["sender"] or ""),
             ("subject", row["subject"] or ""), ("title", row["title"] or ""),
             ("caption", row["caption"] or ""), ("date", row["decided_at"])]
    listed = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(shown(value))}</dd>"
                     for label, value in facts if value)
    return (f'<div class="entry verdict-{html.escape(row["verdict"])}">'
            f'{figure(here, "this file", output, config)}'
            f'{figure(kept, kept_label, output, config) if kept else ""}'
            f'<div class="facts"><dl>{listed}</dl>'
            f"<p>To undo: <code>{html.escape(undo_command(row, config))}</code></p>"
            f"</div></div>")


def undo_command(row, config: Config) -> str:
    """The exact shell command that reverses this decision."""
    if row["folder"] == "quarantine":
        words = ["frame-ingest"]
        if config.path:
            words += ["--config", str(config.path)]
        return " ".join(map(shell_word, words + ["quarantine", "restore", row["path"]]))
    source = config.library.rejected / row["path"]
    return " ".join(map(shell_word, ["mv", "-n", "--", str(source),
                                     str(config.library.pictures) + "/"]))


def figure(path: Path | None, caption: str, output: Path, config: Config) -> str:
    thumb = make_thumbnail(path, output, config.gate.max_pixels) if path else None
    if path is not None and _is_video(path):
        seconds = duration_seconds(path)
        caption += f" (video, {seconds:.1f} s)" if seconds is not None else " (video)"
    picture = f'<img src="thumbs/{thumb}" alt="{html.escape(caption)}">' if thumb else \
        '<div class="missing">no preview</div>'
    return f"<figure>{picture}<figcaption>{html.escape(caption)}</figcaption></figure>"


def make_thumbnail(path: Path, output: Path, max_pixels: int) -> str | None:
    """A small JPEG of ``path`` in output/thumbs (reused while the file is unchanged)."""
    try:
        status = path.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{path}\0{status.st_size}\0{status.st_mtime_ns}"
                         .encode("utf-8", "surrogateescape"))
    name = key.hexdigest()[:24] + ".jpg"
    target = output / "thumbs" / name
    if target.exists():
        return name
    if _is_video(path):     # its poster frame: one seek and one decode, never the file
        image = poster_frame(path)
        if image is None:
            return None
    else:
        try:
            image, _, _, _ = decode_reduced(path.read_bytes(), max_pixels)
        except (OSError, NotAnImage):
            return None
    image = ImageOps.contain(image, (THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    image.save(target, "JPEG", quality=80)
    return name


def _is_video(path: Path) -> bool:
    try:
        return sniff_video_file(path) is not None
    except OSError:
        return False
