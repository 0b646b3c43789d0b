"""Live Photos made for real: a MOV encoded by PyAV with Apple's content identifier key
(ExifTool reads it as [Keys] ContentIdentifier) and a JPEG still carrying the same id in an
Apple maker note (ExifTool: [Apple] MediaGroupUUID) or in XMP apple-fi:ContentIdentifier.
The parts are paired by the id alone, in either order; names are made unrelated on purpose.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pillow_heif
import pytest
from PIL import Image

from pipeline.live_photos import still_identifier
from tests import images, videos
from tests.test_video_gate import drop_file, reasons

IDENTIFIER = "6A1C7D2E-31F0-4B8A-9E55-0D4C2B1A9F77"
KEY = "com.apple.quicktime.content.identifier"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    motion = videos.clip(folder / "IMG_0001.MOV", seed=8, metadata={KEY: IDENTIFIER})
    first = next(videos.frames(8)).resize((480, 360))
    still = folder / "holiday.jpg"
    still.write_bytes(videos.live_still(first, IDENTIFIER))
    exported = folder / "exported.jpg"
    exported.write_bytes(videos.live_still(first, IDENTIFIER, xmp=True))
    return motion, still, exported


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_the_parts_carry_the_id_where_apple_writes_it(pair):
    motion, still, exported = pair
    keys = subprocess.run(["exiftool", "-a", "-G1", "-s", str(motion), str(still),
                           str(exported)], capture_output=True, text=True).stdout
    assert f"[Keys]          ContentIdentifier               : {IDENTIFIER}" in keys
    assert f"[Apple]         MediaGroupUUID                  : {IDENTIFIER}" in keys
    assert f"[XMP-apple-fi]  ContentIdentifier               : {IDENTIFIER}" in keys
    assert still_identifier(still) == still_identifier(exported) == IDENTIFIER
    heic = still.parent / "IMG_0001.HEIC"      # what an iPhone sends: HEIC, same maker note
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x927C] = videos.apple_maker_note(IDENTIFIER)
    pillow_heif.register_heif_opener()
    images.photo(2).resize((320, 240)).save(heic, "HEIF", exif=exif.tobytes())
    assert still_identifier(heic) == IDENTIFIER
    plain = still.parent / "plain.jpg"
    plain.write_bytes(images.jpeg(images.photo(1)))
    assert still_identifier(plain) == ""


def _config(home, mode):
    path = home.path / "config.toml"
    path.write_text(f'[video]\nlive_photos = "{mode}"\n')
    return str(path)


@pytest.mark.parametrize("motion_first", [False, True], ids=["still-first", "motion-first"])
def test_still_mode_files_the_still_and_quarantines_the_motion_part(home, pair,
                                                                    motion_first):
    motion, still, _ = pair
    config = _config(home, "still")
    order = [("clip.mov", motion), ("photo.jpg", still)]
    for name, source in (reversed(order) if not motion_first else order):
        drop_file(home, name, source)
        home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == ["photo.jpg"]
    quarantined = [path.rsplit("/", 1)[1] for path in home.files(home.quarantine)]
    assert quarantined == ["clip.mov"]
    found = reasons(home)
    assert "motion part of a Live Photo" in found["clip.mov"][1]


def test_video_mode_moves_the_filed_still_out_when_its_motion_part_arrives(home, pair):
    motion, _, exported = pair
    config = _config(home, "video")
    drop_file(home, "photo.jpg", exported)
    home.run("--config", config, "run", check=True)
    drop_file(home, "clip.mov", motion)
    home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == ["clip.mov"]
    assert [path.rsplit("/", 1)[1] for path in home.files(home.quarantine)] == ["photo.jpg"]
    with sqlite3.connect(home.state_dir / "store.sqlite3") as db:
        moved = db.execute("SELECT source, reason FROM decisions WHERE verdict = "
                           "'quarantined'").fetchall()
    assert moved == [("resweep", 'the still of a Live Photo whose motion part arrived '
                                 '([video] live_photos = "video")')]


def test_both_mode_files_both_parts(home, pair):
    motion, still, _ = pair
    config = _config(home, "both")
    drop_file(home, "photo.jpg", still)
    drop_file(home, "clip.mov", motion)
    home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == ["clip.mov", "photo.jpg"]


@pytest.fixture(scope="module")
def motion_photo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("motion")
    movie = videos.clip(folder / "embedded.mp4", seed=12).read_bytes()
    still = videos.motion_photo(next(videos.frames(12)).resize((480, 360)), movie)
    return still, movie


@pytest.mark.parametrize("mode, pictures, quarantined", [
    ("still", ["PXL_1.jpg"], ["PXL_1.mp4"]),
    ("both", ["PXL_1.jpg", "PXL_1.mp4"], []),
    ("video", ["PXL_1.mp4"], ["PXL_1.jpg"]),
])
def test_a_motion_photo_is_split_into_its_still_and_its_video(home, motion_photo, mode,
                                                              pictures, quarantined):
    still, movie = motion_photo
    home.drop("PXL_1.jpg", still)
    home.run("--config", _config(home, mode), "run", check=True)
    assert home.files(home.pictures) == pictures
    assert [path.rsplit("/", 1)[1] for path in home.files(home.quarantine)] == quarantined
    filed = {path.name: path.read_bytes() for path in
             list(home.pictures.iterdir()) + list(home.quarantine.rglob("*.*"))}
    assert filed["PXL_1.jpg"] == still and filed["PXL_1.mp4"] == movie
