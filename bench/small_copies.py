#!/usr/bin/env python3
"""Mirrors and small copies against a bench/corpus.py folder, through the resweep's matcher.

Adds, for every original, a left-right mirror and copies at 192x120 (1/10, Lanczos),
102x64 (bilinear) and 64x40 (1/30, Lanczos); for every burst neighbour the same three
small copies (labelled as copies of the NEIGHBOUR, so a neighbour matching its own small
copy is a true pair); signs everything with the product's signer and prints recall per
kind and every false pair of ``matching.library_pairs`` (docs/dedupe.md, issue 12).

    python bench/corpus.py /tmp/c150 --originals 150 --seed 1 --all-kinds
    python bench/small_copies.py /tmp/c150
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from bench.corpus import ALL_NEG_KINDS as NEG_KINDS  # noqa: E402
from pipeline.config import parse_config  # noqa: E402
from pipeline.index import SignatureIndex  # noqa: E402
from pipeline.matching import library_pairs  # noqa: E402
from pipeline.signatures import sign_bytes  # noqa: E402
from pipeline.store import Store  # noqa: E402

SMALL = {"small_192": ((192, 120), Image.Resampling.LANCZOS),
         "small_102": ((102, 64), Image.Resampling.BILINEAR),
         "small_64": ((64, 40), Image.Resampling.LANCZOS)}


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def made_copies(name: str, content: bytes, original: bool) -> list[tuple[str, str, bytes]]:
    """The small copies (and, of an original, the mirror) of one corpus file, as
    (new name, kind, JPEG bytes)."""
    image = Image.open(io.BytesIO(content)).convert("RGB")
    made = {label: image.resize(size, method) for label, (size, method) in SMALL.items()}
    if original:
        made["mirror"] = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return [(f"{label}-{name}", label, _jpeg(picture)) for label, picture in made.items()]


def load_corpus(corpus: Path):
    """(labels, data, group, kind) of a bench/corpus.py folder by file name: a copy's
    group is its original, an original's or a hard negative's is itself."""
    labels = {f["name"]: f for f in json.loads((corpus / "labels.json").read_text())["files"]}
    data = {name: (corpus / name).read_bytes() for name in labels}
    group = {name: name if f["kind"] == "original" or f["kind"] in NEG_KINDS else f["of"]
             for name, f in labels.items()}
    kind = {name: f["kind"] for name, f in labels.items()}
    return labels, data, group, kind


def main(argv=None) -> int:
    corpus = Path((argv or sys.argv[1:])[0])
    labels, data, group, kind = load_corpus(corpus)
    for name, f in list(labels.items()):
        if f["kind"] == "original" or f["kind"] in NEG_KINDS:
            for new, label, content in made_copies(name, data[name], f["kind"] == "original"):
                data[new], group[new], kind[new] = content, name, label
    settings = parse_config({}).dedupe
    with tempfile.TemporaryDirectory() as folder:
        with Store(Path(folder) / "store.sqlite3") as store:
            with store.transaction() as tx:
                for name, content in data.items():
                    store.put_file(tx, name, len(content), 0, sign_bytes(content, 10**9))
            index = SignatureIndex.from_store(store)
            edges = library_pairs(index, store, settings)
    pairs = [(index.paths[a], index.paths[b], distance) for a, b, _, distance in edges]
    caught = {name for a, b, _ in pairs if group[a] == group[b] for name in (a, b)}
    for label in ("mirror", *SMALL):
        of_originals = [name for name in kind if kind[name] == label
                        and labels[group[name]]["kind"] == "original"]
        print(f"{label:10} caught {sum(name in caught for name in of_originals)} of "
              f"{len(of_originals)}")
    false = [(a, b, distance) for a, b, distance in pairs if group[a] != group[b]]
    print(f"{len(data)} files, {len(pairs)} pairs, {len(false)} false:")
    for a, b, distance in false:
        print(f"  {a} ({kind[a]} of {group[a]}) ~ {b} ({kind[b]} of {group[b]}): {distance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
