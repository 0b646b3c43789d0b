"""Removed stays removed: through the command line, with real encoded photos.

A photo a person took off the frame (deleted it, picframe moved it to ~/DeletedPictures,
or `frame-ingest remove`) is quarantined when it arrives again, by any method; moves inside
Pictures and the product's own moves are not removals; `quarantine restore` and
`removed undo` bring a photo back and forget the removal.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from tests import images
from tests.frame_cli import FrameCli


@pytest.fixture(scope="module")
def photo():
    picture = images.painting(141, (640, 480))     # photo-like, and quick to make
    return {"original": images.jpeg(picture), "recompressed": images.jpeg(picture, quality=70),
            "other": images.jpeg(images.painting(142, (640, 480)))}


def test_a_deleted_photo_sent_again_as_another_copy_is_quarantined_until_restored(home, photo):
    frame = FrameCli(home)
    home.drop("beach.jpg", photo["original"])
    frame.run()
    (home.pictures / "beach.jpg").unlink()                  # a person deleted it
    home.drop("beach again.jpg", photo["recompressed"])     # someone sends it again
    summary = frame.run()
    assert summary["promoted"] == 0 and summary["duplicates"] == 1
    assert home.files(home.pictures) == []
    [entry] = frame.quarantined()
    today = datetime.now(timezone.utc).date().isoformat()
    assert entry["reason"].startswith(f"removed from the frame on {today} (it was beach.jpg)")
    assert entry["method"] == "similar" and entry["duplicate_of"] == "beach.jpg"
    assert "removed from the frame on" in frame("quarantine", "list").stdout
    assert frame.status()["removed_remembered"] == 1
    assert "removed:     1 photos removed from the frame" in frame("status").stdout

    frame("quarantine", "restore", entry["name"])
    assert home.files(home.pictures) == ["beach again.jpg"]
    assert frame.status()["removed_remembered"] == 0        # restore forgot the removal
    home.drop("beach third.jpg", photo["original"])         # now a duplicate as usual
    summary = frame.run()
    assert summary["promoted"] == 0 and summary["duplicates"] == 1
    [entry] = frame.quarantined()
    assert entry["reason"].startswith("duplicate of beach again.jpg")


def test_a_photo_picframe_moved_to_deleted_pictures_is_noticed_and_can_be_put_back(home, photo):
    frame = FrameCli(home)
    home.drop("cat.jpg", photo["original"])
    frame.run()
    deleted = home.path / "DeletedPictures"
    deleted.mkdir()
    os.rename(home.pictures / "cat.jpg", deleted / "cat.jpg")   # picframe's "delete"
    home.drop("cat again.jpg", photo["original"])
    summary = frame.run()                       # notices the removal, then gates the copy
    assert summary["duplicates"] == 1 and frame.quarantined()[0]["method"] == "exact"
    [removal] = frame("removed", "list", "--json").json()
    assert (removal["path"], removal["kept"]) == ("cat.jpg", "cat.jpg")
    assert f"{removal['id']}  cat.jpg  removed " in frame("removed", "list").stdout

    assert "back in Pictures" in frame("removed", "undo", str(removal["id"])).stdout
    assert home.files(home.pictures) == ["cat.jpg"] and home.files(deleted) == []
    assert frame.status()["removed_remembered"] == 0
    again = frame("removed", "undo", str(removal["id"]), check=False)
    assert again.code == 1 and "no such removed photo" in again.stderr


@pytest.mark.parametrize("method", ["exact", "rms"])
def test_frame_ingest_remove_moves_the_photo_out_and_keeps_it_out_by_any_method(home, photo,
                                                                                  method):
    frame = FrameCli(home, more=f'[dedupe]\nmethod = "{method}"\n')
    home.drop("sea.jpg", photo["original"])
    home.drop("tree.jpg", photo["other"])
    frame.run()
    result = frame("remove", str(home.pictures / "sea.jpg"))
    assert "DeletedPictures/sea.jpg" in result.stdout
    assert home.files(home.pictures) == ["tree.jpg"]
    assert home.files(home.path / "DeletedPictures") == ["sea.jpg"]
    home.drop("sea-2.jpg", photo["original"])
    summary = frame.run()
    assert summary["duplicates"] == 1 and home.files(home.pictures) == ["tree.jpg"]
    [entry] = frame.quarantined()
    assert entry["method"] == "exact"       # rms, like similar, matches exact copies first
    assert "removed from the frame" in entry["reason"]
    missing = frame("remove", "nothing.jpg", check=False)
    assert missing.code == 1 and "no such photo in Pictures" in missing.stderr


def test_moves_inside_pictures_and_the_products_own_moves_are_not_removals(home, photo):
    frame = FrameCli(home)
    home.drop("a.jpg", photo["original"])
    home.drop("b.jpg", photo["other"])
    frame.run()
    (home.pictures / "album").mkdir()
    os.rename(home.pictures / "a.jpg", home.pictures / "album" / "renamed.jpg")
    (home.pictures / "b copy.jpg").write_bytes(photo["other"])  # a copy the resweep takes out
    assert frame("resweep", "--json").json()["quarantined"] == 1
    frame.run()
    assert frame.status()["removed_remembered"] == 0
    assert frame("removed", "list", "--json").json() == []
    (home.pictures / "album" / "renamed.jpg").unlink()     # now a person deletes it:
    frame("resweep")                                        # the nightly pass notices
    assert [row["path"] for row in frame("removed", "list", "--json").json()] == \
        ["album/renamed.jpg"]


def test_with_remember_removed_off_a_photo_sent_again_is_promoted(home, photo):
    frame = FrameCli(home, library="remember_removed = false\n")
    home.drop("dog.jpg", photo["original"])
    frame.run()
    (home.pictures / "dog.jpg").unlink()
    home.drop("dog 2.jpg", photo["original"])
    assert frame.run()["promoted"] == 1 and home.files(home.pictures) == ["dog 2.jpg"]
    assert frame.status()["removed_remembered"] == 0


def test_a_removal_interrupted_after_its_plan_was_journaled_is_finished_by_the_next_run(
        home, photo):
    from pipeline.moves import Move, Place, Plan
    from pipeline.store import Store

    frame = FrameCli(home)
    home.drop("hill.jpg", photo["original"])
    frame.run()
    plan = Plan("remove", "hill.jpg",
                moves=(Move(Place("pictures", "hill.jpg"), Place("removed", "hill.jpg")),),
                remove_files=("hill.jpg",), remember_removed=(("hill.jpg", "hill.jpg"),))
    with Store(home.state_dir / "store.sqlite3") as store, store.transaction() as tx:
        store.add_journal(tx, plan.to_dict())       # what `remove` does first; then a kill
    result = frame("run")
    assert "finishing the interrupted remove of hill.jpg" in result.stderr
    assert home.files(home.pictures) == []
    assert home.files(home.path / "DeletedPictures") == ["hill.jpg"]
    [removal] = frame("removed", "list", "--json").json()
    assert (removal["path"], removal["kept"]) == ("hill.jpg", "hill.jpg")


def test_a_library_file_an_unfinished_plan_moves_out_is_not_taken_for_a_removal(home, photo):
    from pipeline.moves import Move, Place, Plan
    from pipeline.store import Store

    frame = FrameCli(home)
    home.drop("copy.jpg", photo["other"])
    frame.run()
    target = home.quarantine / "2026-12-01" / "copy.jpg"     # a resweep killed mid-plan:
    target.parent.mkdir(parents=True)                         # moved, not yet recorded
    os.rename(home.pictures / "copy.jpg", target)
    plan = Plan("quarantine", "copy.jpg", moves=(Move(Place("pictures", "copy.jpg"),
                                                      Place("quarantine", "2026-12-01/copy.jpg")),),
                remove_files=("copy.jpg",))
    with Store(home.state_dir / "store.sqlite3") as store, store.transaction() as tx:
        store.add_journal(tx, plan.to_dict())
    frame("gate", "--dry-run")                  # scans Pictures without finishing the plan
    frame.run()                                 # finishes it
    assert frame.status()["removed_remembered"] == 0
