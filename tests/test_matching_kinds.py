"""Issue 12: the kinds of copies the default matcher must catch (EXIF orientation on odd
sizes, mirrors, strong downscales, low-detail photos) and the look-alikes it must keep
apart, on real encoded images made here; and the gate and the resweep giving one answer.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from pipeline.config import parse_config
from pipeline.gate import decide
from pipeline.index import SignatureIndex
from pipeline.items import Verdict
from pipeline.matching import library_pairs
from pipeline.signatures import Signature, grid_bytes, sign_bytes, turn
from pipeline.store import Store
from tests import images

SETTINGS = parse_config({}).dedupe
LIMIT = parse_config({}).gate.max_pixels

# the transpose that STORES upright pixels so that EXIF orientation N shows them upright
STORED_FOR = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_270}
UPRIGHT = {orientation: (Image.Transpose.ROTATE_270 if orientation == 6 else
                         Image.Transpose.ROTATE_90 if orientation == 8 else transpose)
           for orientation, transpose in STORED_FOR.items()}   # each the other's inverse


def thumb_rms(first: Signature, second: Signature) -> float:
    difference = first.thumb_array().astype(float) - second.thumb_array().astype(float)
    return float(np.sqrt(np.mean(difference ** 2)) / 255)


def with_library(tmp_path, library: dict[str, bytes]):
    """A store holding ``library`` (name -> bytes) and its index."""
    store = Store(tmp_path / "store.sqlite3")
    with store.transaction() as tx:
        for name, data in library.items():
            store.put_file(tx, name, len(data), 0, sign_bytes(data, LIMIT))
    return store, SignatureIndex.from_store(store)


def gate_verdict(tmp_path, library: dict[str, bytes], newcomer: bytes):
    store, index = with_library(tmp_path, library)
    with store:
        decision = decide(sign_bytes(newcomer, LIMIT), index, store, SETTINGS)
    return decision.verdict, decision.matched_path


def resweep_pairs(tmp_path, library: dict[str, bytes]) -> set[frozenset[str]]:
    store, index = with_library(tmp_path, library)
    with store:
        edges = library_pairs(index, store, SETTINGS)
    return {frozenset((index.paths[a], index.paths[b])) for a, b, _, _ in edges}


# --- EXIF orientation on every size --------------------------------------------------

@pytest.mark.parametrize("size", [(500, 333), (1001, 667), (333, 500)])
def test_every_exif_orientation_gives_the_signature_of_the_pixels_it_means(size):
    upright = images.photo(21).resize(size, Image.Resampling.LANCZOS)
    lossless = sign_bytes(images.png(upright), LIMIT)
    plain = sign_bytes(images.jpeg(upright), LIMIT)
    for orientation in range(1, 9):
        stored = upright if orientation == 1 else upright.transpose(STORED_FOR[orientation])
        data = images.jpeg(stored, exif=images.camera_exif(orientation))
        shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        as_stored = sign_bytes(images.jpeg(stored), LIMIT)   # the same pixels, no tag
        signature = sign_bytes(data, LIMIT)
        assert shown.size == size == (signature.width, signature.height)
        # exactly the stored pixels' thumbnail, turned upright as a viewer turns them
        expected = as_stored.thumb_array()
        if orientation != 1:
            expected = np.asarray(Image.fromarray(expected).transpose(UPRIGHT[orientation]))
        assert np.array_equal(signature.thumb_array(), expected), orientation
        # and as close to the upright pixels as an upright JPEG is
        assert thumb_rms(signature, lossless) <= thumb_rms(plain, lossless) + 0.0004
