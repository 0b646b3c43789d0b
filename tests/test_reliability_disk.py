"""A full or read-only Pictures during promotion: one clear error line, nothing lost, and a
rerun after the problem is fixed promotes everything. Also the two leftovers a kill can
leave in the middle of a file operation, which the next run must clear."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from pipeline.items import Provenance
from pipeline.library import move_file
from pipeline.staging import Staging
from tests import images
from tests.conftest import error_lines
from tests.support import crashes, scenarios

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as "
                                "Pictures needs root (CI runs as root)")


@pytest.fixture
def small_pictures(home):
    """Pictures as a 1 MiB tmpfs of its own, unmounted afterwards."""
    home.pictures.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                    str(home.pictures)], check=True)
    yield home.pictures
    subprocess.run(["umount", str(home.pictures)], check=True)


@pytest.fixture(scope="module")
def big_photos() -> list[bytes]:
    """Photos of ~150-250 KB each: a few of them overflow the 1 MiB Pictures."""
    return [images.jpeg(images.photo(seed), quality=92) for seed in (801, 802, 803, 804)]


def sent_to_folder(home, photos: list[bytes]) -> crashes.Trial:
    trial = crashes.Trial(0, home, [scenarios.FolderScenario()], "run")
    trial.config_path.write_text(scenarios.FolderScenario().config())
    trial.sent = [scenarios.Input(f"IMG_{n}.jpg", data, "photo") for n, data in enumerate(photos)]
    trial.scenarios[0].place(home, trial.sent)
    trial.before = crashes.snapshot(home.path)
    return trial


def staged_and_filed(home) -> list[str]:
    """sha256 of every copy in Pictures and in staging."""
    staged = [path.read_bytes() for path in (home.state_dir / "staging").glob("*/data")]
    filed = [path.read_bytes() for path in crashes.files_under(home.pictures)
             if not path.name.startswith(".")]
    return sorted(crashes.sha(data) for data in staged + filed)


@needs_root
def test_full_pictures_fails_clearly_loses_nothing_and_a_rerun_promotes(home, small_pictures,
                                                                         big_photos):
    filler = small_pictures / ".filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 300 * 1024))   # room for about one photo
    trial = sent_to_folder(home, big_photos)
    result = trial.run("run")
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1, result.stderr
    assert "no space left on device; nothing was lost" in error_lines(result)[0]
    assert "Traceback" not in result.stderr
    assert staged_and_filed(home) == sorted(crashes.sha(item.data) for item in trial.sent)
    assert [path.name for path in small_pictures.iterdir()
            if path.name.startswith(".") and path != filler] == []
    filler.unlink()
    again = trial.run("run")
    assert again.returncode == 0, again.stderr
    assert crashes.check_invariant(trial) == []
    assert len(home.files(home.pictures)) == len(big_photos)


@needs_root
def test_read_only_pictures_fails_clearly_loses_nothing_and_a_rerun_promotes(home,
                                                                             small_pictures,
                                                                             big_photos):
    subprocess.run(["mount", "-o", "remount,ro", str(small_pictures)], check=True)
    trial = sent_to_folder(home, big_photos[:2])
    result = trial.run("run")
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1, result.stderr
    assert "not writable (Read-only file system); nothing was lost" in error_lines(result)[0]
    assert staged_and_filed(home) == sorted(crashes.sha(item.data) for item in trial.sent)
    subprocess.run(["mount", "-o", "remount,rw", str(small_pictures)], check=True)
    again = trial.run("run")
    assert again.returncode == 0, again.stderr
    assert crashes.check_invariant(trial) == []
    assert len(home.files(home.pictures)) == 2


def test_a_half_deleted_staged_item_is_cleared_by_the_next_look(tmp_path):
    staging = Staging(tmp_path / "staging")
    item = staging.stage(io.BytesIO(b"bytes"), Provenance("folder", "a:1:1", "a.jpg"))
    (item.directory / "meta.json").unlink()          # a kill in the middle of a delete
    assert list(staging.items()) == []
    assert list(staging.root.iterdir()) == []


def test_a_copy_killed_half_way_leaves_nothing_once_the_move_is_replayed(tmp_path):
    source, target = tmp_path / "staged.jpg", tmp_path / "Pictures" / "IMG_1.jpg"
    source.write_bytes(b"the whole photo")
    target.parent.mkdir()
    # what a run killed in the middle of the copy leaves: the partial copy under its
    # hidden building name (library.move_file's naming)
    (target.parent / f".frame-ingest-tmp-{target.name}").write_bytes(b"the wh")
    move_file(source, target)
    assert target.read_bytes() == b"the whole photo" and not source.exists()
    assert sorted(path.name for path in target.parent.iterdir()) == ["IMG_1.jpg"]
