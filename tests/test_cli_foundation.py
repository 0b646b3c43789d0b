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


@pytest.fixture(scope="module")
def copies(original):
    return images.variants(*original)


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
def test_gate_quarantines_copy(home, original, copies, kind):
    picture, data = original
    home.drop("IMG_0001.jpg", data)
    run_json(home, "run")
    copy = copies[kind]
    home.drop(f"copy-{kind}", copy)
    summary = run_json(home, "run")
    assert summary["duplicates"] == 1, home.run("quarantine", "list").stdout
    assert home.files(home.pictures) == ["IMG_0001.jpg"]
    quarantined = home.files(home.quarantine)
    assert len(quarantined) == 1 and (home.quarantine / quarantined[0]).read_bytes() == copy


@pytest.mark.parametrize("change", [
    {"shift": (0.03, 0.0)}, {"shift": (0.0, 0.02)}, {"brightness": 1.05},
    {"brightness": 0.95}, {"zoom": 1.04},
])
def test_gate_promotes_burst_neighbour(home, original, change):
    home.drop("IMG_0001.jpg", original[1])
    run_json(home, "run")
    home.drop("IMG_0002.jpg", images.jpeg(images.photo(11, **change)))
    summary = run_json(home, "run")
    assert summary["promoted"] == 1 and summary["duplicates"] == 0
    assert home.files(home.pictures) == ["IMG_0001.jpg", "IMG_0002.jpg"]


def test_unrelated_photos_are_all_promoted(home):
    for seed in range(5):
        home.drop(f"photo{seed}.jpg", images.jpeg(images.photo(100 + seed)))
    summary = run_json(home, "run")
    assert summary == {**summary, "fetched": 5, "promoted": 5, "duplicates": 0, "rejected": 0}


def test_bad_files_are_rejected_with_a_reason_and_the_run_goes_on(home, original):
    home.drop("truncated.jpg", images.corrupt_jpeg(original[1]))
    home.drop("letter.jpg", b"<html><body>not a photo</body></html>")
    home.drop("empty.jpg", b"")
    home.drop("good.jpg", original[1])
    summary = run_json(home, "run")
    assert summary["promoted"] == 1 and summary["rejected"] == 3
    assert len(home.files(home.rejected)) == 3
    status = json.loads(home.run("status", "--json").stdout)
    reasons = {row["name"]: row for row in status["recent"]}
    assert reasons["letter.jpg"]["verdict"] == "rejected"


def test_decompression_bomb_is_rejected(home):
    from PIL import Image
    bomb = Image.new("L", (12000, 10000))  # 120 megapixels in a PNG of a few hundred KB
    home.drop("bomb.png", images.png(bomb))
    summary = run_json(home, "run")
    assert summary["rejected"] == 1
    status = json.loads(home.run("status", "--json").stdout)
    assert "decompression bomb" in status["recent"][0]["reason"]


def test_odd_names_from_the_inbox_are_sanitised(home, original):
    home.drop("sub/dir/a\x07b\x1b.jpg", original[1])
    home.drop("CON.jpg", images.jpeg(images.photo(12)))
    summary = run_json(home, "run")
    assert summary["promoted"] == 2
    assert home.files(home.pictures) == ["_CON.jpg", "ab.jpg"]


def test_keep_best_replaces_a_smaller_library_copy(home, original):
    picture, data = original
    small = images.jpeg(images.resized(picture, 0.5))
    home.drop("mail-size.jpg", small)
    run_json(home, "run")
    home.drop("full-size.jpg", data)
    summary = run_json(home, "run")
    assert summary["promoted"] == 1 and summary["duplicates"] == 1
    assert home.files(home.pictures) == ["full-size.jpg"]
    assert [path.rsplit("/", 1)[1] for path in home.files(home.quarantine)] == ["mail-size.jpg"]


def test_keep_first_always_quarantines_the_newcomer(home, original, tmp_path):
    picture, data = original
    config = tmp_path / "config.toml"
    config.write_text('[dedupe]\nkeep = "first"\n')
    home.drop("mail-size.jpg", images.jpeg(images.resized(picture, 0.5)))
    run_json(home, "--config", str(config), "run")
    home.drop("full-size.jpg", data)
    summary = run_json(home, "--config", str(config), "run")
    assert summary["duplicates"] == 1 and home.files(home.pictures) == ["mail-size.jpg"]


def test_same_pixel_count_never_displaces_the_library_copy(home, original):
    picture, data = original
    home.drop("first.jpg", data)
    run_json(home, "run")
    home.drop("second.jpg", images.jpeg(picture, quality=97))
    run_json(home, "run")
    assert home.files(home.pictures) == ["first.jpg"]


def test_restore_is_remembered(home, original):
    picture, data = original
    home.drop("IMG_0001.jpg", data)
    run_json(home, "run")
    home.drop("copy.png", images.png(picture))
    run_json(home, "run")
    listing = json.loads(home.run("quarantine", "list", "--json").stdout)
    assert [entry["duplicate_of"] for entry in listing] == ["IMG_0001.jpg"]
    restored = home.run("quarantine", "restore", listing[0]["name"], check=True)
    assert "restored" in restored.stdout
    assert home.files(home.pictures) == ["IMG_0001.jpg", "copy.png"]
    home.drop("copy-again.png", images.png(picture))  # the same pair again: a real duplicate
    summary = run_json(home, "run")
    assert summary["duplicates"] == 1
    assert json.loads(home.run("quarantine", "list", "--json").stdout)[0]["name"].endswith(
        "copy-again.png")
    assert sorted(home.files(home.pictures)) == ["IMG_0001.jpg", "copy.png"]


def test_second_instance_exits_75(home):
    from pipeline.locking import instance_lock
    with instance_lock(home.state_dir):
        result = home.run("run")
    assert result.returncode == 75
    assert "another frame-ingest" in result.stderr


@pytest.mark.parametrize("text, fragment", [
    ('[dedupe]\nmethod = "fast"\n', '[dedupe] method: expected one of "exact", "rms", "similar"'),
    ('[library]\npictures = 3\n', "[library] pictures: expected a string"),
    ('[sources.folder]\nenabled = "yes"\n', "[sources.folder] enabled: expected true or false"),
    ('[dedupe]\nthreshold = 1\n', "[dedupe] threshold: unknown key"),
    ('[libary]\n', "[libary]: unknown section"),
    ('[gate\n', "not valid TOML"),
    ('[library]\npictures = "~/Frame"\nquarantine = "$HOME/Frame/"\n',
     "[library] quarantine: the same folder as pictures"),
])
def test_bad_config_exits_2_and_touches_nothing(home, original, tmp_path, text, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    home.drop("IMG_0001.jpg", original[1])
    result = home.run("--config", str(config), "run")
    assert result.returncode == 2
    assert f"error: {config}: " in result.stderr and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert home.files(home.inbox) == ["IMG_0001.jpg"] and not home.state_dir.exists()


def test_config_is_found_through_environment_and_xdg(home, original, tmp_path):
    xdg = tmp_path / "xdg"
    (xdg / "frame-ingest").mkdir(parents=True)
    (xdg / "frame-ingest" / "config.toml").write_text(
        '[library]\npictures = "$HOME/Frame"\n')
    home.drop("IMG_0001.jpg", original[1])
    home.run("run", check=True, extra_env={"XDG_CONFIG_HOME": str(xdg)})
    assert home.files(home.path / "Frame") == ["IMG_0001.jpg"]
    env_config = tmp_path / "env.toml"
    env_config.write_text('[library]\npictures = "~/Other"\n')
    home.drop("IMG_0002.jpg", images.jpeg(images.photo(12)))
    home.run("run", check=True, extra_env={"FRAME_INGEST_CONFIG": str(env_config),
                                           "XDG_CONFIG_HOME": str(xdg)})
    assert home.files(home.path / "Other") == ["IMG_0002.jpg"]


def test_existing_library_is_signed_before_the_gate_decides(home, original):
    home.pictures.mkdir()
    (home.pictures / "old.jpg").write_bytes(original[1])
    home.drop("new.jpg", images.png(original[0]))
    summary = run_json(home, "run")
    assert summary["duplicates"] == 1 and home.files(home.pictures) == ["old.jpg"]


def test_files_still_being_written_wait(home, original):
    home.drop("fresh.jpg", original[1], age_seconds=0)
    summary = run_json(home, "run")
    assert summary["fetched"] == 0 and home.files(home.inbox) == ["fresh.jpg"]


def test_python_dash_m_and_console_script_agree(home):
    result = subprocess.run([sys.executable, "-m", "pipeline", "--version"],
                            capture_output=True, text=True, env=home.env)
    assert result.stdout.startswith("frame-ingest ")


def test_gate_dry_run_moves_nothing(home, original):
    home.drop("IMG_0001.jpg", original[1])
    home.run("fetch", check=True)
    result = home.run("gate", "--dry-run")
    assert result.returncode == 0 and "would promote IMG_0001.jpg" in result.stderr
    assert home.files(home.pictures) == []
    assert len(home.files(home.state_dir / "staging")) == 2  # data + meta.json, untouched
    home.run("gate", check=True)
    assert home.files(home.pictures) == ["IMG_0001.jpg"]


def test_check_reports_the_drop_folder(home):
    result = home.run("check")
    assert result.returncode == 0
    assert result.stdout.startswith("folder: OK: drop folder") and home.inbox.is_dir()
