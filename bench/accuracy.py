"""Accuracy against a bench/corpus.py labels file: which duplicate pairs a method found.

A method's answer is a list of (kept file, duplicate file) pairs: the resweep's planned
quarantine moves (``path`` and ``matched_path``) for ours, ``BaselineResult.pairs`` for
the article's method. Both are scored the same way (``score_pairs``):

* a duplicate of kind K is *caught* when it appears in a pair with a file of its own group
  (its original or another copy of that original): recall per kind;
* a pair is *true* when both files belong to the same group; precision = true / all;
* a false pair touching a hard negative and the group of the photo it imitates is a
  *hard-negative false positive* (counted per negative kind); any other false pair joins
  two *distinct photos* (counted per class of the two originals: two low-detail pictures
  joined are a ``flat`` false positive).

Recall is also given per class of original (``photo``, ``odd`` size, ``flat`` low detail;
bench/corpus_hard.py), since every kind must be found on every class.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.corpus import ALL_DUP_KINDS as DUP_KINDS, ALL_NEG_KINDS as NEG_KINDS

METHODS = ("exact", "rms", "similar")


def load_labels(corpus: Path) -> dict[str, dict]:
    return {f["name"]: f for f in json.loads((corpus / "labels.json").read_text())["files"]}


def score_pairs(pairs, files: dict[str, dict]) -> dict:
    """Recall per kind, precision, and the two kinds of false positives (see above)."""
    group = {name: (name if f["kind"] == "original" else f["of"])
             for name, f in files.items() if f["kind"] not in NEG_KINDS}
    true_pairs, hard, distinct, caught = 0, [], [], set()
    for first, second in pairs:
        if first in group and group.get(second) == group[first]:
            true_pairs += 1
            caught.update((first, second))
            continue
        imitated = {files.get(name, {}).get("of") for name in (first, second)
                    if files.get(name, {}).get("kind") in NEG_KINDS}
        if imitated & {group.get(first), group.get(second)}:
            hard.append((first, second))
        else:
            distinct.append((first, second))
    per_kind, per_class_kind = {}, {}
    for kind in DUP_KINDS:
        members = [name for name, f in files.items() if f["kind"] == kind]
        if members:
            per_kind[kind] = (sum(name in caught for name in members), len(members))
        for cls in sorted({files[name].get("class", "photo") for name in members}):
            mine = [name for name in members if files[name].get("class", "photo") == cls]
            per_class_kind[(cls, kind)] = (sum(name in caught for name in mine), len(mine))
    fp_by_kind = {kind: 0 for kind in NEG_KINDS
                  if any(f["kind"] == kind for f in files.values())}
    for pair in hard:
        for name in pair:
            kind = files.get(name, {}).get("kind")
            if kind in fp_by_kind:
                fp_by_kind[kind] += 1
    distinct_by_class: dict[str, int] = {}
    for pair in distinct:
        label = "+".join(sorted(files.get(name, {}).get("class", "photo") for name in pair))
        distinct_by_class[label] = distinct_by_class.get(label, 0) + 1
    return {"pairs": len(pairs), "true_pairs": true_pairs, "hard_negative_fp": hard,
            "distinct_fp": distinct, "per_kind": per_kind, "per_class_kind": per_class_kind,
            "fp_by_kind": fp_by_kind, "distinct_by_class": distinct_by_class,
            "precision": true_pairs / len(pairs) if pairs else 1.0}


def resweep_pairs(report: dict) -> list[tuple[str, str]]:
    return [(move["matched_path"], move["path"]) for move in report["moves"]]


def method_scores(work: Path, corpus: Path, signed_state: Path, write_config,
                  product_resweep) -> dict[str, dict]:
    """Each method's resweep (dry run) over the already signed corpus store."""
    files = load_labels(corpus)
    scores = {}
    for method in METHODS:
        config = write_config(work, f"accuracy-{method}", corpus, method=method)
        state = work / f"state-accuracy-{method}"
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(signed_state, state)
        scores[method] = score_pairs(resweep_pairs(product_resweep(config)["report"]), files)
    return scores


def report(work: Path, corpus: Path, signed_state: Path, baseline, write_config,
           product_resweep) -> str:
    """The accuracy table as text."""
    scores = method_scores(work, corpus, signed_state, write_config, product_resweep)
    if baseline is not None:
        scores["baseline"] = score_pairs(baseline.pairs, load_labels(corpus))
    columns = list(scores)
    lines = [f"{'recall per kind':<20}" + "".join(f"{column:>12}" for column in columns)]
    for kind in DUP_KINDS:
        cells = [scores[column]["per_kind"].get(kind) for column in columns]
        if cells[0] is None:
            continue
        lines.append(f"{kind:<20}" + "".join(f"{f'{a}/{b}':>12}" for a, b in cells))
    for label, key in (("hard-negative FP", "hard_negative_fp"), ("distinct-photo FP",
                                                                   "distinct_fp")):
        lines.append(f"{label:<20}" + "".join(f"{len(scores[c][key]):>12}" for c in columns))
    negatives_of = {}
    for f in load_labels(corpus).values():
        negatives_of[f["kind"]] = negatives_of.get(f["kind"], 0) + 1
    for kind in scores[columns[0]]["fp_by_kind"]:
        lines.append(f"{'  FP ' + kind:<20}" + "".join(
            f"{scores[c]['fp_by_kind'].get(kind, 0):>12}" for c in columns) +
            f"   (of {negatives_of[kind]})")
    classes = sorted({key for c in columns for key in scores[c]["distinct_by_class"]})
    for label in classes:
        lines.append(f"{'  FP ' + label:<20}" + "".join(
            f"{scores[c]['distinct_by_class'].get(label, 0):>12}" for c in columns))
    lines.append(f"{'precision':<20}" + "".join(
        f"{100 * scores[c]['precision']:>11.1f}%" for c in columns))
    lines.append(f"{'pairs reported':<20}" + "".join(f"{scores[c]['pairs']:>12}"
                                                     for c in columns))
    negatives = sum(f["kind"] in NEG_KINDS for f in load_labels(corpus).values())
    lines.append(f"({negatives} hard negatives in the corpus; ours = the resweep's planned "
                 "quarantine pairs, baseline = the pairs the article's script would move)")
    lines += class_table(scores, columns)
    files = load_labels(corpus)
    for column in columns:
        for pair in scores[column]["hard_negative_fp"] + scores[column]["distinct_fp"]:
            kinds = " ~ ".join(f"{files.get(n, {}).get('class', '?')}/"
                               f"{files.get(n, {}).get('kind', '?')}" for n in pair)
            lines.append(f"  {column} false pair: {pair[0]} ~ {pair[1]} ({kinds})")
    return "\n".join(lines)


def class_table(scores: dict, columns: list[str], method: str = "similar") -> list[str]:
    """Recall per kind and class of original (photo / odd size / flat) of ``method``."""
    found = scores[method]["per_class_kind"]
    classes = [cls for cls in ("photo", "odd", "flat") if any(key[0] == cls for key in found)]
    if classes == ["photo"]:
        return []
    lines = ["", f"recall per kind and class of original, {method} (the default method)",
             f"{'kind':<20}" + "".join(f"{cls:>10}" for cls in classes)]
    for kind in DUP_KINDS:
        cells = [found.get((cls, kind)) for cls in classes]
        if any(cells):
            lines.append(f"{kind:<20}" + "".join(
                f"{f'{cell[0]}/{cell[1]}' if cell else '-':>10}" for cell in cells))
    return lines
