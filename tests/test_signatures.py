"""Unit tests of the signature functions on real encoded images."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image

from pipeline.config import parse_config
from pipeline.index import SignatureIndex
from pipeline.matching import SIMILAR, Newcomer, Pairs
from pipeline.signatures import (THUMB, NotAnImage, decode_reduced, phash, sign_bytes,
                                 to_signed64, to_unsigned64)
from pipeline.store import Store
from tests import images

LIMIT = parse_config({}).gate.max_pixels    # the default [gate] max_megapixels


def thumbnail_distances(tmp_path, query, library, turns=(0,)) -> list[float]:
    """The real matcher's thumbnail RMS (0..1) of ``query`` turned by each of ``turns``
    quarter turns against ``library``, every other limit of the confirm step opened up
    (``inf`` where the turned sides do not have the library file's aspect ratio)."""
    opened = dataclasses.replace(parse_config({}).dedupe, thumb_rms=1.0, luma_delta=1.0,
                                 mean_delta=1.0)
    with Store(tmp_path / "store.sqlite3") as store:
        with store.transaction() as tx:
            store.put_file(tx, "library.jpg", library.size, 0, library)
        index = SignatureIndex.from_store(store)
        pairs = Pairs.of([0] * len(turns), [0] * len(turns), turns)
        return SIMILAR.confirm(Newcomer(query), index, store, pairs, opened).tolist()


@pytest.fixture(scope="module")
def picture():
    return images.photo(21)


def test_signature_holds_hash_size_and_statistics(picture):
    data = images.jpeg(picture)
    signature = sign_bytes(data, LIMIT)
    assert signature.sha256 == hashlib.sha256(data).hexdigest()
    assert (signature.width, signature.height, signature.format) == (1200, 800, "JPEG")
    assert len(signature.thumb) == THUMB * THUMB
    full_mean = np.asarray(picture, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    assert np.allclose(signature.mean, full_mean, atol=1.5)  # reduced decode, same means
    assert all(rms >= mean for rms, mean in zip(signature.rms, signature.mean))


def test_jpeg_is_decoded_at_reduced_size(picture):
    data = images.jpeg(picture.resize((1920, 1200)))
    image, image_format, width, height = decode_reduced(data, LIMIT)
    assert image.size == (240, 150)  # decoded at 1/8 inside libjpeg, never at full size
    assert (image_format, width, height) == ("JPEG", 1920, 1200)


def test_exif_orientation_is_honoured(picture, tmp_path):
    upright = sign_bytes(images.jpeg(picture), LIMIT)
    sideways = sign_bytes(images.exif_rotated(picture), LIMIT)
    assert (sideways.width, sideways.height) == (1200, 800)
    assert thumbnail_distances(tmp_path, sideways, upright)[0] < 0.01


def test_rotated_thumbnail_matches_one_of_four_rotations(picture, tmp_path):
    upright = sign_bytes(images.jpeg(picture), LIMIT)
    turned = sign_bytes(images.jpeg(picture.rotate(90, expand=True)), LIMIT)
    distances = thumbnail_distances(tmp_path, turned, upright, turns=(0, 1, 2, 3))
    assert min(distances) < 0.01 and max(distances) > 0.05


def test_phash_is_stable_under_recompression_and_differs_between_photos(picture):
    first = sign_bytes(images.jpeg(picture, quality=92), LIMIT)
    again = sign_bytes(images.jpeg(picture, quality=60), LIMIT)
    other = sign_bytes(images.jpeg(images.photo(22)), LIMIT)
    assert bin(first.phash ^ again.phash).count("1") <= 4
    assert bin(first.phash ^ other.phash).count("1") >= 16
    assert phash(first.thumb_array()) == first.phash


@pytest.mark.parametrize("maker", [images.png, images.heic])
def test_other_formats_give_the_same_thumbnail(picture, maker, tmp_path):
    reference = sign_bytes(images.jpeg(picture, quality=95), LIMIT)
    other = sign_bytes(maker(picture), LIMIT)
    assert thumbnail_distances(tmp_path, other, reference)[0] < 0.006


def test_odd_modes_are_signed():
    cmyk = Image.new("CMYK", (300, 200), (10, 200, 30, 0))
    sixteen = Image.fromarray(np.full((200, 300), 40000, dtype=np.uint16))
    palette = Image.new("P", (300, 200), 3)
    palette.info["transparency"] = 3
    for image in (cmyk, sixteen, palette):
        data = images.jpeg(image) if image.mode == "CMYK" else images.png(image)
        signature = sign_bytes(data, LIMIT)
        assert signature.width == 300
    assert sign_bytes(images.png(sixteen), LIMIT).mean[0] == pytest.approx(40000 / 257, abs=1)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (240, 160), color) for color in ((250, 0, 0), (0, 0, 250))]
    import io
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert sign_bytes(buffer.getvalue(), LIMIT).mean[0] > 200


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"<html>hello</html>", "not an image"),
    (images.jpeg(Image.new("RGB", (64, 64)))[:400], "corrupt or truncated"),
])
def test_bad_bytes_give_a_reason(data, reason):
    with pytest.raises(NotAnImage, match=reason):
        sign_bytes(data, LIMIT)


def test_truncated_jpeg_is_refused(picture):
    with pytest.raises(NotAnImage):
        sign_bytes(images.corrupt_jpeg(images.jpeg(picture)), LIMIT)


def test_decompression_bomb_is_refused():
    with pytest.raises(NotAnImage, match="decompression bomb"):
        sign_bytes(images.png(Image.new("L", (5000, 5000))), max_pixels=10_000_000)


def test_hash_survives_signed_storage():
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        assert to_unsigned64(to_signed64(value)) == value


def test_a_heic_with_an_embedded_thumbnail_is_signed_from_its_own_pixels():
    """iPhones write a 320 px thumbnail into every HEIC; a reduced decode that picked it
    would sign other pixels (measured above thumb_rms from the photo on phone photos)."""
    import io

    import pillow_heif

    from pipeline.signatures import sign_bytes
    from tests import images as test_images
    pillow_heif.register_heif_opener()
    picture = test_images.painting(7, (1600, 1200))
    plain, with_thumbnail = io.BytesIO(), io.BytesIO()
    picture.save(plain, "HEIF", quality=60, thumbnails=[])
    picture.save(with_thumbnail, "HEIF", quality=60, thumbnails=[320])
    assert len(with_thumbnail.getvalue()) > len(plain.getvalue())     # it is really there
    first = sign_bytes(plain.getvalue(), 10**8)
    second = sign_bytes(with_thumbnail.getvalue(), 10**8)
    assert first.thumb == second.thumb and first.mean == second.mean
