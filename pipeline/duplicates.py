"""Duplicate groups inside the library, for the nightly resweep.

The matching pairs come from the configured method over the whole library
(``matching.library_pairs``: the same method objects as the gate, their candidate step
searching the index without comparing every file with every other). Groups are then
formed *around the kept file*: files in keep order, each file not yet taken keeps itself
and takes the untaken files that match IT; there is no chaining (A~B and B~C do not put
A and C together).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.config import DedupeConfig
from pipeline.index import SignatureIndex
from pipeline.matching import library_pairs


@dataclass
class Group:
    keeper: int                 # position of the file that stays
    # (position, method, distance) of each file that matched the keeper directly
    members: list[tuple[int, str, float]] = field(default_factory=list)


def find_groups(store, library: SignatureIndex, settings: DedupeConfig,
                overrides: set[tuple[str, str]] = frozenset()) -> list[Group]:
    """Every duplicate group in ``library``, each around its kept file, in keep order."""
    edges = library_pairs(library, store, settings)
    return group_around_keepers(library, edges, settings.keep, overrides)


def keep_order(library: SignatureIndex, keep: str) -> np.ndarray:
    """Live positions, the file to keep first: ``best`` = most pixels, largest file, oldest;
    ``first`` = oldest. The path breaks remaining ties so runs are repeatable."""
    count = library.count
    path_rank = np.argsort(np.argsort(np.array(library.paths, dtype=object)))
    mtime_ns = library.mtime_ns[:count]
    if keep == "first":
        order = np.lexsort((path_rank, mtime_ns))
    else:
        sizes = library.sizes[:count]
        pixels = sizes[:, 0] * sizes[:, 1]
        order = np.lexsort((path_rank, mtime_ns, -library.file_bytes[:count], -pixels))
    return order[library.live[order]]


def group_around_keepers(library: SignatureIndex, edges, keep: str,
                         overrides: set[tuple[str, str]]) -> list[Group]:
    """No chaining: a file joins a group only by matching its kept file directly."""
    neighbours: dict[int, list[tuple[int, str, float]]] = {}
    for one, other, method, distance in edges:
        if tuple(sorted((library.sha256[one], library.sha256[other]))) in overrides:
            continue  # a person restored this pair: never duplicates again
        neighbours.setdefault(one, []).append((other, method, distance))
        neighbours.setdefault(other, []).append((one, method, distance))
    taken = np.zeros(library.count, dtype=bool)
    groups = []
    for position in keep_order(library, keep).tolist():
        if taken[position]:
            continue
        taken[position] = True
        group = Group(position)
        for other, method, distance in sorted(neighbours.get(position, ())):
            if not taken[other]:
                taken[other] = True
                group.members.append((other, method, distance))
        if group.members:
            groups.append(group)
    return groups
