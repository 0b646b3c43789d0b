"""The nightly resweep through the real command line, on libraries of real encoded images."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import date

import numpy as np
import pytest
from PIL import Image

from pipeline.locking import instance_lock
from pipeline.signatures import phash, phash_many
from pipeline.store import Store
from tests import images


@pytest.fixture(scope="module")
def copies():
    """An original photo and the copies a library collects of it, plus an unrelated photo."""
    picture = images.photo(21)
    original = images.jpeg(picture)
    turned = images.jpeg(images.resized(picture, 0.8).rotate(90, expand=True))
    return {"original.jpg": original, "album/original-copy.jpg": original,
            "small.jpg": images.variants(picture, original)["downscaled_50"],
            "turned.jpg": turned, "other.jpg": images.jpeg(images.photo(22))}


def fill(home, files: dict[str, bytes], first_mtime: int = 1_600_000_000) -> None:
    """Write files into Pictures, each a minute newer than the one before."""
    for number, (name, data) in enumerate(files.items()):
        path = home.pictures / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (first_mtime + 60 * number,) * 2)


def configure(home, text: str) -> str:
    path = home.path / "config.toml"
    path.write_text(text)
    return str(path)


def resweep(home, *arguments, config=None):
    options = ["--config", config] if config else []
    result = home.run(*options, "resweep", "--json", *arguments)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def quarantine_list(home):
    return json.loads(home.run("quarantine", "list", "--json", check=True).stdout)


@pytest.mark.parametrize("keep, kept", [("best", "original.jpg"), ("first", "small.jpg")])
def test_resweep_quarantines_copies_around_the_kept_file(home, copies, keep, kept):
    order = ["small.jpg", "original.jpg", "album/original-copy.jpg", "turned.jpg", "other.jpg"]
    fill(home, {name: copies[name] for name in order})
    config = configure(home, f'[dedupe]\nkeep = "{keep}"\n')
    summary, stderr = resweep(home, config=config)
    assert summary["groups"] == 1 and summary["quarantined"] == 3
    assert home.files(home.pictures) == sorted([kept, "other.jpg"])
    entries = quarantine_list(home)
    assert {entry["duplicate_of"] for entry in entries} == {kept}
    assert {entry["source"] for entry in entries} == {"resweep"}
    assert len(home.files(home.quarantine)) == 3
    with Store(home.state_dir / "store.sqlite3") as store:
        assert sorted(store.known_files()) == sorted([kept, "other.jpg"])


def solid_png(level: int, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (level, level, level)).save(buffer, "PNG")
    return buffer.getvalue()


def test_resweep_does_not_chain_matches(home):
    # rms threshold 3: A(100)~B(102), B~C(104), but A and C differ by 4.
    fill(home, {"a.png": solid_png(100, (400, 300)), "b.png": solid_png(102, (200, 150)),
                "c.png": solid_png(104, (300, 225))})
    config = configure(home, '[dedupe]\nmethod = "rms"\nrms_threshold = 3.0\n')
    summary, _ = resweep(home, config=config)
    assert summary["quarantined"] == 1
    assert home.files(home.pictures) == ["a.png", "c.png"]
    assert quarantine_list(home)[0]["duplicate_of"] == "a.png"


def test_restored_pair_is_never_quarantined_again(home, copies):
    fill(home, {"original.jpg": copies["original.jpg"], "small.jpg": copies["small.jpg"]})
    resweep(home)
    name = quarantine_list(home)[0]["name"]
    home.run("quarantine", "restore", name, check=True)
    summary, _ = resweep(home)
    assert summary["quarantined"] == 0 and summary["groups"] == 0
    assert home.files(home.pictures) == ["original.jpg", "small.jpg"]


def test_dry_run_moves_nothing_and_says_what_would_move(home, copies):
    fill(home, {"original.jpg": copies["original.jpg"], "small.jpg": copies["small.jpg"]})
    result = home.run("resweep", "--dry-run", check=True)
    assert "would quarantine small.jpg: duplicate of original.jpg" in result.stdout
    assert home.files(home.pictures) == ["original.jpg", "small.jpg"]
    assert home.files(home.quarantine) == []


def test_undecodable_file_is_reported_and_left_in_place(home, copies):
    fill(home, {"broken.jpg": images.corrupt_jpeg(copies["original.jpg"]),
                "other.jpg": copies["other.jpg"]})
    summary, stderr = resweep(home)
    assert [item["path"] for item in summary["undecodable"]] == ["broken.jpg"]
    assert "broken.jpg" in stderr and home.files(home.pictures) == ["broken.jpg", "other.jpg"]


def noise_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((256, 192), Image.Resampling.BICUBIC).save(buffer, "JPEG")
    return buffer.getvalue()


def test_second_run_signs_nothing_and_vanished_rows_are_dropped(home):
    fill(home, {f"noise-{seed}.jpg": noise_jpeg(seed) for seed in range(20)})  # uses the pool
    first, _ = resweep(home)
    assert first["signed"] == 20 and first["quarantined"] == 0
    (home.pictures / "noise-3.jpg").unlink()
    second, _ = resweep(home)
    assert (second["signed"], second["unchanged"], second["removed"]) == (0, 19, 1)


def test_symlinks_hidden_and_excluded_folders_are_not_swept(home, copies, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "copy.jpg").write_bytes(copies["original.jpg"])
    fill(home, {"original.jpg": copies["original.jpg"],
                ".hidden/copy.jpg": copies["original.jpg"],
                "skip-me/copy.jpg": copies["original.jpg"]})
    (home.pictures / "linked").symlink_to(outside, target_is_directory=True)
    (home.pictures / "link.jpg").symlink_to(outside / "copy.jpg")
    config = configure(home, '[resweep]\nexclude = ["skip-*"]\n')
    summary, _ = resweep(home, config=config)
    assert summary["scanned"] == 1 and summary["quarantined"] == 0
    assert (outside / "copy.jpg").exists()


def test_resweep_and_run_share_the_lock(home):
    with instance_lock(home.state_dir):
        assert home.run("resweep").returncode == 75
        assert home.run("run").returncode == 75


def test_summary_line_and_json_keys_without_a_progress_bar(home, copies):
    fill(home, {"other.jpg": copies["other.jpg"]})
    summary, stderr = resweep(home)
    assert {"scanned", "signed", "unchanged", "removed", "groups", "quarantined",
            "seconds"} <= set(summary)
    assert re.search(r"^resweep: scanned=1 signed=1 unchanged=0 removed=0 groups=0 "
                     r"quarantined=0 undecodable=0 seconds=[\d.]+$", stderr, re.M)
    assert "file/s" not in stderr and "%|" not in stderr  # stderr is a pipe: no tqdm


def test_an_interrupted_quarantine_move_is_finished_by_the_next_run(home, copies):
    fill(home, {"original.jpg": copies["original.jpg"], "small.jpg": copies["small.jpg"]})
    blocker = home.quarantine / date.today().isoformat()  # a file where today's folder goes:
    blocker.parent.mkdir(parents=True)                    # the move fails after the plan is
    blocker.write_bytes(b"")                              # journaled, as a crash would leave it
    assert home.run("resweep").returncode == 1
    with Store(home.state_dir / "store.sqlite3") as store:
        assert len(store.journal()) == 1
    blocker.unlink()
    home.run("gate", check=True)  # any run replays the journal first
    assert home.files(home.pictures) == ["original.jpg"]
    assert [entry["duplicate_of"] for entry in quarantine_list(home)] == ["original.jpg"]


def test_batch_hash_equals_the_hash_of_each_thumbnail():
    thumbs = np.random.default_rng(8).integers(0, 256, (40, 32, 32), dtype=np.uint8)
    assert phash_many(thumbs).tolist() == [phash(thumb) for thumb in thumbs]
