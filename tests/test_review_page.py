"""The review page, rendered by a real headless Chromium from a file:// URL."""

from __future__ import annotations

import shlex
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.config import parse_config
from pipeline.items import DecisionRecord
from pipeline.review import write_review
from pipeline.store import Store
from tests import images

HOSTILE = "<b>bold<b> & 'it''s' $(reboot).jpg"


def chromium(tmp_path: Path, url: str, *arguments: str) -> str:
    command = ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1200,900",
               *arguments, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Entries(HTMLParser):
    """Collects the entry blocks, their text, and any <b> element (there must be none)."""

    def __init__(self):
        super().__init__()
        self.entries, self.bold, self.images, self.text = 0, 0, [], []

    def handle_starttag(self, tag, attributes):
        attributes = dict(attributes)
        self.entries += tag == "div" and "entry" in (attributes.get("class") or "").split()
        self.bold += tag == "b"
        if tag == "img":
            self.images.append(attributes["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_review_page_shows_quarantined_and_rejected_files(home, tmp_path):
    picture = images.photo(31)
    original = images.jpeg(picture)
    home.pictures.mkdir(parents=True)
    (home.pictures / "original.jpg").write_bytes(original)
    (home.pictures / HOSTILE).write_bytes(images.variants(picture, original)["downscaled_50"])
    home.run("resweep", check=True)
    home.drop("broken <i>.jpg", images.corrupt_jpeg(original))
    home.run("run", check=True)
    output = tmp_path / "review"
    result = home.run("review", "--output", str(output), check=True)
    assert result.stdout.strip().endswith((output / "index.html").as_uri())
    url = (output / "index.html").as_uri()

    page = Entries()
    page.feed(chromium(tmp_path, url, "--dump-dom"))
    text = " ".join(page.text)
    assert page.entries == 2 and page.bold == 0
    assert HOSTILE in text and "broken <i>.jpg" in text
    restore = shlex.join(["frame-ingest", "quarantine", "restore",
                          home.files(home.quarantine)[0]])
    assert restore in text
    assert len(page.images) == 2  # the quarantined file and its library file
    assert "no preview" in text     # the rejected file cannot be decoded
    assert all((output / source).exists() for source in page.images)

    screenshot = tmp_path / "review.png"
    chromium(tmp_path, url, f"--screenshot={screenshot}")
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # text and thumbnails, not a blank page


def test_review_is_paginated_newest_first(tmp_path):
    config = parse_config({"library": {name: str(tmp_path / name) for name in
                                       ("pictures", "quarantine", "rejected", "state_dir")}})
    with Store(tmp_path / "store.sqlite3") as store:
        with store.transaction() as tx:
            for number in range(205):
                store.record_decision(tx, DecisionRecord(
                    verdict="quarantined", folder="quarantine",
                    path=f"2026-01-01/photo-{number}.jpg", name="x.jpg",
                    decided_at=f"2026-01-01T{number // 60:02d}:{number % 60:02d}:00+00:00"))
        first, count = write_review(store, config, tmp_path / "review")
    pages = [Entries(), Entries()]
    pages[0].feed(first.read_text())
    pages[1].feed((tmp_path / "review" / "page-2.html").read_text())
    assert count == 205 and [page.entries for page in pages] == [200, 5]
    assert "photo-204.jpg" in pages[0].text[pages[0].text.index("file") + 1]
