"""Interrupted gate runs are finished exactly once by the next run."""

from __future__ import annotations

import io
import json

import pytest

from pipeline.config import parse_config
from pipeline.index import SignatureIndex
from pipeline.ingest import Gate
from pipeline.items import Provenance
from pipeline.library import move_file
from pipeline.staging import Staging
from pipeline.store import Store
from tests import images


def home_config(home):
    return parse_config({"library": {"pictures": str(home.pictures),
                                     "quarantine": str(home.quarantine),
                                     "rejected": str(home.rejected),
                                     "state_dir": str(home.state_dir)}})


def interrupted_gate(home, payload: bytes, stop_after_move: bool):
    """Stage one photo and carry its promotion up to the journal (and the move)."""
    config = home_config(home)
    with Store(config.database) as store:
        staging = Staging(config.staging_dir)
        item = staging.stage(io.BytesIO(payload), Provenance("folder", "x:1:1", "IMG_9.jpg"))
        gate = Gate(config, store, staging)
        gate.index = SignatureIndex.from_store(store)
        signature, decision = gate.judge(item)
        plan = gate.plan(item, signature, decision)
        gate.store_plan(item, plan)
        if stop_after_move:
            move_file(item.data_path, home.pictures / "IMG_9.jpg")


@pytest.mark.parametrize("stop_after_move", [False, True])
def test_rerun_finishes_an_interrupted_promotion_once(home, stop_after_move):
    payload = images.jpeg(images.photo(41))
    interrupted_gate(home, payload, stop_after_move)
    result = home.run("run", "--json", check=True)
    summary = json.loads(result.stdout)
    assert home.files(home.pictures) == ["IMG_9.jpg"]
    assert (home.pictures / "IMG_9.jpg").read_bytes() == payload
    assert home.files(home.quarantine) == [] and home.files(home.state_dir / "staging") == []
    status = json.loads(home.run("status", "--json").stdout)
    assert status["library_files"] == 1 and status["decisions"] == {"promoted": 1}
    assert summary["duplicates"] == 0
