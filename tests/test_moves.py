"""Promotion steps and plans at the API of transforms.py and moves.py: real staged files,
real images, a real store. (The package ships no promotion step, so a step is defined
here and given to ``transforms.apply``.)"""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from pipeline import moves, run, transforms
from pipeline.config import parse_config
from pipeline.items import Decision, Provenance, Verdict
from pipeline.signatures import sign_file
from pipeline.staging import Staging
from pipeline.store import Store
from tests import images


@pytest.fixture
def config(tmp_path):
    return parse_config({"library": {name: str(tmp_path / name) for name in
                                     ("pictures", "quarantine", "rejected", "state_dir")}})


def to_png(promotion: transforms.Promotion) -> transforms.Transformed:
    """A format conversion that keeps the photo as it arrived in quarantine."""
    buffer = io.BytesIO()
    Image.open(promotion.path).save(buffer, "PNG")
    return transforms.Transformed(buffer.getvalue(), keep_original="converted to PNG")


def files(folder) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_file()) if folder.exists() else []


@pytest.mark.parametrize("interrupted", [False, True])
def test_a_transformed_photo_is_filed_with_the_signature_of_its_new_bytes(config, interrupted):
    arrived = images.jpeg(images.photo(51))
    staging = Staging(config.staging_dir)
    item = staging.stage(io.BytesIO(arrived), Provenance("folder", "x:1:1", "IMG_5.jpg"))
    signature = sign_file(item.data_path, config.gate.max_pixels)
    with Store(config.database) as store:
        filing = transforms.apply(item, signature, config, steps=[to_png])
        plan = run.filing_plan(config, item, signature, Decision(Verdict.PROMOTE), filing)
        if interrupted:  # journaled, then a crash: the replay signs the file on disk again
            with store.transaction() as tx:
                store.add_journal(tx, plan.to_dict())
            assert [done.subject for done in moves.replay(store, config)] == ["IMG_5.jpg"]
        else:
            moves.carry_out(store, config, plan)
        filed = config.library.pictures / "IMG_5.png"
        png = filed.read_bytes()
        row = store.file("IMG_5.png")
        assert files(config.library.pictures) == ["IMG_5.png"]
        assert Image.open(filed).format == "PNG"
        assert (row["sha256"], row["format"]) == (hashlib.sha256(png).hexdigest(), "PNG")
        [kept] = files(config.library.quarantine)
        assert (config.library.quarantine / kept).read_bytes() == arrived
        assert store.counts() == {"promoted": 1, "quarantined": 1}
        assert store.has_origin("folder:x:1:1") and store.journal() == []
    assert staging.count() == 0 and files(config.staging_dir) == []


def test_steps_that_change_nothing_file_the_photo_as_it_arrived(config):
    arrived = images.jpeg(images.photo(52))
    item = Staging(config.staging_dir).stage(io.BytesIO(arrived),
                                             Provenance("folder", "x:2:2", "IMG_6.jpg"))
    signature = sign_file(item.data_path, config.gate.max_pixels)
    filing = transforms.apply(item, signature, config, steps=[lambda promotion: None])
    assert filing == transforms.Filing(item.data_path, signature)
    with Store(config.database) as store:
        moves.carry_out(store, config, run.filing_plan(config, item, signature,
                                                       Decision(Verdict.PROMOTE), filing))
        assert store.file("IMG_6.jpg")["sha256"] == hashlib.sha256(arrived).hexdigest()
    assert (config.library.pictures / "IMG_6.jpg").read_bytes() == arrived
    assert files(config.library.quarantine) == []


def test_a_plan_survives_its_journal_form(config):
    arrived = images.jpeg(images.photo(53))
    item = Staging(config.staging_dir).stage(io.BytesIO(arrived),
                                             Provenance("imap", "7:2", "a.jpg", sender="x@y"))
    decision = Decision(Verdict.DUPLICATE, reason="duplicate of b.jpg (similar, 0.02)",
                        matched_path="b.jpg", matched_sha256="ab" * 32, method="similar",
                        distance=0.02)
    plan = run.filing_plan(config, item, sign_file(item.data_path, config.gate.max_pixels), decision)
    assert moves.Plan.from_dict(plan.to_dict()) == plan
