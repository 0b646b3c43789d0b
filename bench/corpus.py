#!/usr/bin/env python3
"""Seeded generator of labelled photo libraries made from REAL photographs.

Install what it needs (once per machine):

    pip install -r bench/requirements.txt        # numpy, Pillow, scikit-image, pillow-heif
    apt-get update
    apt-get install -y mate-backgrounds plasma-workspace-wallpapers \
        lomiri-wallpapers-20.04 lomiri-wallpapers-16.04

Usage:

    python bench/corpus.py OUT_DIR --originals N --seed S \
        [--dup-fraction 0.3] [--negatives-fraction 0.2] [--all-kinds] [--workers W]

    from bench.corpus import make_corpus
    labels = make_corpus("/tmp/lib", originals=40, seed=1)

What it writes into OUT_DIR (flat, shuffled names IMG_nnnn.jpg / .png / .heic):

* ``original``: distinct 1920x1200 pictures, each a window (position + scale) of an
  allowlisted real photograph, resized with LANCZOS, given a slight tone change
  (gamma / white balance) and light sensor-like grain (sigma 1.2-2.2 levels, which
  brings file sizes to ~250-600 KB like camera pictures), saved as baseline JPEG
  quality 90 with an EXIF block
  (Make, Model, Orientation=1, DateTime, DateTimeOriginal).  Two originals are
  guaranteed to be genuinely different pictures:
    - windows of the same source photo differ by a window offset of >= 30 % of the
      window (in x or y) or by a scale ratio >= 1.3, AND overlap with IoU <= 0.5,
      AND at most 70 % of the smaller lies inside the larger unless it is a >= 2x
      zoom (see windows_distinct());
    - additionally every original's 63-bit DCT hash (pHash) is >= 16 bits away from
      every other original's, and their 16x10 colour thumbnails differ by >= 12/255 on
      average, and their 32x20 grey thumbnails correlate <= 0.8 (this rejects
      look-alikes: e.g. two windows of a uniform texture or of a horizontally uniform
      scene, two shifted views of one horizon, and look-alikes from different sources);
    - windows with almost no detail (flat sky, fog) are not used.
* labelled duplicates (``"of"`` = the original's name), see ``DUP_KINDS``.
* labelled hard negatives that must NOT match their original (``"of"`` = the
  original they resemble), see ``NEG_KINDS``; re-rendered from the source photo.
* ``labels.json``: ``{"seed": S, "files": [{"name", "kind", "of"}, ...], ...}``.

Output is deterministic for a given seed, arguments and library versions (all
randomness is drawn up front in the parent process; encoders run with fixed settings).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import io
import json
import math
import os
import random
import sys
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

try:
    from bench import corpus_hard as hard_cases
except ImportError:  # run as a script: bench/ is on sys.path, not its parent
    import corpus_hard as hard_cases  # type: ignore[no-redef]
HARD_DUP_KINDS, HARD_NEG_KINDS = hard_cases.HARD_DUP_KINDS, hard_cases.HARD_NEG_KINDS

# ----------------------------------------------------------------------------------
# Sources of real photographs
# ----------------------------------------------------------------------------------

INSTALL_HINT = (
    "no real photographs found. Install them with:\n"
    "  apt-get update && apt-get install -y mate-backgrounds "
    "plasma-workspace-wallpapers lomiri-wallpapers-20.04 lomiri-wallpapers-16.04\n"
    "  pip install scikit-image"
)

# Photographic files, checked by eye on a contact sheet. Everything else those
# packages ship is rendered artwork and is NOT used:
#   lomiri-wallpapers-20.04: Fossa, Infinite-Sea (composite art), Painting-Colors;
#   lomiri-wallpapers-16.04: analogpattern (heavily processed texture), umang;
#   mate-backgrounds: all of mate/abstract/* and mate/desktop/* (incl. the four
#     Ubuntu-Mate-*-no-logo blurred colour grades of one image);
#   plasma-workspace-wallpapers: Altai, Autumn (painting), Canopee, Cascade, Cluster,
#     Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal,
#     PastelHills, Patak, SafeLanding, Shell, Volna.
_BG = "/usr/share/backgrounds"
_MATE_NATURE = f"{_BG}/mate/nature"
_PLASMA = "/usr/share/wallpapers"
WALLPAPER_ALLOWLIST: dict[str, str] = {
    # lomiri-wallpapers-20.04
    "lomiri/Kleiber": f"{_BG}/Kleiber_by_Lukas_Baubkus.jpg",
    # lomiri-wallpapers-16.04
    **{f"lomiri16/{n.split('_by_')[0]}": f"{_BG}/{n}.jpg" for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
        "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
        "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
        "sunset_by_Aitzol_Berasategi")},
    # mate-backgrounds (nature)
    **{f"mate/{n}": f"{_MATE_NATURE}/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")},
    # plasma-workspace-wallpapers: a directory; its largest real (non-symlink) image is used
    **{f"plasma/{n}": f"{_PLASMA}/{n}/contents/images" for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
        "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")},
}
# scikit-image bundled photos that load without a download. Rejected: cat (same
# photo as chelsea), retina/immunohistochemistry/cell/microaneurysms (microscopy),
# brick/grass/gravel (textures), moon, page/text (documents), colorwheel/logo/horse
# (graphics). ``motorcycle_left`` is not in scikit-image 0.26: stereo_motorcycle()[0].
SKIMAGE_ALLOWLIST: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
    "stereo_motorcycle", "camera",
)
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PhotoSource:
    """One real photograph: a file on disk or a scikit-image sample."""

    id: str
    path: Path | None = None
    skimage_name: str | None = None

    def load(self, reduce: int = 1) -> Image.Image:
        """Decode to RGB. ``reduce`` > 1 allows a cheaper, smaller JPEG decode
        (the result is at least 1/reduce of full size; callers use its real size)."""
        if self.path is not None:
            with Image.open(self.path) as im:
                if reduce > 1:
                    im.draft("RGB", (im.width // reduce, im.height // reduce))
                return im.convert("RGB")
        return Image.fromarray(_skimage_array(self.skimage_name)).convert("RGB")


def _skimage_array(name: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skimage.data as skd  # noqa: PLC0415 - heavy, import on demand

        arr = getattr(skd, name)()
    if isinstance(arr, tuple):  # stereo_motorcycle -> (left, right, disparity)
        arr = arr[0]
    if arr.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name} is not an 8-bit image")
    return arr


def _largest_image(directory: Path) -> Path | None:
    best, best_area = None, -1
    for p in sorted(directory.iterdir()):
        if p.is_symlink() or not p.is_file() or p.suffix.lower() not in _IMAGE_EXTS:
            continue
        try:
            with Image.open(p) as im:
                area = im.width * im.height
        except OSError:
            continue
        if area > best_area:
            best, best_area = p, area
    return best


def source_photos(include_skimage: bool = True) -> list[PhotoSource]:
    """All allowlisted real photographs present on this machine.

    Raises RuntimeError naming the packages to install if none is found."""
    found: list[PhotoSource] = []
    for sid, loc in WALLPAPER_ALLOWLIST.items():
        p = Path(loc)
        if p.is_dir():
            p = _largest_image(p)
        if p is not None and p.is_file():
            found.append(PhotoSource(sid, path=p))
    if include_skimage and importlib.util.find_spec("skimage") is not None:
        for name in SKIMAGE_ALLOWLIST:
            try:
                _skimage_array(name)
            except Exception:  # needs a download, or missing in this version
                continue
            found.append(PhotoSource(f"skimage/{name}", skimage_name=name))
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


# ----------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------

DUP_KINDS: tuple[str, ...] = (
    "byte_copy",        # same bytes, other name
    "exif_stripped",    # APP1 segments removed from the bytes: identical pixels, no EXIF
    "recompressed",     # decoded and re-saved as JPEG quality 60..90 (EXIF kept)
    "downscaled_50",    # 960x600 JPEG q90
    "downscaled_1024",  # 1024 px long edge (1024x640) JPEG q90
    "rotated_90",       # pixels rotated 90 deg counter-clockwise (PIL ROTATE_90), JPEG q90
    "rotated_180",
    "rotated_270",      # = 90 deg clockwise
    "exif_orientation", # pixels stored rotated 90 CCW + EXIF Orientation=6: displays upright
    "png",              # lossless PNG of the decoded original's pixels
    "heic",             # HEIC (pillow-heif, x265) of the decoded original's pixels
)
NEG_KINDS: tuple[str, ...] = (
    "burst_shift",      # same source window shifted by 2-5 % of its width or height
    "burst_brightness", # same window, brightness x0.95 or x1.05
    "burst_zoom",       # same window cropped by 3-6 % (about its centre), resized back
)
# The hard cases of issue 12 (bench/corpus_hard.py), written with ``hard=True``.
ALL_DUP_KINDS: tuple[str, ...] = DUP_KINDS + HARD_DUP_KINDS
ALL_NEG_KINDS: tuple[str, ...] = NEG_KINDS + HARD_NEG_KINDS
KINDS: tuple[str, ...] = ("original",) + ALL_DUP_KINDS + ALL_NEG_KINDS


@dataclass(frozen=True)
class FileLabel:
    name: str
    kind: str
    of: str | None  # the original's name for duplicates and negatives; None for originals
    cls: str = "photo"  # the original's class: photo, odd (size), flat (low detail)

    @property
    def is_duplicate(self) -> bool:
        return self.kind in ALL_DUP_KINDS

    @property
    def is_negative(self) -> bool:
        return self.kind in ALL_NEG_KINDS


@dataclass
class Labels:
    seed: int
    files: list[FileLabel]
    params: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # original name -> {"source", "box"}

    # --- views -------------------------------------------------------------------
    def by_name(self) -> dict[str, FileLabel]:
        return {f.name: f for f in self.files}

    def of_kind(self, *kinds: str) -> list[FileLabel]:
        return [f for f in self.files if f.kind in kinds]

    @property
    def originals(self) -> list[str]:
        return [f.name for f in self.files if f.kind == "original"]

    def duplicate_groups(self) -> dict[str, list[str]]:
        """original name -> sorted [original, *its duplicates] (negatives excluded)."""
        groups = {n: [n] for n in self.originals}
        for f in self.files:
            if f.is_duplicate:
                groups[f.of].append(f.name)
        return {k: sorted(v) for k, v in groups.items()}

    def duplicate_pairs(self) -> set[frozenset[str]]:
        """Every unordered pair of files that show the same picture."""
        out: set[frozenset[str]] = set()
        for members in self.duplicate_groups().values():
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    out.add(frozenset((a, b)))
        return out

    def negative_pairs(self) -> set[frozenset[str]]:
        """Pairs (negative, its original) that must NOT be matched."""
        return {frozenset((f.name, f.of)) for f in self.files if f.is_negative}

    # --- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "files": [{"name": f.name, "kind": f.kind, "of": f.of, "class": f.cls}
                      for f in self.files],
            "params": self.params,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Labels":
        d = json.loads(Path(path).read_text())
        files = [FileLabel(f["name"], f["kind"], f.get("of"), f.get("class", "photo"))
                 for f in d["files"]]
        return cls(d["seed"], files, d.get("params", {}), d.get("provenance", {}))


# ----------------------------------------------------------------------------------
# Planning (parent process; all randomness is drawn here)
# ----------------------------------------------------------------------------------

OUT_W, OUT_H = 1920, 1200
ASPECT = OUT_W / OUT_H
JPEG_QUALITY = 90
HEIC_QUALITY = 60   # libheif's scale: q60 ~ same bytes as JPEG q90; q80-90 is 2x larger
MIN_WINDOW_W = 720  # source pixels; smaller windows would be upscaled > 2.67x
# Candidate grid: scale levels LEVEL_RATIO apart, positions >= SHIFT_FRAC of the window
# apart (same-level neighbours then have IoU 0.47, 64 % containment).
LEVEL_RATIO = 1.45
SHIFT_FRAC = 0.36
# Guarantees between two originals cut from the same source photo (windows_distinct).
MIN_SCALE_RATIO = 1.3
MIN_SHIFT_FRAC = 0.3
MAX_IOU = 0.5
MAX_CONTAINED = 0.7
NESTED_SCALE_RATIO = 2.0
MIN_HASH_DIST = 16      # pHash bits (of 63) between any two originals
MIN_THUMB_DIST = 12.0   # mean abs difference of 16x10 RGB thumbnails (0..255), ditto
MAX_NCC = 0.8           # correlation of 32x20 grey thumbnails (layout), ditto; burst
                        # negatives vs their original measure ~0.65-0.92 on this
MIN_NEG_HASH_DIST = 10  # the same between a negative and every OTHER original
MIN_NEG_THUMB_DIST = 8.0
MAX_NEG_NCC = 0.9
# "almost no detail" thresholds on a 64x40 grey thumbnail (0..255)
MIN_STD = 10.0
MIN_GRAD = 2.0

CAMERAS: tuple[tuple[str, str], ...] = (
    ("Apple", "iPhone 12"), ("Apple", "iPhone SE (2nd generation)"),
    ("Apple", "iPhone 14 Pro"), ("samsung", "SM-G991B"), ("samsung", "SM-A525F"),
    ("Google", "Pixel 6a"), ("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D5300"),
    ("SONY", "ILCE-6000"), ("Xiaomi", "Redmi Note 8 Pro"), ("HUAWEI", "ELE-L29"),
)


@dataclass(frozen=True)
class Window:
    source: int                        # index into the source list
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in full-resolution source pixels

    @property
    def w(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def h(self) -> float:
        return self.box[3] - self.box[1]


def windows_distinct(a: Window, b: Window) -> bool:
    """The minimum-difference rule between two originals cut from one source photo:
    (offset >= 30 % of the window in x or y, or scale ratio >= 1.3) AND IoU <= 0.5
    AND (at most 70 % of the smaller window inside the larger, unless the scale
    ratio is >= 2: a 2x zoom into a detail is a different picture, a 1.3x one is not)."""
    if a.source != b.source:
        return True
    ratio = max(a.w / b.w, b.w / a.w)
    dx, dy = abs(a.box[0] - b.box[0]), abs(a.box[1] - b.box[1])
    far = (ratio >= MIN_SCALE_RATIO - 1e-9 or dx >= MIN_SHIFT_FRAC * max(a.w, b.w) - 1e-6
           or dy >= MIN_SHIFT_FRAC * max(a.h, b.h) - 1e-6)
    inter = _intersection(a.box, b.box)
    area_a, area_b = a.w * a.h, b.w * b.h
    iou = inter / (area_a + area_b - inter)
    contained = inter / min(area_a, area_b)
    return (far and iou <= MAX_IOU + 1e-9
            and (contained <= MAX_CONTAINED + 1e-9 or ratio >= NESTED_SCALE_RATIO - 1e-9))


def _intersection(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return iw * ih


def _positions(length: float, span: float, rng: random.Random) -> list[float]:
    """Window starts along one axis, >= SHIFT_FRAC*span apart, evenly spread + jitter."""
    free = max(0.0, length - span)
    step_min = SHIFT_FRAC * span
    n = int(free // step_min) + 1
    if n == 1:
        return [rng.uniform(0.0, free)]
    step = free / (n - 1)
    slack = step - step_min
    return [min(max(i * step + rng.uniform(-slack / 2, slack / 2), 0.0), free) for i in range(n)]


def _candidate_windows(si: int, size: tuple[int, int], rng: random.Random) -> list[Window]:
    W, H = size
    smax = min(W, H * ASPECT)
    w = smax * rng.uniform(0.86, 1.0)
    out: list[Window] = []
    level = 0
    while level == 0 or w >= MIN_WINDOW_W:
        h = w / ASPECT
        for y in _positions(H, h, rng):
            for x in _positions(W, w, rng):
                out.append(Window(si, (x, y, x + w, y + h)))
        w /= LEVEL_RATIO
        level += 1
    return out


_DCT32 = np.array([[math.cos(math.pi * (2 * x + 1) * u / 64) for x in range(32)]
                   for u in range(32)])


@dataclass
class _PlanImage:
    """A reduced decode of one source photo, for choosing windows cheaply."""

    rgb: Image.Image
    grey: Image.Image
    scale: tuple[float, float]  # reduced size / full size, per axis
    full: tuple[int, int]       # full-resolution size

    @classmethod
    def of(cls, source: PhotoSource) -> "_PlanImage":
        if source.path is not None:
            with Image.open(source.path) as im:
                full = im.size
            rgb = source.load(reduce=4)
        else:
            rgb = source.load()
            full = rgb.size
        return cls(rgb, rgb.convert("L"), (rgb.width / full[0], rgb.height / full[1]), full)


@dataclass
class _Desc:
    bits: np.ndarray   # 63-bit pHash (bools)
    thumb: np.ndarray  # 16x10 RGB thumbnail, flattened float32 (0..255)
    shape: np.ndarray  # 32x20 grey thumbnail, zero mean, unit norm (for correlation)
    std: float         # luminance std (64x40)
    grad: float        # mean abs luminance gradient (64x40)


def _descriptor(p: _PlanImage, box) -> _Desc:
    """Describe a window (full-resolution ``box``) using the reduced planning image."""
    sx, sy = p.scale
    b = (max(0.0, box[0] * sx), max(0.0, box[1] * sy),
         min(float(p.grey.width), box[2] * sx), min(float(p.grey.height), box[3] * sy))
    g32 = np.asarray(p.grey.resize((32, 32), Image.BILINEAR, box=b), dtype=np.float64)
    d = _DCT32 @ g32 @ _DCT32.T
    low = d[:8, :8].flatten()[1:]
    bits = low > np.median(low)
    g = np.asarray(p.grey.resize((64, 40), Image.BILINEAR, box=b), dtype=np.float64)
    grad = (np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()) / 2
    thumb = np.asarray(p.rgb.resize((16, 10), Image.BOX, box=b), dtype=np.float32).ravel()
    shape = np.asarray(p.grey.resize((32, 20), Image.BOX, box=b), dtype=np.float32).ravel()
    shape -= shape.mean()
    shape /= float(np.linalg.norm(shape)) + 1e-6
    return _Desc(bits, thumb, shape, float(g.std()), float(grad))


@dataclass
class _Plan:
    windows: list[Window]
    hashes: np.ndarray  # (n, 63) bool
    thumbs: np.ndarray  # (n, 480) float32
    shapes: np.ndarray  # (n, 640) float32

    def far_from_all(self, d: _Desc, except_index: int | None = None, min_hash: int = 0,
                     min_thumb: float = 0.0, max_ncc: float = 1.0) -> bool:
        if not self.windows:
            return True
        hd = (self.hashes != d.bits).sum(axis=1)
        td = np.abs(self.thumbs - d.thumb).mean(axis=1)
        cc = self.shapes @ d.shape
        if except_index is not None:
            hd[except_index] = 64
            td[except_index] = 255.0
            cc[except_index] = -1.0
        return bool(hd.min() >= min_hash and td.min() >= min_thumb and cc.max() <= max_ncc)

    def add(self, w: Window, d: _Desc) -> None:
        self.windows.append(w)
        self.hashes = np.vstack([self.hashes, d.bits[None, :]])
        self.thumbs = np.vstack([self.thumbs, d.thumb[None, :]])
        self.shapes = np.vstack([self.shapes, d.shape[None, :]])


def plan_windows(sources: Sequence[PhotoSource], n: int, rng: random.Random,
                 plans: Sequence[_PlanImage]) -> _Plan:
    """Choose n mutually distinct windows, spread round-robin over the sources."""
    cands: dict[int, list[Window]] = {}
    for si in range(len(sources)):
        c = _candidate_windows(si, plans[si].full, rng)
        rng.shuffle(c)
        cands[si] = c
    order = list(range(len(sources)))
    rng.shuffle(order)
    ptr = {si: 0 for si in order}
    plan = _Plan([], np.zeros((0, 63), dtype=bool), np.zeros((0, 480), dtype=np.float32),
                 np.zeros((0, 640), dtype=np.float32))
    by_src: dict[int, list[Window]] = {}
    active = list(order)
    while len(plan.windows) < n and active:
        still = []
        for si in active:
            if len(plan.windows) >= n:
                still.append(si)
                continue
            got = False
            while ptr[si] < len(cands[si]):
                wdw = cands[si][ptr[si]]
                ptr[si] += 1
                if not all(windows_distinct(wdw, o) for o in by_src.get(si, [])):
                    continue
                d = _descriptor(plans[si], wdw.box)
                if d.std < MIN_STD or d.grad < MIN_GRAD:
                    continue
                if not plan.far_from_all(d, min_hash=MIN_HASH_DIST, min_thumb=MIN_THUMB_DIST,
                                         max_ncc=MAX_NCC):
                    continue
                plan.add(wdw, d)
                by_src.setdefault(si, []).append(wdw)
                got = True
                break
            if got:
                still.append(si)
        active = still
    if len(plan.windows) < n:
        raise ValueError(
            f"only {len(plan.windows)} mutually distinct pictures can be cut from the "
            f"{len(sources)} source photos found; asked for {n}" + (
                "" if len(sources) > 40 else
                " (is lomiri-wallpapers-16.04 installed? see bench/requirements.txt)"))
    return plan


def _tone(rng: random.Random) -> tuple[float, tuple[float, float, float]]:
    gamma = rng.uniform(0.92, 1.08)
    gains = tuple(rng.uniform(0.97, 1.03) for _ in range(3))
    return gamma, gains  # type: ignore[return-value]


def _exif_bytes(make: str, model: str, when: _dt.datetime, size: tuple[int, int],
                orientation: int = 1) -> bytes:
    ex = Image.Exif()
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    ex[0x010F] = make
    ex[0x0110] = model
    ex[0x0112] = orientation
    ex[0x0131] = "frame-ingest corpus"
    ex[0x0132] = stamp
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = stamp  # DateTimeOriginal
    sub[0x9004] = stamp  # DateTimeDigitized
    sub[0xA002] = size[0]
    sub[0xA003] = size[1]
    return ex.tobytes()


# ----------------------------------------------------------------------------------
# Rendering (worker processes)
# ----------------------------------------------------------------------------------

_SOURCES: list[PhotoSource] = []
_CACHE: "OrderedDict[int, Image.Image]" = OrderedDict()
_CACHE_SIZE = 4


def _worker_init(sources: list[PhotoSource]) -> None:
    global _SOURCES
    _SOURCES = list(sources)
    _CACHE.clear()
    try:
        import pillow_heif  # noqa: PLC0415

        pillow_heif.register_heif_opener()
    except ImportError:
        pass


def _source_image(si: int) -> Image.Image:
    im = _CACHE.get(si)
    if im is None:
        im = _SOURCES[si].load()
        _CACHE[si] = im
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(si)
    return im


def _render(si: int, box, gamma: float, gains, grain: tuple[float, int],
            brightness: float = 1.0, size: tuple[int, int] = (OUT_W, OUT_H)) -> Image.Image:
    """Cut ``box`` out of source ``si``, resize to 1920x1200 (LANCZOS), apply the tone
    (gamma, per-channel gain, brightness) and a light luminance grain (sensor noise:
    real photos have it, and it brings JPEG sizes to those of camera pictures)."""
    src = _source_image(si)
    if tuple(size) != (OUT_W, OUT_H):  # an odd size: the window cut to its aspect ratio
        box = hard_cases.aspect_box(box, size)
    img = src.resize(tuple(size), Image.LANCZOS, box=box, reducing_gap=3.0)
    lut: list[int] = []
    for g in gains:
        k = 255.0 * g * brightness
        lut.extend(min(255, max(0, int(round(k * (i / 255.0) ** gamma)))) for i in range(256))
    img = img.point(lut)
    sigma, seed = grain
    if sigma > 0:
        noise = np.random.default_rng(seed).standard_normal((img.height, img.width),
                                                            dtype=np.float32)
        n16 = np.rint(noise * np.float32(sigma)).astype(np.int16)
        arr = np.asarray(img, dtype=np.int16) + n16[..., None]
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return img


def _jpeg(img: Image.Image, exif: bytes | None, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    img.save(buf, "JPEG", quality=quality, subsampling=2, optimize=False, **kw)
    return buf.getvalue()


def strip_app1(data: bytes) -> bytes:
    """Remove every APP1 (EXIF/XMP) segment from JPEG bytes, leaving the rest intact."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out = [data[:2]]
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError(f"bad JPEG marker at {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: copy the rest
            out.append(data[i:])
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(data[i:i + 2])
            i += 2
            continue
        seglen = int.from_bytes(data[i + 2:i + 4], "big")
        if marker != 0xE1:
            out.append(data[i:i + 2 + seglen])
        i += 2 + seglen
    return b"".join(out)


def _heic(img: Image.Image, exif: bytes | None) -> bytes:
    try:
        import pillow_heif  # noqa: PLC0415
    except ImportError as e:
        raise RuntimeError("the 'heic' kind needs pillow-heif: pip install pillow-heif") from e
    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    # enc_params is mutated by pillow-heif: always pass a fresh dict
    img.save(buf, "HEIF", quality=HEIC_QUALITY, chroma=420,
             enc_params={"preset": "ultrafast"}, **kw)
    return buf.getvalue()


def _make_group(task: dict) -> list[tuple[str, int]]:
    """Render one original and everything derived from it; returns (name, bytes)."""
    out_dir = Path(task["out_dir"])
    si, box = task["source"], tuple(task["box"] or ())
    gamma, gains = task["tone"]
    make, model = task["camera"]
    when = _dt.datetime.fromisoformat(task["when"])
    size = tuple(task.get("size") or (OUT_W, OUT_H))
    flat = task.get("flat")
    written: list[tuple[str, int]] = []

    def write(name: str, data: bytes) -> None:
        (out_dir / name).write_bytes(data)
        written.append((name, len(data)))

    def render(nbox, grain, brightness=1.0, params=None) -> Image.Image:
        if flat is None:
            return _render(si, nbox, gamma, gains, grain, brightness=brightness, size=size)
        img = hard_cases.render_flat(params or flat, size, lambda i: (_source_image(i), 1.0))
        return img if brightness == 1.0 else img.point(
            lambda v: min(255, round(v * brightness)))

    exif = _exif_bytes(make, model, when, size)
    orig = _jpeg(render(box, tuple(task["grain"])), exif)
    write(task["name"], orig)
    decoded: Image.Image | None = None

    def pixels() -> Image.Image:
        nonlocal decoded
        if decoded is None:
            with Image.open(io.BytesIO(orig)) as im:
                decoded = im.convert("RGB")
        return decoded

    def jpeg_of(img: Image.Image, orientation: int = 1, quality: int = JPEG_QUALITY) -> bytes:
        return _jpeg(img, _exif_bytes(make, model, when, img.size, orientation=orientation),
                     quality=quality)

    for d in task["dups"]:
        write(d["name"], _duplicate(d, orig, exif, pixels, jpeg_of, size))

    for n in task["negs"]:
        if n["kind"] == "flat_other":
            img = render(None, None, params=n["flat"])
        else:
            img = render(tuple(n["box"]) if n["box"] else None, tuple(n["grain"]),
                         brightness=n["brightness"])
        if n["kind"] == "mirrored_burst":
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif n["kind"] == "small_burst":
            img = img.resize(hard_cases.small_size("small_1_5", img.size), Image.LANCZOS)
        nwhen = when + _dt.timedelta(seconds=n["dt"])
        write(n["name"], _jpeg(img, _exif_bytes(make, model, nwhen, img.size)))
    return written


def _duplicate(d: dict, orig: bytes, exif: bytes, pixels, jpeg_of, size) -> bytes:
    """The bytes of one labelled duplicate of ``orig`` (decoded: ``pixels()``)."""
    kind = d["kind"]
    if kind == "byte_copy":
        return orig
    if kind == "exif_stripped":
        return strip_app1(orig)
    if kind == "recompressed":
        return _jpeg(pixels(), exif, quality=d["quality"])
    if kind in ("downscaled_50", "downscaled_1024"):
        width, height = size
        small = (width // 2, height // 2) if kind == "downscaled_50" else (
            (1024, round(1024 * height / width)) if width >= height
            else (round(1024 * width / height), 1024))
        return jpeg_of(pixels().resize(small, Image.LANCZOS))
    if kind.startswith("rotated_"):
        return jpeg_of(pixels().transpose({"rotated_90": Image.Transpose.ROTATE_90,
                                           "rotated_180": Image.Transpose.ROTATE_180,
                                           "rotated_270": Image.Transpose.ROTATE_270}[kind]))
    if kind == "exif_orientation":
        # stored rotated 90 CCW; Orientation 6 = "rotate 90 CW to display"
        return jpeg_of(pixels().transpose(Image.Transpose.ROTATE_90), orientation=6)
    if kind.startswith("orientation_"):
        orientation = int(kind.rsplit("_", 1)[1])
        stored = pixels().transpose(hard_cases.STORE_FOR_ORIENTATION[orientation])
        return jpeg_of(stored, orientation=orientation)
    if kind in hard_cases.MIRROR_TRANSPOSE:
        return jpeg_of(pixels().transpose(hard_cases.MIRROR_TRANSPOSE[kind]))
    if kind in hard_cases.SMALL_KINDS:
        return jpeg_of(pixels().resize(hard_cases.small_size(kind, size), Image.LANCZOS))
    if kind == "png":
        buf = io.BytesIO()
        pixels().save(buf, "PNG", compress_level=1)
        return buf.getvalue()
    if kind == "heic":
        return _heic(pixels(), exif)
    raise ValueError(kind)


# ----------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------

_EXT = {"png": ".png", "heic": ".heic"}


def _neg_box(kind: str, wdw: Window, full: tuple[int, int], rng: random.Random):
    x0, y0, x1, y1 = wdw.box
    w, h = wdw.w, wdw.h
    W, H = full
    if kind == "burst_zoom":
        c = rng.uniform(0.03, 0.06)
        mx, my = w * c / 2, h * c / 2
        return (x0 + mx, y0 + my, x1 - mx, y1 - my), 1.0
    if kind == "burst_brightness":
        return wdw.box, rng.choice((0.95, 1.05))
    # burst_shift: along an axis and direction that stays inside the source
    frac = rng.uniform(0.02, 0.05)
    moves = []
    dx, dy = frac * w, frac * h
    if x0 - dx >= 0:
        moves.append((-dx, 0.0))
    if x1 + dx <= W:
        moves.append((dx, 0.0))
    if y0 - dy >= 0:
        moves.append((0.0, -dy))
    if y1 + dy <= H:
        moves.append((0.0, dy))
    if not moves:
        return None, 1.0
    mx, my = rng.choice(moves)
    return (x0 + mx, y0 + my, x1 + mx, y1 + my), 1.0


def make_corpus(out_dir: str | os.PathLike, originals: int, seed: int,
                dup_fraction: float = 0.3, negatives_fraction: float = 0.2,
                all_kinds: bool = False, workers: int | None = None,
                sources: Sequence[PhotoSource] | None = None, hard: bool = False,
                odd_originals: int | None = None,
                flat_originals: int | None = None) -> Labels:
    """Write a labelled library into ``out_dir`` (created; must be empty) and return
    its labels (also written to ``out_dir/labels.json``).

    ``round(dup_fraction * originals)`` duplicates and ``round(negatives_fraction *
    originals)`` hard negatives are added; kinds are cycled in a seeded order so that
    every kind appears as soon as there are at least as many files as kinds
    (11 duplicate kinds, 3 negative kinds; 40 originals at the defaults cover all).
    ``all_kinds=True`` raises the counts to at least one file of every kind.

    ``hard=True`` adds the hard cases of bench/corpus_hard.py: every photo original may
    also get the orientation, mirror and small-copy kinds and the mirrored and small
    burst negatives; ``odd_originals`` odd-size originals and ``flat_originals``
    low-detail ones (default: 10 % of ``originals`` each, at least 24) each get about one
    duplicate (every kind cycled) and one negative in two. Without ``hard`` the output is
    the same as before these kinds existed."""
    if originals < 1:
        raise ValueError("originals must be >= 1")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not an empty directory")
    sources = list(sources) if sources is not None else source_photos()
    rng = random.Random(f"frame-ingest-corpus:{seed}")
    n_odd = n_flat = 0
    if hard:
        default = max(len(ALL_DUP_KINDS), round(0.1 * originals))
        n_odd = default if odd_originals is None else odd_originals
        n_flat = default if flat_originals is None else flat_originals

    # reduced decodes of every source for planning
    plans = [_PlanImage.of(s) for s in sources]
    plan = plan_windows(sources, originals + n_odd, rng, plans)
    windows = plan.windows

    n_dup = round(dup_fraction * originals)
    n_neg = round(negatives_fraction * originals)
    photo_dups = ALL_DUP_KINDS if hard else DUP_KINDS
    photo_negs = NEG_KINDS + HARD_NEG_KINDS[:2] if hard else NEG_KINDS
    if all_kinds:
        n_dup, n_neg = max(n_dup, len(photo_dups)), max(n_neg, len(photo_negs))

    def cycled(kinds: Sequence[str], n: int) -> list[str]:
        ks: list[str] = []
        while len(ks) < n:
            block = list(kinds)
            rng.shuffle(block)
            ks.extend(block)
        return ks[:n]

    def pick_originals(n: int, first: int = 0, count: int = originals) -> list[int]:
        picks: list[int] = []
        while len(picks) < n:
            block = list(range(first, first + count))
            rng.shuffle(block)
            picks.extend(block)
        return picks[:n]

    dup_specs = list(zip(cycled(photo_dups, n_dup), pick_originals(n_dup)))
    neg_specs = _place_negatives(cycled(photo_negs, n_neg),
                                 pick_originals(max(n_neg, originals) * 2), windows, plans,
                                 plan, rng)
    if n_odd:
        odd_kinds = tuple(k for k in ALL_DUP_KINDS if k != "downscaled_1024")
        count = max(len(odd_kinds), n_odd)
        dup_specs += zip(cycled(odd_kinds, count), pick_originals(count, originals, n_odd))
        count = max(len(photo_negs), round(0.5 * n_odd))
        neg_specs += _place_negatives(cycled(photo_negs, count),
                                      pick_originals(count * 4, originals, n_odd), windows,
                                      plans, plan, rng)
    flats = _plan_flats(n_flat, sources, plans, rng) if n_flat else []
    first_flat = originals + n_odd
    if n_flat:
        count = max(len(ALL_DUP_KINDS), n_flat)
        dup_specs += zip(cycled(ALL_DUP_KINDS, count), pick_originals(count, first_flat, n_flat))
        count = max(2, round(0.5 * n_flat))
        for kind, oi in zip(cycled(("flat_other", "burst_brightness"), count),
                            pick_originals(count, first_flat, n_flat)):
            neg_specs.append((oi, kind, None, rng.choice((0.95, 1.05))
                              if kind == "burst_brightness" else 1.0))

    out.mkdir(parents=True, exist_ok=True)

    # names
    total = originals + n_odd + n_flat + len(dup_specs) + len(neg_specs)
    space = max(9999, 3 * total)
    width = max(4, len(str(space)))
    numbers = rng.sample(range(1, space + 1), total)
    names = iter(numbers)

    def new_name(kind: str) -> str:
        return f"IMG_{next(names):0{width}d}{_EXT.get(kind, '.jpg')}"

    tasks: list[dict] = []
    labels: list[FileLabel] = []
    provenance: dict[str, dict] = {}
    base = _dt.datetime(2012, 1, 1)
    for oi in range(originals + n_odd + n_flat):
        name = new_name("original")
        when = base + _dt.timedelta(seconds=rng.randrange(0, 13 * 365 * 86400))
        cls = "photo" if oi < originals else "odd" if oi < first_flat else "flat"
        task = {"out_dir": str(out), "name": name, "source": -1, "box": None,
                "tone": _tone(rng), "camera": rng.choice(CAMERAS),
                "grain": [rng.uniform(1.2, 2.2), rng.getrandbits(63)],
                "when": when.isoformat(), "dups": [], "negs": [], "class": cls}
        if cls == "flat":
            params, _sibling_draws = flats[oi - first_flat]
            task.update(flat=params, size=list(hard_cases.flat_size(params["style"])))
            provenance[name] = {"flat": params["style"], "source": sources[
                params["source"]].id if "source" in params else None}
        else:
            wdw = windows[oi]
            task.update(source=wdw.source, box=list(wdw.box))
            if cls == "odd":
                task["size"] = list(hard_cases.ODD_SIZES[(oi - originals) %
                                                         len(hard_cases.ODD_SIZES)])
            provenance[name] = {"source": sources[wdw.source].id,
                                "box": [round(v, 2) for v in wdw.box]}
        tasks.append(task)
        labels.append(FileLabel(name, "original", None, cls))
    for kind, oi in dup_specs:
        name = new_name(kind)
        spec = {"kind": kind, "name": name}
        if kind == "recompressed":
            spec["quality"] = rng.randint(60, 90)
        tasks[oi]["dups"].append(spec)
        labels.append(FileLabel(name, kind, tasks[oi]["name"], tasks[oi]["class"]))
    sibling_used: dict[int, int] = {}
    for oi, kind, box, bright in neg_specs:
        name = new_name(kind)
        neg = {"kind": kind, "name": name, "box": list(box) if box else None,
               "brightness": bright, "dt": rng.randint(1, 3),
               # same grain strength, new noise: a new exposure
               "grain": [tasks[oi]["grain"][0], rng.getrandbits(63)]}
        if kind == "flat_other":
            siblings = flats[oi - first_flat][1]
            neg["flat"] = siblings[sibling_used.get(oi, 0) % len(siblings)]
            sibling_used[oi] = sibling_used.get(oi, 0) + 1
        tasks[oi]["negs"].append(neg)
        labels.append(FileLabel(name, kind, tasks[oi]["name"], tasks[oi]["class"]))

    # render: group by source so each worker decodes a source photo once
    order = sorted(range(len(tasks)), key=lambda i: (tasks[i]["source"], i))
    work = [tasks[i] for i in order]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        _worker_init(sources)
        for t in work:
            _make_group(t)
    else:
        import multiprocessing as mp  # noqa: PLC0415

        chunk = max(1, min(8, len(work) // (workers * 4)))
        with mp.get_context("fork" if sys.platform != "win32" else "spawn").Pool(
                workers, initializer=_worker_init, initargs=(list(sources),)) as pool_:
            for _ in pool_.imap_unordered(_make_group, work, chunksize=chunk):
                pass

    labels.sort(key=lambda f: f.name)
    result = Labels(seed, labels, params={
        "originals": originals, "dup_fraction": dup_fraction,
        "negatives_fraction": negatives_fraction, "all_kinds": all_kinds,
        "size": [OUT_W, OUT_H], "jpeg_quality": JPEG_QUALITY, "heic_quality": HEIC_QUALITY,
        "sources": sorted({sources[w.source].id for w in windows}),
        "hard": hard, "odd_originals": n_odd, "flat_originals": n_flat,
    }, provenance=dict(sorted(provenance.items())))
    result.save(out / "labels.json")
    return result


def _place_negatives(kinds, pool, windows, plans, plan, rng) -> list[tuple]:
    """(original index, kind, box, brightness) for each burst-like negative: a feasible
    geometry far from every OTHER original."""
    specs: list[tuple[int, str, tuple, float]] = []
    pi = 0
    for kind in kinds:
        # mirrored and small burst neighbours: a shifted or zoomed neighbour, then changed
        geometry = rng.choice(("burst_shift", "burst_zoom")) if kind in HARD_NEG_KINDS \
            else kind
        for _attempt in range(len(pool)):
            oi = pool[pi % len(pool)]
            pi += 1
            wdw = windows[oi]
            p = plans[wdw.source]
            ok = False
            for _try in range(10):
                box, bright = _neg_box(geometry, wdw, p.full, rng)
                if box is None:
                    break
                if plan.far_from_all(_descriptor(p, box), except_index=oi,
                                     min_hash=MIN_NEG_HASH_DIST, min_thumb=MIN_NEG_THUMB_DIST,
                                     max_ncc=MAX_NEG_NCC):
                    ok = True
                    break
            if ok:
                specs.append((oi, kind, box, bright))
                break
        else:
            raise ValueError(f"could not place a {kind} negative")
    return specs


def _plan_flats(count: int, sources, plans, rng) -> list[tuple[dict, list[dict]]]:
    """``count`` low-detail originals (parameters), mutually distinct, each with two
    sibling pictures (``flat_other`` negatives) that imitate it and no other original."""
    photo_sources = [i for i, s in enumerate(sources) if s.path is not None] or \
        list(range(len(sources)))

    def fog_box():
        si = rng.choice(photo_sources)
        full_w, full_h = plans[si].full
        w = rng.uniform(0.5, 0.9) * min(full_w, full_h * ASPECT)
        h = w / ASPECT
        x, y = rng.uniform(0, full_w - w), rng.uniform(0, full_h - h)
        return si, (x, y, x + w, y + h)

    def preview(params) -> Image.Image:
        width, height = hard_cases.flat_size(params["style"])
        small = (96, round(96 * height / width))
        return hard_cases.render_flat(params, small,
                                      lambda i: (plans[i].rgb, plans[i].scale[0]))

    chosen: list[tuple[dict, list[dict]]] = []
    looks: list[tuple[np.ndarray, np.ndarray]] = []   # (colour 16x10, grey 32x32)

    def look(params) -> tuple[np.ndarray, np.ndarray]:
        image = preview(params)
        return hard_cases.thumb_rgb(image), hard_cases.thumb_grey(image)

    def apart(candidate, others) -> bool:
        return all(hard_cases.flat_distance(candidate, other) >= hard_cases.MIN_FLAT_DIST
                   for other in others)

    for number in range(count):
        style = hard_cases.FLAT_STYLES[number % len(hard_cases.FLAT_STYLES)]
        for _attempt in range(100):
            params = hard_cases.flat_params(style, rng, fog_box())
            mine = look(params)
            if apart(mine, looks):
                break
        else:
            raise ValueError(f"could not draw {count} distinct low-detail pictures")
        siblings = []
        for _attempt in range(60):
            sibling = hard_cases.sibling_params(params, rng, fog_box())
            theirs = look(sibling)
            if (hard_cases.turned_rms(mine[1], theirs[1]) >= hard_cases.MIN_SIBLING_RMS
                    and apart(theirs, looks)):
                siblings.append(sibling)
                if len(siblings) == 2:
                    break
        if not siblings:
            raise ValueError(f"could not draw a sibling of a {style} picture")
        chosen.append((params, siblings))
        looks.append(mine)
    return chosen


# ----------------------------------------------------------------------------------
# Verification (cheap sanity checks of a written corpus)
# ----------------------------------------------------------------------------------

def verify_corpus(out_dir: str | os.PathLike) -> list[str]:
    """Check a written corpus against its labels. Returns a list of problems."""
    out = Path(out_dir)
    labels = Labels.load(out / "labels.json")
    try:
        import pillow_heif  # noqa: PLC0415

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    problems: list[str] = []
    names = {f.name for f in labels.files}
    on_disk = {p.name for p in out.iterdir() if p.name != "labels.json"}
    if names != on_disk:
        problems.append(f"files differ from labels: {sorted(names ^ on_disk)[:5]}")

    def rgb(name: str) -> np.ndarray:
        with Image.open(out / name) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.int16)

    for f in labels.files:
        p = out / f.name
        if f.kind == "original":
            with Image.open(p) as im:
                if (im.size != (OUT_W, OUT_H) and f.cls == "photo") or im.format != "JPEG":
                    problems.append(f"{f.name}: original is {im.format} {im.size}")
                if not im.getexif().get(0x010F):
                    problems.append(f"{f.name}: original has no EXIF Make")
            continue
        ob = (out / f.of).read_bytes()
        if f.kind == "byte_copy" and p.read_bytes() != ob:
            problems.append(f"{f.name}: byte_copy differs")
        elif f.kind == "exif_stripped":
            with Image.open(p) as im:
                if im.getexif():
                    problems.append(f"{f.name}: still has EXIF")
            if not np.array_equal(rgb(f.name), rgb(f.of)):
                problems.append(f"{f.name}: exif_stripped pixels differ")
        elif f.kind in ("exif_orientation", "png", "heic", "recompressed") or \
                f.kind.startswith("orientation_"):
            a, b = rgb(f.name), rgb(f.of)
            if a.shape != b.shape:
                problems.append(f"{f.name}: {f.kind} displays as {a.shape[1::-1]}")
            elif np.abs(a - b).mean() > 4:
                problems.append(f"{f.name}: {f.kind} pixels far from original")
            if f.kind == "png" and not np.array_equal(a, b):
                problems.append(f"{f.name}: png is not lossless")
    return problems


# ----------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------

def _main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--originals", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dup-fraction", type=float, default=0.3)
    ap.add_argument("--negatives-fraction", type=float, default=0.2)
    ap.add_argument("--all-kinds", action="store_true",
                    help="at least one file of every duplicate and negative kind")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--hard", action="store_true",
                    help="add the hard cases: odd sizes, orientations 2-8, mirrors, small "
                         "copies, low-detail originals, and their hard negatives")
    ap.add_argument("--odd-originals", type=int, default=None)
    ap.add_argument("--flat-originals", type=int, default=None)
    ap.add_argument("--verify", action="store_true", help="check the result afterwards")
    a = ap.parse_args(list(argv) if argv is not None else None)
    t0 = time.perf_counter()
    try:
        labels = make_corpus(a.out_dir, a.originals, a.seed, a.dup_fraction,
                             a.negatives_fraction, a.all_kinds, a.workers, hard=a.hard,
                             odd_originals=a.odd_originals,
                             flat_originals=a.flat_originals)
    except (RuntimeError, ValueError, FileExistsError) as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for f in labels.files:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    size = sum((Path(a.out_dir) / f.name).stat().st_size for f in labels.files)
    print(f"{len(labels.files)} files ({counts.get('original', 0)} originals, "
          f"{sum(v for k, v in counts.items() if k in ALL_DUP_KINDS)} duplicates, "
          f"{sum(v for k, v in counts.items() if k in ALL_NEG_KINDS)} negatives), "
          f"{size / 1e6:.1f} MB in {dt:.1f} s -> {a.out_dir}")
    if a.verify:
        problems = verify_corpus(a.out_dir)
        for p in problems:
            print("verify:", p, file=sys.stderr)
        if problems:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
