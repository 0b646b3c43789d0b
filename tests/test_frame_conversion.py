"""Every photo in a format the frame shows: through the command line, with real encoded files.

A photo in a format outside ``[library] frame_formats`` is promoted as a JPEG (quality 92,
upright, EXIF and ICC kept, an animation's first frame) and its original kept in quarantine
("converted for the frame"); sending the original again is a duplicate of that JPEG, by
any method; JPEG, MPO, PNG and HEIC go in untouched; the resweep converts nothing.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image, ImageCms

from pipeline.store import Store
from tests import images
from tests.frame_cli import FrameCli


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture():
    return images.painting(151, (600, 400))     # photo-like, and quick to make


@pytest.fixture(scope="module")
def webp(picture):
    """A WebP as a phone shares it: stored on its side with EXIF Orientation 6, a camera's
    EXIF (with the date taken in the Exif directory) and an ICC profile."""
    exif = images.camera_exif(orientation=6)
    exif.get_ifd(0x8769)[0x9003] = "2026:07:14 10:11:12"      # DateTimeOriginal
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = picture.transpose(Image.Transpose.ROTATE_90)      # shown upright after 6
    return encoded(stored, "WEBP", quality=90, exif=exif.tobytes(), icc_profile=icc), icc


def test_a_webp_is_promoted_as_an_upright_jpeg_with_its_exif_and_icc_and_kept_in_quarantine(
        home, webp, picture):
    data, icc = webp
    frame = FrameCli(home)
    home.drop("Holiday.webp", data)
    assert frame.run()["promoted"] == 1
    assert home.files(home.pictures) == ["Holiday.jpg"]
    filed = home.pictures / "Holiday.jpg"
    with Image.open(filed) as jpeg:
        assert jpeg.format == "JPEG" and jpeg.size == picture.size     # turned upright
        assert _mean_gap(jpeg.convert("RGB"), picture) < 4
        exif = jpeg.getexif()
        assert (exif[0x010F], exif[0x0112]) == ("Frame Test Camera", 1)
        assert exif.get_ifd(0x8769)[0x9003] == "2026:07:14 10:11:12"
        assert jpeg.info["icc_profile"] == icc
    [entry] = frame.quarantined()
    assert (entry["reason"], entry["duplicate_of"]) == ("converted for the frame", "Holiday.jpg")
    kept = home.quarantine / entry["name"]
    assert kept.name == "Holiday.webp" and kept.read_bytes() == data
    assert "converted for the frame (in Pictures as Holiday.jpg)" in \
        frame("quarantine", "list").stdout
    with Store(home.state_dir / "store.sqlite3") as store:
        row = store.file("Holiday.jpg")
        assert row["sha256"] == hashlib.sha256(filed.read_bytes()).hexdigest()
        assert row["format"] == "JPEG"


@pytest.mark.parametrize("method", ["exact", "similar"])
def test_the_original_sent_again_is_an_exact_duplicate_of_the_jpeg_made_from_it(home, webp,
                                                                               method):
    frame = FrameCli(home, more=f'[dedupe]\nmethod = "{method}"\n')
    home.drop("a.webp", webp[0])
    frame.run()
    home.drop("again/a.webp", webp[0])
    summary = frame.run()
    assert summary["promoted"] == 0 and summary["duplicates"] == 1
    assert home.files(home.pictures) == ["a.jpg"]
    resent = [entry for entry in frame.quarantined() if entry["method"]]
    assert [(entry["method"], entry["duplicate_of"]) for entry in resent] == [("exact", "a.jpg")]


def test_other_formats_become_jpeg_and_the_frames_own_formats_go_in_untouched(home):
    def small(seed: int) -> Image.Image:        # distinct photo-like pictures, quick to make
        return images.painting(seed, (320, 240))
    frames = [small(152).convert("P"), small(153).convert("P")]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=200)
    untouched = {"plain.jpg": images.jpeg(small(155)),
                 "stereo.jpg": encoded(small(156), "MPO", save_all=True,
                                       append_images=[small(157)]),
                 "drawing.png": images.png(small(158)),
                 "phone.heic": images.heic(small(159))}
    sent = {"anim.gif": animated.getvalue(), "scan.tif": encoded(small(154), "TIFF"),
            "old.bmp": encoded(small(160), "BMP"), **untouched}
    frame = FrameCli(home)
    for name, data in sent.items():
        home.drop(name, data)
    assert frame.run()["promoted"] == len(sent)
    assert home.files(home.pictures) == sorted(["anim.jpg", "scan.jpg", "old.jpg", *untouched])
    for name, data in untouched.items():
        assert (home.pictures / name).read_bytes() == data, name
    with Image.open(home.pictures / "anim.jpg") as first:
        difference = images.decoded(images.jpeg(frames[0].convert("RGB"), quality=92))
        assert first.format == "JPEG" and getattr(first, "n_frames", 1) == 1
        assert _mean_gap(first.convert("RGB"), difference) < 4   # the first frame, not the second
    assert sorted(entry["reason"] for entry in frame.quarantined()) == \
        ["converted for the frame"] * 3


def test_a_format_listed_in_frame_formats_and_photos_already_in_pictures_stay_as_they_are(
        home, webp, picture):
    frame = FrameCli(home, library='frame_formats = ["JPEG", "PNG", "HEIF", "WEBP"]\n')
    home.drop("kept.webp", webp[0])
    home.pictures.mkdir(parents=True)
    by_hand = encoded(images.painting(160, (320, 240)), "TIFF")
    (home.pictures / "by hand.tif").write_bytes(by_hand)
    assert frame.run()["promoted"] == 1
    frame("resweep")
    assert home.files(home.pictures) == ["by hand.tif", "kept.webp"]
    assert (home.pictures / "by hand.tif").read_bytes() == by_hand
    assert frame.quarantined() == []
    bad = FrameCli(home, library='frame_formats = ["PNG", "AVIF"]\n')("status", check=False)
    assert bad.code == 2 and bad.stderr.strip().count("\n") == 0
    assert '[library] frame_formats: unknown format "AVIF"' in bad.stderr


def test_the_original_of_a_removed_conversion_stays_out_and_the_review_page_says_why(home, webp):
    frame = FrameCli(home, more='[dedupe]\nmethod = "exact"\n')
    home.drop("gone.webp", webp[0])
    frame.run()
    frame("remove", "gone.jpg")
    home.drop("gone again.webp", webp[0])
    assert frame.run()["duplicates"] == 1
    assert home.files(home.pictures) == []
    removed = [entry for entry in frame.quarantined() if entry["method"]]
    assert [entry["reason"][:27] for entry in removed] == ["removed from the frame on 2"]
    page = frame("review", "--output", str(home.path / "review"))
    html = (home.path / "review" / "index.html").read_text()
    assert "2 file(s) to review" in page.stdout
    assert "converted for the frame" in html and "removed from the frame on" in html
    # beside the re-sent original: the removed JPEG from DeletedPictures, with a thumbnail
    assert re.search(r'<img src="thumbs/\w+\.jpg" alt="removed from the frame">', html)


def _mean_gap(first: Image.Image, second: Image.Image) -> float:
    import numpy as np
    return float(np.abs(np.asarray(first, np.float32) - np.asarray(second, np.float32)).mean())
