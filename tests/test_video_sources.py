"""Videos from every source: the drop folder, the mailbox (real Dovecot) and Dropbox (the
emulator); and with ``[video] enabled = false`` each leaves them where they are."""

from __future__ import annotations

import os
import time

import pytest

from tests import mails, videos
from tests.imap_helpers import write_config
from tests.test_source_dropbox import linked  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return videos.clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seed=11).read_bytes()


def video_off(path) -> None:
    with open(path, "a", encoding="utf-8") as config:
        config.write("\n[video]\nenabled = false\n")


def test_the_drop_folder_files_a_video_or_keeps_it_when_videos_are_off(home, clip):
    home.drop("party.mp4", clip)
    home.drop("photo.jpg", mails.picture(31))
    config = home.path / "config.toml"
    config.write_text("")
    video_off(config)
    result = home.run("--config", str(config), "run", check=True)
    assert home.files(home.pictures) == ["photo.jpg"]
    assert home.files(home.inbox) == ["party.mp4"]
    assert result.stderr.count("video(s) left at the source") == 1
    assert "folder: 1 video(s) left at the source: [video] enabled = false" in result.stderr
    config.write_text("")
    home.run("--config", str(config), "run", check=True)
    assert home.files(home.pictures) == ["party.mp4", "photo.jpg"]
    assert (home.pictures / "party.mp4").read_bytes() == clip
    assert home.files(home.inbox) == []


def test_a_mailed_video_is_filed_and_not_downloaded_when_videos_are_off(home, mailbox, clip):
    letter = mails.message(subject="the clip")
    letter.add_attachment(clip, maintype="video", subtype="mp4", filename="clip.mp4")
    mailbox.append("INBOX", letter.as_bytes())
    config = write_config(home, mailbox, "INBOX")
    video_off(config)
    result = home.run("--config", config, "run", check=True)
    assert "imap: 1 video(s) left at the source: [video] enabled = false" in result.stderr
    assert home.files(home.pictures) == []
    other = mails.message(subject="again")
    other.add_attachment(clip, maintype="application", subtype="octet-stream",
                         filename="from-phone")
    mailbox.append("INBOX", other.as_bytes())
    config = write_config(home, mailbox, "INBOX")
    home.run("--config", config, "run", check=True)
    assert home.files(home.pictures) == ["from-phone.mp4"]
    assert (home.pictures / "from-phone.mp4").read_bytes() == clip


def test_dropbox_takes_a_video_and_leaves_it_when_videos_are_off(linked, clip):  # noqa: F811
    linked.put("trip.mov", clip)
    video_off(linked.configure())
    result = linked.home.run("--config", str(linked.home.path / "frame-ingest.toml"), "run",
                             extra_env=linked.env())
    assert result.returncode == 0, result.stderr
    assert "dropbox: 1 video(s) left at the source: [video] enabled = false" in result.stderr
    assert linked.downloads("trip.mov") == 0
    linked.put("later.bin", clip)       # named like nothing: known by its first bytes
    linked.run("run")
    assert linked.home.files(linked.home.pictures) == ["later.bin.mp4"]
