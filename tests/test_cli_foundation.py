"""End to end through the real command line in a temporary HOME, with real encoded images."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import images


@pytest.fixture(scope="module")
def original():
    picture = images.photo(11)
    return picture, images.jpeg(picture, exif=images.camera_exif())


def run_json(home, *arguments):
    result = home.run(*arguments, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_promotes_a_new_photo_into_pictures(home, original):
    home.drop("IMG_0001.jpg", original[1])
    summary = run_json(home, "run")
    assert summary["fetched"] == 1 and summary["promoted"] == 1
    assert (home.pictures / "IMG_0001.jpg").read_bytes() == original[1]
    assert home.files(home.inbox) == []


@pytest.mark.parametrize("kind", ["byte_copy", "exif_stripped", "recompressed",
                                  "downscaled_50", "downscaled_1024", "rotated_90",
                                  "rotated_180", "rotated_270", "exif_orientation", "png",
                                  "heic"])
def test_gate_quarantines_copy(home, original, kind):
    picture, data = original
    home.drop("IMG_0001.jpg", data)
    run_json(home, "run")
    copy = images.variants(picture, data)[kind]
    home.drop(f"copy-{kind}", copy)
    summary = run_json(home, "run")
    assert summary["duplicates"] == 1, home.run("quarantine", "list").stdout
    assert home.files(home.pictures) == ["IMG_0001.jpg"]
    quarantined = home.files(home.quarantine)
    assert len(quarantined) == 1 and (home.quarantine / quarantined[0]).read_bytes() == copy
