"""The web page's parts on their own: the password hash, the config rewrite, previews."""

from __future__ import annotations

import io
import stat
import time
import tomllib

import pytest
from PIL import Image

from pipeline import config_edit, passwords
from pipeline.errors import PipelineError
from pipeline.previews import preview_jpeg
from tests import images


def test_a_password_hash_names_its_algorithm_is_salted_and_verifies_only_its_password():
    first, second = passwords.hash_password("café au lait"), \
        passwords.hash_password("café au lait")
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert passwords.verify_password("café au lait", first)
    assert passwords.verify_password("café au lait", second)
    assert not passwords.verify_password("cafe au lait", first)


def test_a_hostile_or_foreign_stored_hash_never_verifies_and_costs_nothing():
    good = passwords.hash_password("secret words")
    name, n, r, p, salt, digest = good.split("$")
    started = time.monotonic()
    for stored in (f"scrypt$1073741824$8$1${salt}${digest}", f"scrypt$1000$8$1${salt}${digest}",
                   f"scrypt${n}$8$1$!!!${digest}", f"argon2id${n}$8$1${salt}${digest}",
                   "scrypt$", "", good.replace("scrypt", "SCRYPT")):
        assert not passwords.verify_password("secret words", stored), stored
    assert time.monotonic() - started < 5


CONFIG = """\
# Grandma's frame
[library]
pictures = "{home}/Pictures"   # where the frame looks

[sources.imap]
enabled = false                 # switched on after the holidays
allowed_senders = ["grandma@family.example",   # Grandma
                   "@family.example"]
# end of the mail settings
"""


def test_allowing_a_sender_changes_only_that_list_and_keeps_comments_and_mode(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(home=tmp_path))
    path.chmod(0o640)
    assert config_edit.allow_sender(path, "Aunt.May@Relatives.example")
    text = path.read_text()
    for line in CONFIG.format(home=tmp_path).splitlines():
        if not line.startswith(("allowed_senders", " ")):
            assert line in text.splitlines(), line
    assert "# Grandma" in text and "# end of the mail settings" in text
    assert tomllib.loads(text)["sources"]["imap"]["allowed_senders"] == [
        "grandma@family.example", "@family.example", "aunt.may@relatives.example"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not config_edit.allow_sender(path, "AUNT.MAY@relatives.example")
    assert path.read_text() == text
    assert [entry.name for entry in tmp_path.iterdir()] == ["config.toml"]


def test_allowing_a_sender_adds_the_list_when_missing_and_refuses_what_it_cannot_change(
        tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[sources.imap]\nenabled = false\n")
    assert config_edit.allow_sender(path, "a@b.example")
    assert tomllib.loads(path.read_text())["sources"]["imap"]["allowed_senders"] == \
        ["a@b.example"]
    with pytest.raises(PipelineError, match="built-in defaults"):
        config_edit.allow_sender(None, "a@b.example")
    path.write_text("[library]\n")
    with pytest.raises(PipelineError, match=r"no \[sources.imap\] section"):
        config_edit.allow_sender(path, "a@b.example")


def test_a_preview_is_a_small_upright_jpeg_and_a_broken_file_has_none(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.exif_rotated(images.photo(3)))
    preview = Image.open(io.BytesIO(preview_jpeg(photo, 200)))
    assert preview.format == "JPEG" and max(preview.size) == 200
    upright = Image.open(photo)
    assert (preview.width > preview.height) != (upright.width > upright.height)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 nothing more")
    assert preview_jpeg(broken, 200) is None
    assert preview_jpeg(tmp_path / "missing.jpg", 200) is None


def test_lists_come_in_pages_of_twenty_newest_first(tmp_path):
    from pipeline.config import parse_config
    from pipeline.items import DecisionRecord
    from pipeline.store import Store
    from pipeline.web import listings
    config = parse_config({"library": {"state_dir": str(tmp_path / "state"),
                                       "rejected": str(tmp_path / "rejected")}})
    with Store(config.database) as store:
        with store.transaction() as tx:
            for number in range(45):
                store.record_decision(tx, DecisionRecord(
                    "rejected", "rejected", f"2026-12-01/file-{number:02d}.jpg",
                    f"file-{number:02d}.jpg", reason="not an image",
                    decided_at=f"2026-12-01T10:{number:02d}:00+00:00"))
        pages = [listings.rejected(config, store, number) for number in (1, 2, 3)]
    assert [len(page.entries) for page in pages] == [20, 20, 5]
    assert {page.pages for page in pages} == {3}
    assert pages[0].entries[0]["name"] == "file-44.jpg"
    assert pages[2].entries[-1]["name"] == "file-00.jpg"
    assert pages[0].entries[0]["when"] == "2026-12-01 10:44 UTC"


def answer_prompts(process, answers: list[str], stream: int, terminal: int) -> str:
    """Read ``stream`` until each prompt ends with ": ", then type the next answer into the
    terminal (typing earlier would be flushed away when getpass turns echo off)."""
    import os
    import select
    seen = b""
    for answer in answers:
        while not seen.rstrip().endswith(b":"):
            ready, _, _ = select.select([stream], [], [], 30)
            assert ready, f"no prompt; so far: {seen!r}"
            chunk = os.read(stream, 1024)
            assert chunk, f"ended early: {seen!r}"
            seen += chunk
        os.write(terminal, answer.encode() + b"\n")
        seen = b""
    return seen.decode()


@pytest.mark.parametrize("second, saved", [("a long enough one", True),
                                           ("a different one", False)])
def test_web_password_at_a_terminal_asks_twice_and_both_must_match(home, second, saved):
    import os
    import pty
    import subprocess
    import sys
    terminal, side = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "web-password"],
                               stdin=side, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=home.env, start_new_session=True)
    os.close(side)
    try:
        answer_prompts(process, ["a long enough one", second], process.stderr.fileno(),
                       terminal)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        if process.poll() is None:
            process.kill()
    stored = home.state_dir / "web-password"
    assert (process.returncode == 0) is saved, err
    assert stored.exists() is saved
    if saved:
        assert passwords.verify_password("a long enough one", stored.read_text())
    else:
        assert b"the two passwords differ" in err


def test_a_video_previews_as_its_poster_frame_and_lists_with_its_length(tmp_path):
    from pipeline.web.listings import length
    from tests import videos
    clip = videos.clip(tmp_path / "clip.mp4", seed=3, seconds=2.0)
    data = preview_jpeg(clip, 120)
    assert data is not None
    poster = Image.open(io.BytesIO(data))
    assert poster.format == "JPEG" and max(poster.size) <= 120 and poster.size[0] > poster.size[1]
    assert length(clip) == "video, 2 s"
    photo = tmp_path / "photo.jpg"
    images.painting(5, (300, 200)).save(photo, "JPEG")
    assert length(photo) == ""
    (tmp_path / "broken.mp4").write_bytes(clip.read_bytes()[:64])
    assert preview_jpeg(tmp_path / "broken.mp4", 120) is None
