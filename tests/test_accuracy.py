"""The default method against a small labelled corpus of REAL photographs.

bench/corpus.py cuts 40 distinct pictures out of photographs shipped in Debian wallpaper
packages and scikit-image, and adds every kind of copy a family library collects (byte
copy, EXIF stripped, recompressed, downscaled, rotated, EXIF-rotated, PNG, HEIC) and hard
negatives that must stay apart (burst neighbours: shifted, brighter, zoomed). The same
check at scale, with timings, is bench/run.py; these tests only assert behaviour:

* the gate: with the originals in the library, every copy is a duplicate of its own
  original, every hard negative and every original is promoted;
* the resweep: over the whole folder, every copy is paired with its group and no pair
  joins a hard negative or two distinct photos.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.accuracy import load_labels, resweep_pairs, score_pairs
from bench.corpus import DUP_KINDS, NEG_KINDS, make_corpus
from pipeline.config import parse_config
from pipeline.gate import decide
from pipeline.index import SignatureIndex
from pipeline.items import Verdict
from pipeline.signatures import sign_file
from pipeline.store import Store

ORIGINALS = 40
SEED = 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "Pictures"
    make_corpus(folder, ORIGINALS, SEED, all_kinds=True)
    return folder


@pytest.fixture(scope="module")
def labels(corpus) -> dict[str, dict]:
    found = load_labels(corpus)
    kinds = {label["kind"] for label in found.values()}
    assert kinds >= set(DUP_KINDS) | set(NEG_KINDS)  # every kind is exercised
    return found


@pytest.fixture(scope="module")
def gate_verdicts(corpus, labels, tmp_path_factory):
    """name -> (verdict, matched library name) of every file gated against a library
    that holds the originals (an original is judged with its own bytes excluded)."""
    config = parse_config({})
    signatures = {name: sign_file(corpus / name, config.gate.max_pixels) for name in labels}
    settings = config.dedupe
    database = tmp_path_factory.mktemp("store") / "store.sqlite3"
    with Store(database) as store:
        with store.transaction() as tx:
            for name, label in labels.items():
                if label["kind"] == "original":
                    store.put_file(tx, name, 0, 0, signatures[name])
        index = SignatureIndex.from_store(store)
        verdicts = {}
        for name, label in labels.items():
            excluded = {signatures[name].sha256} if label["kind"] == "original" else set()
            decision = decide(signatures[name], index, store, settings, excluded)
            verdicts[name] = (decision.verdict, decision.matched_path)
    return verdicts


def test_gate_finds_every_kind_of_copy_of_its_own_original(labels, gate_verdicts):
    missed = {name: (label["kind"], gate_verdicts[name]) for name, label in labels.items()
              if label["kind"] in DUP_KINDS
              and gate_verdicts[name] != (Verdict.DUPLICATE, label["of"])}
    assert not missed


def test_gate_promotes_hard_negatives_and_distinct_photos(labels, gate_verdicts):
    matched = {name: (label["kind"], gate_verdicts[name]) for name, label in labels.items()
               if label["kind"] in NEG_KINDS + ("original",)
               and gate_verdicts[name][0] is not Verdict.PROMOTE}
    assert not matched


def test_resweep_pairs_every_copy_and_keeps_negatives_apart(home, corpus, labels):
    config = home.path / "config.toml"
    config.write_text(f'[library]\npictures = "{corpus}"\n')
    result = home.run("--config", str(config), "-q", "resweep", "--dry-run", "--json",
                      check=True)
    score = score_pairs(resweep_pairs(json.loads(result.stdout)), labels)
    missed = {kind: counts for kind, counts in score["per_kind"].items()
              if counts[0] < counts[1]}
    assert set(score["per_kind"]) == set(DUP_KINDS)
    assert not missed
    assert not score["hard_negative_fp"]
    assert not score["distinct_fp"]
    assert sorted(home.files(corpus)) == sorted(labels) + ["labels.json"]  # dry run
