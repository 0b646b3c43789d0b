"""Dropbox: a file is judged only on verified bytes. Damage in the first bytes of a download
(the format's signature) must not make a photo look like "not an image" and get it skipped
for good; a file named like an image whose bytes say otherwise is downloaded whole,
verified against its content_hash, and staged for the gate to reject with a reason.
"""

from __future__ import annotations

import certifi
import pytest

from tests.support.dropbox_emulator import DropboxEmulator
from tests.test_reliability_everyday import assert_clean_output, small_jpeg

APP_KEY = "frame-ingest-damage-test"


@pytest.fixture(scope="module")
def emulator():
    with DropboxEmulator() as emu:
        yield emu


def linked_run(home, emulator, folder: str):
    token = emulator.add_refresh_token(APP_KEY)
    home.state_dir.mkdir(parents=True, exist_ok=True)
    (home.state_dir / "dropbox-refresh-token").write_text(token + "\n")
    (home.state_dir / "dropbox-refresh-token").chmod(0o600)
    config = home.path / "frame-ingest.toml"
    config.write_text(f'[sources.folder]\nenabled = false\n\n[sources.dropbox]\nenabled = true\n'
                      f'app_key = "{APP_KEY}"\nfolder = "{folder}"\n'
                      f'ca_file = "{emulator.ca_file}"\nretries = 2\n')
    config.chmod(0o600)

    def run():
        return home.run("--config", str(config), "run",
                        extra_env={**emulator.env(), "REQUESTS_CA_BUNDLE": certifi.where()})
    return run


def test_damage_in_the_first_bytes_of_a_download_is_retried_and_the_photo_arrives(home,
                                                                                   emulator):
    folder = "/Damaged First Bytes"
    data = small_jpeg(2301)
    emulator.put_file(f"{folder}/IMG_2301.jpg", data)
    emulator.corrupt_content_hash(f"{folder}/IMG_2301.jpg", mode="first-byte", times=1)
    try:
        result = linked_run(home, emulator, folder)()
    finally:
        emulator.clear_faults()
    assert result.returncode == 0, result.stderr
    assert_clean_output(result)
    assert home.files(home.pictures) == ["IMG_2301.jpg"]
    assert (home.pictures / "IMG_2301.jpg").read_bytes() == data


def test_a_file_named_like_an_image_that_is_not_one_is_verified_and_rejected_with_a_reason(
        home, emulator):
    folder = "/Named Like Photos"
    page = b"<!DOCTYPE html><html><body>a web page saved as a photo</body></html>\n"
    emulator.put_file(f"{folder}/holiday.jpg", page)
    emulator.put_file(f"{folder}/notes.txt", b"just words")
    result = linked_run(home, emulator, folder)()
    assert result.returncode == 0, result.stderr
    assert_clean_output(result)
    [rejected] = home.files(home.rejected)
    assert rejected.endswith("holiday.jpg")
    assert (home.rejected / rejected).read_bytes() == page
    assert "rejected holiday.jpg: not an image" in result.stderr
    assert "notes.txt: not an image" in result.stderr           # skipped, as before
    assert home.files(home.pictures) == []


def test_damage_that_outlasts_the_retries_leaves_the_photo_in_dropbox_for_the_next_run(
        home, emulator):
    folder = "/Always Damaged"
    data = small_jpeg(2302)
    emulator.put_file(f"{folder}/IMG_2302.jpg", data)
    emulator.corrupt_content_hash(f"{folder}/IMG_2302.jpg", mode="first-byte", times=None)
    run = linked_run(home, emulator, folder)
    try:
        failed = run()
    finally:
        emulator.clear_faults()
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert home.files(home.pictures) == [] and home.files(home.rejected) == []
    again = run()
    assert again.returncode == 0, again.stderr
    assert (home.pictures / "IMG_2302.jpg").read_bytes() == data
