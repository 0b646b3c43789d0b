"""What ordinary machines, sync tools and people do to the inbox, the library and the state
directory: names that are not UTF-8 or hold control characters, a sync tool renaming a new
version over a file being staged, the same file copied again, a camera clock in the future,
a read-only or damaged state directory, commands started at the same moment, a big drop of
small files. Every test drives the real command line in a throwaway HOME and checks that
nothing is lost, nothing vanishes, nothing is filed twice, and every printed event is one
line without raw control characters.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from tests import images

LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) |^(run|gate|fetch|resweep)"
                      r"( \(dry run\))?: ")


def small_jpeg(seed: int) -> bytes:
    return images.jpeg(images.resized(images.photo(seed), long_edge=240))


def raw(name: bytes) -> str:
    """A file name as Python's os functions see bytes that are not UTF-8."""
    return os.fsdecode(name)


def write_config(home, text: str) -> None:
    path = home.path / ".config" / "frame-ingest" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def raw_control_characters(text: str) -> list[str]:
    """Every control character in ``text`` that is not the line break between lines."""
    return [character for character in text if character != "\n"
            and (unicodedata.category(character) in ("Cc", "Cs", "Zl", "Zp")
                 or "\u202a" <= character <= "\u202e" or "\u2066" <= character <= "\u2069")]


def assert_clean_output(result: subprocess.CompletedProcess) -> None:
    """No traceback, no raw control character, every stderr line a log line or a summary."""
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, stream
        assert raw_control_characters(stream) == [], stream
    for line in result.stderr.splitlines():
        assert LOG_LINE.match(line) or line.startswith(("error: ", "frame-ingest: ")) \
            or re.match(r"^\d+ file\(s\) in quarantine$", line), line


def store_values(home, sql: str) -> list:
    with sqlite3.connect(home.state_dir / "store.sqlite3") as connection:
        return [row[0] for row in connection.execute(sql)]


# --- 1. names that are not UTF-8 --------------------------------------------------------

def test_names_that_are_not_utf8_are_taken_stored_losslessly_and_shown_escaped(home):
    inbox_name = raw(b"Fran\xe7ois.jpg")            # Latin-1, as an old zip file leaves it
    library_name = raw(b"Gar\xe7on \xff.jpg")       # in Pictures, from a Samba share
    home.drop(inbox_name, small_jpeg(1101))
    home.pictures.mkdir(parents=True)
    (home.pictures / library_name).write_bytes(small_jpeg(1102))

    first = home.run("run")
    assert first.returncode == 0, first.stderr
    assert_clean_output(first)
    assert home.files(home.inbox) == []
    assert sorted(home.files(home.pictures)) == sorted(["François.jpg", library_name])
    assert "Fran\\xe7ois.jpg" in first.stderr            # the name as it arrived, escaped

    names = store_values(home, "SELECT name FROM decisions")
    assert names == [b"Fran\xe7ois.jpg"]                  # the raw bytes, nothing lost
    assert sorted(store_values(home, "SELECT path FROM files"), key=str) == \
        sorted(["François.jpg", b"Gar\xe7on \xff.jpg"], key=str)

    (home.pictures / raw(b"copie de Gar\xe7on.jpg")).write_bytes(small_jpeg(1102))
    resweep = home.run("resweep")
    assert resweep.returncode == 0, resweep.stderr
    assert_clean_output(resweep)
    assert len(home.files(home.quarantine)) == 1
    assert len(home.files(home.pictures)) == 2

    again = home.run("run")
    assert again.returncode == 0 and "promoted=0" in again.stderr, again.stderr
    for command in (["status"], ["quarantine", "list"], ["review"], ["status", "--json"]):
        result = home.run(*command)
        assert result.returncode == 0, (command, result.stderr)
        assert_clean_output(result)
    listing = home.run("quarantine", "list").stdout
    assert "Gar\\xe7on \\xff.jpg" in listing
    page = (home.state_dir / "review" / "index.html").read_text(encoding="utf-8")
    assert "Gar\\xe7on \\xff.jpg" in page
    assert raw_control_characters(page.replace("\n", "")) == []

    quarantined = home.files(home.quarantine)[0]
    restore = home.run("quarantine", "restore", Path(quarantined).name)
    assert restore.returncode == 0, restore.stderr
    assert_clean_output(restore)
    assert len(home.files(home.pictures)) == 3 and home.files(home.quarantine) == []


# --- 2. control characters in names -----------------------------------------------------

CONTROL_NAMES = ["new\nline.jpg", "esc\x1b[31mred.jpg", "c1\x85\x9bnext.jpg",
                 "carriage\rreturn.jpg", "bell\x07tab\t.jpg", "sep\u2028arator.jpg",
                 "bidi\u202egpj.exe.jpg", "del\x7f.jpg"]


def test_control_characters_in_names_never_break_a_printed_line(home):
    for number, name in enumerate(CONTROL_NAMES):
        home.drop(name, small_jpeg(1200 + number))
    home.drop("again\nthe first.jpg", small_jpeg(1200))      # a duplicate: quarantined
    home.pictures.mkdir(parents=True)
    (home.pictures / "library\x1b]0;owned\x07.jpg").write_bytes(small_jpeg(1290))
    home.drop("copy of\nlibrary.jpg", small_jpeg(1290))

    result = home.run("-v", "run")
    assert result.returncode == 0, result.stderr
    assert_clean_output(result)
    assert home.files(home.inbox) == []
    assert len(home.files(home.pictures)) == len(CONTROL_NAMES) + 1
    assert len(home.files(home.quarantine)) == 2
    assert "new\\nline.jpg" in result.stderr and "esc\\x1b[31mred.jpg" in result.stderr

    (home.pictures / "copy\nin pictures.jpg").write_bytes(small_jpeg(1201))
    resweep = home.run("resweep")
    assert resweep.returncode == 0, resweep.stderr
    assert_clean_output(resweep)
    dry = home.run("resweep", "--dry-run")
    assert_clean_output(dry)

    status = home.run("status")
    assert_clean_output(status)
    recent = [line for line in status.stdout.splitlines() if line.startswith("  ")]
    assert len(recent) == 10                   # one line per decision, the last ten

    listing = home.run("quarantine", "list")
    assert_clean_output(listing)
    entries = json.loads(home.run("quarantine", "list", "--json").stdout)
    assert len(entries) == 3
    assert len(listing.stdout.splitlines()) == len(entries)
    assert "library\\x1b]0;owned\\x07.jpg" in listing.stdout

    review = home.run("review")
    assert_clean_output(review)
    page = (home.state_dir / "review" / "index.html").read_text(encoding="utf-8")
    assert raw_control_characters(page.replace("\n", "")) == []
    assert "library\\x1b]0;owned\\x07.jpg" in page


# --- 3. a sync tool renames a new version over a file being staged ----------------------

BIG = bytes(range(256)) * (256 * 1024)          # 64 MiB: staging it takes a while


def while_staging(home, action) -> subprocess.CompletedProcess:
    """Start ``run``, call ``action()`` while the first file is being copied into staging
    (its ``.tmp-`` item has appeared), and return the finished run."""
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "run"], env=home.env,
                             cwd=home.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 60
    while not list((home.state_dir / "staging").glob(".tmp-*/data")):
        assert child.poll() is None and time.monotonic() < deadline, "never staged"
    action()
    stdout, stderr = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def test_a_new_version_renamed_over_a_file_being_staged_stays_for_the_next_run(home):
    replacement = small_jpeg(1301)
    path = home.drop("IMG_1301.jpg", BIG)
    original_inode = os.stat(path).st_ino
    still_there = []

    def sync_tool_renames_a_new_version_over_it():
        temporary = home.inbox / ".IMG_1301.jpg.syncthing.tmp"
        temporary.write_bytes(replacement)
        os.utime(temporary, (time.time() - 60,) * 2)             # the sender's mtime
        still_there.append(os.stat(path).st_ino == original_inode)
        os.rename(temporary, path)

    result = while_staging(home, sync_tool_renames_a_new_version_over_it)
    assert result.returncode == 0, result.stderr
    assert still_there == [True], "the rename came after the run had finished the file"
    assert path.read_bytes() == replacement                  # the new version is kept
    rejected = [home.rejected / name for name in home.files(home.rejected)]
    assert [item.read_bytes() == BIG for item in rejected] == [True]   # the old one too
    again = home.run("run")
    assert again.returncode == 0, again.stderr
    assert home.files(home.inbox) == []
    assert [(home.pictures / name).read_bytes() for name in home.files(home.pictures)] == \
        [replacement]


def test_a_file_still_written_to_while_it_is_staged_is_left_whole_for_the_next_run(home):
    path = home.drop("VID_1302.jpg", BIG)

    def the_copy_goes_on():
        with open(path, "ab") as handle:
            handle.write(b"more" * 1024)

    result = while_staging(home, the_copy_goes_on)
    assert result.returncode == 0, result.stderr
    assert "changed while it was read" in result.stderr
    assert home.files(home.inbox) == ["VID_1302.jpg"]
    assert home.files(home.rejected) == [] and home.files(home.pictures) == []
    assert list((home.state_dir / "staging").iterdir()) == []   # no torn copy kept
    os.utime(path, (time.time() - 60,) * 2)                      # the copy has finished
    again = home.run("run")
    assert again.returncode == 0, again.stderr
    [filed] = home.files(home.rejected)
    assert (home.rejected / filed).read_bytes() == BIG + b"more" * 1024


def test_a_file_taken_away_while_the_run_works_is_no_error(home):
    home.drop("A_1303.bin", BIG)
    later = home.drop("B_1303.jpg", small_jpeg(1303))
    result = while_staging(home, later.unlink)
    assert result.returncode == 0, result.stderr
    assert "errors=0" in result.stderr and "ERROR" not in result.stderr, result.stderr
    assert len(home.files(home.rejected)) == 1 and home.files(home.inbox) == []


# --- 4. the same file copied again ------------------------------------------------------

@pytest.mark.parametrize("still_in_pictures", [False, True])
def test_a_file_copied_again_with_the_same_name_size_and_mtime_is_filed_again(
        home, still_in_pictures):
    data = small_jpeg(1401)
    path = home.drop("DSC_1401.jpg", data, age_seconds=3600)
    stamp = os.stat(path).st_mtime_ns
    first = home.run("run")
    assert first.returncode == 0 and home.files(home.pictures) == ["DSC_1401.jpg"]
    if not still_in_pictures:
        (home.pictures / "DSC_1401.jpg").unlink()          # a person deleted it
    path.write_bytes(data)                                  # cp -p from the camera card
    os.utime(path, ns=(stamp, stamp))
    second = home.run("run")
    assert second.returncode == 0, second.stderr
    assert home.files(home.inbox) == []
    if still_in_pictures:
        assert home.files(home.pictures) == ["DSC_1401.jpg"]
        [copy] = home.files(home.quarantine)
        assert (home.quarantine / copy).read_bytes() == data
        assert "quarantined DSC_1401.jpg" in second.stderr
    else:   # a new arrival, not a known origin; the person removed it: quarantined
        assert home.files(home.pictures) == []
        [copy] = home.files(home.quarantine)
        assert (home.quarantine / copy).read_bytes() == data
        assert "quarantined DSC_1401.jpg: removed from the frame on" in second.stderr


# --- 5. an mtime in the future ----------------------------------------------------------

def test_a_file_from_a_camera_with_its_clock_in_the_future_is_taken_once_stable(home):
    write_config(home, "[sources.folder]\nsettle_seconds = 0.5\n")
    path = home.drop("IMG_1501.jpg", small_jpeg(1501), age_seconds=-400 * 86400)
    first = home.run("run")
    assert first.returncode == 0, first.stderr
    assert home.files(home.inbox) == ["IMG_1501.jpg"]        # seen once: not yet stable
    assert "still being written" in first.stderr
    deadline = time.monotonic() + 30
    while home.files(home.inbox):
        assert time.monotonic() < deadline, "a file with a future mtime is never taken"
        result = home.run("run")
        assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == ["IMG_1501.jpg"]
    assert not path.exists()



# --- 8. a read-only state directory, a damaged staged item -------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs as "
                                "the state directory needs root (CI runs as root)")


@pytest.fixture
def read_only_state(home):
    """The state directory as a tmpfs of its own that a test may remount read-only."""
    home.state_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(home.state_dir)],
                   check=True)
    yield home.state_dir
    subprocess.run(["umount", str(home.state_dir)], check=True)


@needs_root
def test_a_read_only_state_directory_is_one_clear_line_and_loses_nothing(home,
                                                                        read_only_state):
    assert home.run("run").returncode == 0                # the store exists, then the
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_state)], check=True)  # card fails
    home.drop("IMG_1801.jpg", small_jpeg(1801))
    for command in (["run"], ["gate"], ["fetch"], ["resweep"], ["status"],
                    ["quarantine", "list"], ["quarantine", "restore", "x.jpg"], ["review"]):
        result = home.run(*command)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "not writable" in errors[0] \
            and str(read_only_state) in errors[0], (command, result.stderr)
    assert home.files(home.inbox) == ["IMG_1801.jpg"]
    subprocess.run(["mount", "-o", "remount,rw", str(read_only_state)], check=True)
    assert home.run("run").returncode == 0
    assert home.files(home.pictures) == ["IMG_1801.jpg"]


def test_a_damaged_staged_item_is_set_aside_with_its_bytes_and_the_run_goes_on(home):
    photos = {f"IMG_{number}.jpg": small_jpeg(number) for number in (1811, 1812, 1813)}
    for name, data in photos.items():
        home.drop(name, data)
    assert home.run("fetch").returncode == 0
    items = sorted((home.state_dir / "staging").iterdir())
    assert len(items) == 3
    (items[0] / "meta.json").write_bytes(b"")                       # empty
    (items[1] / "meta.json").write_bytes(b'{"provenance": {"sou')   # cut short
    result = home.run("run")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "set aside" in line]
    assert len(warnings) == 2, result.stderr
    assert len(home.files(home.pictures)) == 1                      # the sound one is filed
    aside = sorted((home.state_dir / "staging-damaged").iterdir())
    assert sorted(path.name for path in aside) == sorted(path.name for path in items[:2])
    kept = sorted((path / "data").read_bytes() for path in aside)
    assert all(data in photos.values() for data in kept)
    assert all((path / "reason.txt").read_text().startswith("meta.json unreadable")
               for path in aside)
    status = home.run("status")
    assert status.returncode == 0 and "staged:      0" in status.stdout, status.stdout
    assert home.run("run").returncode == 0


# --- 12. commands started at the same first moment ---------------------------------------

def test_commands_started_at_the_same_first_moment_all_succeed(tmp_path):
    from tests.conftest import Home
    failures = []
    for trial in range(6):
        path = tmp_path / f"home-{trial}"
        path.mkdir()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("FRAME_INGEST", "XDG_", "JOURNAL_STREAM"))}
        env.update(HOME=str(path), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        home = Home(path, env)
        home.drop("IMG_1201.jpg", small_jpeg(1201))
        children = [subprocess.Popen([sys.executable, "-m", "pipeline", *command], env=env,
                                     cwd=path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
                    for command in (["run"], ["status"], ["quarantine", "list"], ["status"])]
        for child, command in zip(children, ("run", "status", "quarantine", "status")):
            stdout, stderr = child.communicate(timeout=120)
            if child.returncode != 0 or "Traceback" in stderr:
                failures.append((trial, command, child.returncode, stderr[-300:]))
        if home.files(home.pictures) != ["IMG_1201.jpg"]:
            failures.append((trial, "pictures", home.files(home.pictures)))
    assert failures == []


# --- 7. formats the gate promotes are formats the library scan reads ---------------------

@pytest.mark.parametrize("image_format, name", [("BMP", "scan.bmp"), ("TGA", "scan.tga"),
                                                ("PPM", "scan.ppm"), ("TIFF", "scan.tif")])
def test_a_second_copy_of_a_promoted_photo_in_any_format_is_quarantined(home, image_format,
                                                                           name):
    import io
    buffer = io.BytesIO()
    images.resized(images.photo(1701), long_edge=240).save(buffer, image_format)
    config = home.path / "config.toml"      # promoted as it is, not converted for the frame
    config.write_text(f'[library]\nframe_formats = ["JPEG", "{image_format}"]\n')
    home.drop(name, buffer.getvalue())
    first = home.run("--config", str(config), "run")
    assert first.returncode == 0 and "promoted=1" in first.stderr, first.stderr
    home.drop("again-" + name, buffer.getvalue())
    second = home.run("--config", str(config), "run")
    assert second.returncode == 0, second.stderr
    assert home.files(home.pictures) == [name]
    assert len(home.files(home.quarantine)) == 1
    status = json.loads(home.run("--config", str(config), "status", "--json").stdout)
    assert status["library_files"] == 1


def test_a_format_the_frame_does_not_list_is_rejected_with_a_reason(home):
    import io
    buffer = io.BytesIO()
    images.resized(images.photo(1702), long_edge=64).save(buffer, "ICO")
    home.drop("favicon.ico", buffer.getvalue())
    result = home.run("run")
    assert result.returncode == 0, result.stderr
    assert home.files(home.pictures) == []
    assert len(home.files(home.rejected)) == 1
    assert "unsupported image format ICO" in result.stderr


# --- 9. config values that cannot mean what they say ------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('[library]\npictures = "$NO_SUCH_VARIABLE_11/Frame"\n',
     "[library] pictures: $NO_SUCH_VARIABLE_11 is not set"),
    ('[library]\nquarantine = "${NO_SUCH_VARIABLE_11}/dups"\n',
     "[library] quarantine: $NO_SUCH_VARIABLE_11 is not set"),
    ('[library]\nstate_dir = "~nosuchuser11/state"\n',
     "[library] state_dir: ~nosuchuser11: no such user"),
    ("[sources.folder]\nsettle_seconds = nan\n",
     "[sources.folder] settle_seconds: expected a number, got nan"),
    ("[dedupe]\nrms_threshold = inf\n", "[dedupe] rms_threshold: expected a number, got inf"),
    ("[gate]\nmax_file_mb = -inf\n", "[gate] max_file_mb: expected a number, got -inf"),
    ('[sources.imap]\nhost = "imap\\u0000.example.com"\n',
     "[sources.imap] host: a NUL character cannot be in a string"),
    ('[sources.imap]\nallowed_senders = ["a@b.example", "c\\u0000@d.example"]\n',
     "[sources.imap] allowed_senders: a NUL character cannot be in a string"),
    ('[library]\npictures = "/srv/fr\\u0000ame"\n',
     "[library] pictures: a NUL character cannot be in a string"),
])
def test_config_values_that_cannot_mean_what_they_say_exit_2_naming_the_key(home, text,
                                                                              expected):
    write_config(home, text)
    for command in (["run"], ["status"]):
        result = home.run(*command)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert "config.toml" in lines[0]
        assert raw_control_characters(result.stderr) == []
    assert not (home.path / "$NO_SUCH_VARIABLE_11").exists()
    assert not any(home.path.glob("~*"))



# --- 10. quarantine or rejected inside Pictures -----------------------------------------

@pytest.mark.parametrize("key, value", [
    ("quarantine", "~/Pictures/Duplicates"), ("rejected", "~/Pictures/.rejected"),
    ("quarantine", "~/Pictures"), ("state_dir", "~/Pictures/state"),
    ("pictures", "~/DuplicatePictures/frame")])
def test_a_quarantine_or_rejected_folder_inside_pictures_is_refused_at_config_time(
        home, key, value):
    write_config(home, f'[library]\n{key} = "{value}"\n')
    result = home.run("run")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "config.toml: [library]" in line and "inside" in line or "same folder" in line, line
    assert not home.pictures.exists() or home.files(home.pictures) == []


def test_the_drop_folder_inside_pictures_is_refused_at_config_time(home):
    write_config(home, '[sources.folder]\npath = "~/Pictures/Inbox"\n')
    result = home.run("run")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "[sources.folder] path" in line and "inside" in line, line
