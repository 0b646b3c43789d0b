"""The hard cases of bench/corpus.py (issue 12): low-detail originals, odd sizes, EXIF
orientations 1-8, mirrors, small copies, and the hard negatives of each.

Three classes of original (``labels.json`` records each file's ``class``):

* ``photo``: the 1920x1200 windows of real photographs (bench/corpus.py);
* ``odd``: windows of the same real photographs rendered at sizes that are not multiples
  of 8 (``ODD_SIZES``: 500x333 as in the issue, 1001x667, portrait ones ...), so a reduced
  (draft) decode has a partial last block row and column;
* ``flat``: low-detail pictures (``FLAT_STYLES``): a clear sky, a sunset, fog, a white wall,
  a scanned document page. Sky, sunset, wall and page are synthesised from drawn
  parameters (smooth gradients, soft clouds, a lighting fall-off, greeked text lines set in
  a real font); fog is a real photograph window washed out towards light grey and blurred.
  All get a light grain (sigma 0.5-0.9 levels) so their JPEGs are 60-250 kB, like the
  84 kB sky of the issue.

Two flat originals always differ: ``flat_distance`` (the larger of the mean absolute
difference of their 16x10 colour thumbnails and the RMS difference of their 32x32 grey
ones) is >= ``MIN_FLAT_DIST`` levels, and so is each sibling's from every other original; a ``flat_other`` negative is the same style and palette with another
structure (clouds, sun position, light spot, text), at least ``MIN_SIBLING_RMS`` levels RMS
from its original on a 32x32 grey thumbnail under each of the eight dihedral turns (a
mirrored sky is a mirrored copy, not another sky): another sky, another page of a letter.
Every function here is deterministic for its parameters; the parameters are drawn in the
parent process (bench/corpus.py).
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Duplicates: each is the same picture (it displays as the original, or as one of the 8
# dihedral transforms of it, or smaller).
ORIENTATION_KINDS = tuple(f"orientation_{n}" for n in range(2, 9))
MIRROR_KINDS = ("mirrored_h", "mirrored_v", "transposed", "transversed")
SMALL_KINDS = ("small_1_5", "small_1_10", "small_64")
HARD_DUP_KINDS = ORIENTATION_KINDS + MIRROR_KINDS + SMALL_KINDS
# Negatives: must stay apart from the original they imitate.
HARD_NEG_KINDS = (
    "mirrored_burst",   # a burst neighbour (shift 2-5 % or zoom 3-6 %), mirrored left-right
    "small_burst",      # a burst neighbour, downscaled to 1/5 of the side
    "flat_other",       # another low-detail picture of the same style and palette
)
CLASSES = ("photo", "odd", "flat")
ODD_SIZES = ((500, 333), (1001, 667), (333, 500), (641, 427), (1023, 767), (767, 1023),
             (1279, 853), (997, 1331))
FLAT_STYLES = ("sky", "sunset", "fog", "wall", "page")
PAGE_SIZE = (1240, 1754)            # A4 at 150 dpi, portrait
FLAT_SIZE = (1920, 1200)
MIN_FLAT_DIST = 6.0                 # flat_distance between two flat originals (levels)
MIN_SIBLING_RMS = 4.0               # 32x32 grey thumbnails, RMS difference (levels)

# The pixels to store so that a viewer applying EXIF Orientation N shows the original
# (Pillow's exif_transpose applies the inverse of each of these; all are involutions
# except 6 and 8, which swap).
STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
MIRROR_TRANSPOSE = {
    "mirrored_h": Image.Transpose.FLIP_LEFT_RIGHT, "mirrored_v": Image.Transpose.FLIP_TOP_BOTTOM,
    "transposed": Image.Transpose.TRANSPOSE, "transversed": Image.Transpose.TRANSVERSE,
}


def small_size(kind: str, size: tuple[int, int]) -> tuple[int, int]:
    """The size of a small copy: 1/5 or 1/10 of the side, or 64 px on the short side."""
    width, height = size
    if kind == "small_64":
        scale = 64 / min(width, height)
    else:
        scale = 1 / (5 if kind == "small_1_5" else 10)
    return max(1, round(width * scale)), max(1, round(height * scale))


def aspect_box(box, size: tuple[int, int]):
    """``box`` shrunk about its centre to the aspect ratio of ``size``."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    target = size[0] / size[1]
    if width / height > target:
        new_w, new_h = height * target, height
    else:
        new_w, new_h = width, width / target
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2)


# ----------------------------------------------------------------------------------
# Low-detail pictures: parameters (parent) and rendering (any resolution)
# ----------------------------------------------------------------------------------

_SKY_PALETTES = (((70, 120, 200), (170, 205, 235)), ((40, 90, 170), (150, 190, 230)),
                 ((95, 140, 200), (210, 220, 230)), ((120, 150, 185), (200, 205, 210)))
_SUNSET_PALETTES = (((40, 30, 90), (250, 150, 60)), ((60, 50, 110), (240, 110, 70)),
                    ((30, 50, 100), (250, 190, 110)), ((80, 40, 80), (245, 120, 90)))
_WALL_TINTS = ((238, 236, 230), (232, 234, 236), (242, 238, 228), (228, 226, 222))
_PAPER = ((246, 245, 240), (240, 240, 236), (250, 248, 242))


def flat_params(style: str, rng: random.Random, fog_box=None) -> dict:
    """The drawn parameters of one low-detail picture (``fog_box``: (source, box))."""
    params = {"style": style, "seed": rng.getrandbits(31), "grain": rng.uniform(0.5, 0.9),
              "jitter": [rng.uniform(-12, 12) for _ in range(3)]}
    if style == "sky":
        params.update(palette=rng.randrange(len(_SKY_PALETTES)), tilt=rng.uniform(-0.3, 0.3),
                      clouds=rng.uniform(2.0, 12.0), cloud_scale=rng.choice((4, 6, 9)))
    elif style == "sunset":
        params.update(palette=rng.randrange(len(_SUNSET_PALETTES)),
                      sun=[rng.uniform(0.15, 0.85), rng.uniform(0.45, 0.8)],
                      glow=rng.uniform(0.12, 0.3), ground=rng.uniform(0.78, 0.92))
    elif style == "wall":
        params.update(tint=rng.randrange(len(_WALL_TINTS)),
                      light=[rng.uniform(-0.2, 1.2), rng.uniform(-0.2, 1.2)],
                      falloff=rng.uniform(14.0, 34.0), reach=rng.uniform(0.6, 1.4))
    elif style == "page":
        params.update(paper=rng.randrange(len(_PAPER)), margin=rng.uniform(0.08, 0.14),
                      spacing=rng.uniform(0.022, 0.03), heading=rng.random() < 0.5,
                      ink=rng.randint(30, 70))
    elif style == "fog":
        source, box = fog_box
        params.update(source=source, box=list(box), haze=rng.uniform(0.78, 0.9),
                      tone=rng.randint(205, 230), blur=rng.uniform(0.006, 0.012))
    return params


def sibling_params(params: dict, rng: random.Random, fog_box=None) -> dict:
    """Another picture of the same style and palette: new structure (``flat_other``).

    New draws, not mirrored ones: a sibling whose light spot or sun sits where the
    original's would be after a flip or a half turn IS a turned copy of it (the matcher
    rightly pairs the eight dihedral turns); the caller also rejects any sibling within
    ``MIN_SIBLING_RMS`` of the original under every turn."""
    other = dict(params, seed=rng.getrandbits(31))
    style = params["style"]
    if style == "sky":
        other.update(tilt=rng.uniform(-0.3, 0.3), clouds=rng.uniform(6.0, 14.0),
                     cloud_scale=rng.choice((4, 6, 9)))
    elif style == "sunset":
        other.update(sun=[rng.uniform(0.15, 0.85), rng.uniform(0.45, 0.8)],
                     glow=rng.uniform(0.12, 0.3))
    elif style == "wall":
        other.update(light=[rng.uniform(-0.2, 1.2), rng.uniform(-0.2, 1.2)],
                     falloff=rng.uniform(14.0, 34.0))
    elif style == "page":
        other.update(heading=rng.random() < 0.5, spacing=rng.uniform(0.022, 0.03))
    elif style == "fog":
        source, box = fog_box
        other.update(source=source, box=list(box))
    return other


def turned_greys(grey: np.ndarray) -> list[np.ndarray]:
    """A 32x32 grey look (flattened) in its eight dihedral turns."""
    square = grey.reshape(32, 32)
    turns = [np.rot90(square, quarter) for quarter in range(4)]
    turns += [np.fliplr(turn) for turn in turns]
    return [np.ascontiguousarray(turn).ravel() for turn in turns]


def turned_rms(first: np.ndarray, second: np.ndarray) -> float:
    """The smallest grey RMS difference between ``first`` and any turn of ``second``."""
    return min(grey_rms(first, turn) for turn in turned_greys(second))


def render_flat(params: dict, size: tuple[int, int], source_image=None) -> Image.Image:
    """Render a low-detail picture at ``size`` (the same picture at any size).

    ``source_image(index)``: the full-size real photograph ``index`` (fog only), with
    ``scale`` the factor from its full size to the image given (1 for full size)."""
    style = params["style"]
    width, height = size
    rng = np.random.default_rng(params["seed"])
    if style == "fog":
        image = _fog(params, size, source_image)
    elif style == "page":
        image = _page(params, size, rng)
    else:
        ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        if style == "sky":
            pixels = _sky(params, xs, ys, rng, size)
        elif style == "sunset":
            pixels = _sunset(params, xs, ys, rng, size)
        else:
            pixels = _wall(params, xs, ys, rng, size)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
    return _grain(image, params["grain"], params["seed"])


def _soft_noise(rng, cells: int, size: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid, bicubic-upsampled."""
    width, height = size
    rows = max(2, round(cells * height / width))
    grid = rng.uniform(0, 255, (rows, cells)).astype(np.uint8)
    smooth = Image.fromarray(grid, "L").resize(size, Image.BICUBIC)
    smooth = smooth.filter(ImageFilter.GaussianBlur(max(1.0, width / cells / 3)))
    return (np.asarray(smooth, dtype=np.float32) - 127.5) / 127.5


def _sky(params, xs, ys, rng, size) -> np.ndarray:
    zenith, horizon = (np.array(c, dtype=np.float32) + np.array(params["jitter"], np.float32)
                       for c in _SKY_PALETTES[params["palette"]])
    t = np.clip(ys + params["tilt"] * (xs - 0.5), 0, 1)[..., None]
    base = zenith + (horizon - zenith) * t ** 0.8
    clouds = np.clip(_soft_noise(rng, params["cloud_scale"], size), 0, 1)[..., None]
    return base + params["clouds"] * clouds * (255 - base) / 60


def _sunset(params, xs, ys, rng, size) -> np.ndarray:
    top, glow = (np.array(c, dtype=np.float32) + np.array(params["jitter"], np.float32)
                 for c in _SUNSET_PALETTES[params["palette"]])
    sun_x, sun_y = params["sun"]
    t = np.clip(ys / max(sun_y, 0.3), 0, 1)[..., None] ** 1.5
    base = top + (glow - top) * t
    aspect = size[0] / size[1]
    distance = np.sqrt(((xs - sun_x) * aspect) ** 2 + (ys - sun_y) ** 2)
    halo = np.exp(-(distance / params["glow"]) ** 2)[..., None]
    base = base + (np.array((255, 235, 190), np.float32) - base) * halo
    edge = params["ground"] + 0.025 * _soft_noise(rng, 7, size)[:1, :]
    ground = (ys > edge)[..., None]
    return np.where(ground, base * 0.18, base)


def _wall(params, xs, ys, rng, size) -> np.ndarray:
    tint = np.array(_WALL_TINTS[params["tint"]], dtype=np.float32) + \
        np.array(params["jitter"], np.float32) / 2
    light_x, light_y = params["light"]
    aspect = size[0] / size[1]
    distance = np.sqrt(((xs - light_x) * aspect) ** 2 + (ys - light_y) ** 2)
    shade = params["falloff"] * np.clip(distance / params["reach"], 0, 1.6)[..., None]
    plaster = 1.5 * _soft_noise(rng, max(8, size[0] // 12), size)[..., None]
    return tint - shade + plaster


def _page(params, size, rng) -> Image.Image:
    width, height = size
    page = Image.new("RGB", size, _PAPER[params["paper"]])
    draw = ImageDraw.Draw(page)
    margin = params["margin"] * width
    line = params["spacing"] * height
    font_size = max(1, round(line * 0.62))
    font = ImageFont.load_default(size=font_size)
    heading_font = ImageFont.load_default(size=max(1, round(font_size * 1.6)))
    ink = (params["ink"],) * 3
    words = np.array(list("etaoinshrdlucmfwypvbgkqjxz"))
    y = params["margin"] * height
    if params["heading"]:
        draw.text((margin, y), _words(rng, words, 3), fill=ink, font=heading_font)
        y += 2.5 * line
    while y < height - params["margin"] * height:
        lines = int(rng.integers(3, 11))          # one paragraph
        for number in range(lines):
            if y >= height - params["margin"] * height:
                break
            short = number == lines - 1
            reach = (width - 2 * margin) * (rng.uniform(0.2, 0.8) if short else 1.0)
            draw.text((margin, y), _words(rng, words, 30), fill=ink, font=font)
            if reach < width - 2 * margin:      # the paragraph's last line ends early
                draw.rectangle((margin + reach, y - 1, width, y + line), fill=page.getpixel(
                    (0, 0)))
            draw.rectangle((width - margin, y - 1, width, y + line), fill=page.getpixel((0, 0)))
            y += line
        y += line * float(rng.uniform(0.6, 1.4))
    return page


def _words(rng, letters, count: int) -> str:
    return " ".join("".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(count))


def _fog(params, size, source_image) -> Image.Image:
    photo, scale = source_image(params["source"])
    box = tuple(value * scale for value in params["box"])
    box = aspect_box(box, size)
    grey = photo.resize(size, Image.BILINEAR, box=box, reducing_gap=2.0).convert("L")
    haze, tone = params["haze"], params["tone"]
    pixels = np.asarray(grey, dtype=np.float32) * (1 - haze) + tone * haze
    foggy = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    foggy = foggy.filter(ImageFilter.GaussianBlur(params["blur"] * size[0]))
    return Image.merge("RGB", (foggy.point(lambda v: min(255, v + 2)), foggy,
                               foggy.point(lambda v: max(0, v - 3))))


def _grain(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    noise = np.random.default_rng(seed ^ 0x5EED).standard_normal(
        (image.height, image.width), dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32) + (noise * sigma)[..., None]
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def flat_size(style: str) -> tuple[int, int]:
    return PAGE_SIZE if style == "page" else FLAT_SIZE


def thumb_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((16, 10), Image.BOX), np.float32).ravel()


def thumb_grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.BOX), np.float32).ravel()


def flat_distance(first, second) -> float:
    """(colour 16x10, grey 32x32) looks: the larger of colour MAD and the grey RMS under
    the closest of the eight turns (levels)."""
    return max(float(np.abs(first[0] - second[0]).mean()), turned_rms(first[1], second[1]))


def grey_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(math.sqrt(np.mean((a - b) ** 2)))
