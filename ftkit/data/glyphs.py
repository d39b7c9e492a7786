"""Procedurally rendered characters: an offline image dataset with knobs for the domain.

Each image is one character drawn with one of the fonts that ship inside matplotlib
(DejaVu, STIX, Computer Modern), white ink on black like sklearn's handwritten digits.
Knobs move the domain: rotation, stroke width, blur, noise, background, and ``lowres``,
which degrades a glyph the way the UCI/sklearn digits were made (32x32 bitmap, 4x4
blocks counted into 17 grey levels, 8x8), so a model pre-trained on rendered glyphs
can be fine-tuned and tested on real handwriting (sim-to-real transfer).

Rendering uses PIL's FreeType bindings, a few thousand glyphs per second, and is
deterministic for a seed.

Example:
    >>> from ftkit.data.glyphs import render_glyphs
    >>> images, labels = render_glyphs("0123456789", per_class=100, rotation=15, seed=0)
    >>> images.shape, images.dtype, labels[:3]
    (torch.Size([1000, 32, 32]), torch.uint8, tensor([0, 0, 0]))
"""
from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..core.util import suggest
from .transforms import resize

# Fonts that map ASCII codes to symbols (TeX math extension and symbol fonts), to
# "missing glyph" boxes (LastResort), or to nothing: they would draw the wrong shape.
_SKIP = ("cmex10", "cmsy10", "LastResort*", "STIXSiz*", "STIXNonUni*", "*Display")
# The Computer Modern fonts use TeX's own encoding: letters and digits sit at their ASCII
# codes, most punctuation does not (cmr10 draws '<' as an inverted exclamation mark).
_TEX_SAFE = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_RENDER = 32  # glyphs are drawn at least this large, then resized: small fonts hint badly
LEVELS = 16  # sklearn's digits count 4x4 = 16 pixels per block: grey levels 0..16


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=None)
def _ft2font(path: str) -> object:
    from matplotlib.ft2font import FT2Font

    return FT2Font(path)


def _has_chars(path: Path, chars: Sequence[str]) -> bool:
    if path.stem.startswith("cm") and not set("".join(chars)) <= _TEX_SAFE:
        return False
    font = _ft2font(str(path))
    return all(font.get_char_index(ord(c)) != 0 for c in "".join(chars))


def font_names(chars: str | Sequence[str] = "0123456789") -> list[str]:
    """The bundled fonts (file names without ``.ttf``) that can draw every character in ``chars``.

    Example:
        >>> font_names("0123456789")[:3]
        ['DejaVuSans-Bold', 'DejaVuSans-BoldOblique', 'DejaVuSans-Oblique']
    """
    return [p.stem for p in sorted(_font_dir().glob("*.ttf"))
            if not any(fnmatch.fnmatch(p.stem, s) for s in _SKIP) and _has_chars(p, chars)]


def _font_paths(fonts: Sequence[str] | None, chars: Sequence[str]) -> list[str]:
    usable = font_names(chars)
    if fonts is None:
        if not usable:
            raise ValueError(f"None of matplotlib's bundled fonts can draw all of {''.join(chars)!r}. "
                             "Pass fonts=[path to a .ttf file that has these characters].")
        return [str(_font_dir() / f"{name}.ttf") for name in usable]
    if isinstance(fonts, str):
        fonts = [fonts]
    paths: list[str] = []
    for pattern in fonts:
        if Path(pattern).suffix.lower() in (".ttf", ".otf") and Path(pattern).is_file():
            paths.append(str(pattern))  # the user's own font file
            continue
        matched = [n for n in usable if fnmatch.fnmatch(n, pattern)]
        if not matched:
            raise ValueError(f"No usable font matches {pattern!r}.{suggest(pattern, usable)} Fonts that can draw "
                             f"{''.join(chars)!r}: {', '.join(usable)}. Patterns like 'DejaVuSerif*' work, "
                             "and so does the path of a .ttf file.")
        paths += [str(_font_dir() / f"{n}.ttf") for n in matched if str(_font_dir() / f"{n}.ttf") not in paths]
    return paths


@lru_cache(maxsize=1024)
def _font(path: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px)


def _range(value, name: str, fixed: bool = False) -> tuple[float, float]:
    """A knob given as one number (the range 0..value, or that value if ``fixed``) or as a (low, high) pair."""
    lo, hi = (value, value) if fixed and np.isscalar(value) else (0, value) if np.isscalar(value) else value
    if lo < 0 or hi < lo:
        raise ValueError(f"{name} must be a number >= 0 or a (low, high) pair with 0 <= low <= high, got {value!r}.")
    return float(lo), float(hi)


def _backgrounds(background, n: int, res: int, rng: np.random.Generator) -> np.ndarray:
    """Background level per pixel, shape (n, res, res) or (n, 1, 1), in [0, 1]."""
    if isinstance(background, str):
        if background == "random":
            return rng.uniform(0.0, 0.6, (n, 1, 1))
        if background == "gradient":
            a, b = rng.uniform(0.0, 0.6, (2, n, 1, 1))
            theta = rng.uniform(0, 2 * np.pi, (n, 1, 1))
            yy, xx = np.mgrid[0:res, 0:res] / max(res - 1, 1) - 0.5
            ramp = (np.cos(theta) * xx + np.sin(theta) * yy) / np.sqrt(2) + 0.5  # within 0..1, any direction
            return a + (b - a) * ramp
        raise ValueError(f"background must be a level in [0, 1], a (low, high) pair, 'random' or 'gradient'; "
                         f"got {background!r}.")
    lo, hi = _range(background, "background", fixed=True)  # one number is a fixed level, not a range
    if hi > 1:
        raise ValueError(f"background levels are fractions of white, in [0, 1]; got {background!r}.")
    return rng.uniform(lo, hi, (n, 1, 1)) if hi > lo else np.full((n, 1, 1), lo)


def _lowres(image: np.ndarray, ink: np.ndarray, res: int) -> np.ndarray:
    """Crop to the ink's bounding box (as a square), box-average down to res x res, quantise to 17 levels.

    This follows how the UCI handwritten digits (sklearn's ``load_digits``) were made:
    each digit was normalised to fill its box, and each 8x8 value counts the ink
    pixels in a 4x4 block of a 32x32 bitmap, 0..16.
    """
    rows, cols = np.nonzero(ink > 0.2)
    if len(rows) == 0:
        top, bottom, left, right = 0, image.shape[0], 0, image.shape[1]
    else:
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(bottom - top, right - left)
    # Keep the aspect ratio (a '1' stays thin, as in the real digits): a square around the box.
    cy, cx = (top + bottom) / 2, (left + right) / 2
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    padded = np.pad(image, side, mode="edge")
    crop = padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    small = np.asarray(Image.fromarray(crop.astype(np.float32)).resize((res, res), Image.BOX))
    return np.round(np.clip(small, 0, 1) * LEVELS) / LEVELS


def render_glyphs(
    chars: str | Sequence[str] = "0123456789",
    per_class: int = 100,
    *,
    size: int = 32,
    fonts: Sequence[str] | None = None,
    rotation: float = 10.0,
    scale: tuple[float, float] = (0.6, 0.85),
    shift: float = 0.08,
    stroke: int | tuple[int, int] = (0, 1),
    blur: float | tuple[float, float] = 0.0,
    noise: float | tuple[float, float] = 0.0,
    background: float | tuple[float, float] | str = 0.0,
    lowres: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``per_class`` images of each character: white ink on black, uint8.

    Args:
        chars: the classes; a string gives one class per character, a list of strings one
            class per string (e.g. ``["ab", "ba"]``).
        per_class: images per class.
        size: output images are ``size x size``.
        fonts: names of bundled fonts (see ``font_names()``), glob patterns such as
            ``"DejaVuSerif*"``, or paths of .ttf files. Default: every bundled font that has
            all the characters. Drawn uniformly at random per image.
        rotation: maximum rotation in degrees (uniform in [-rotation, rotation]).
        scale: range of glyph heights as a fraction of the image.
        shift: maximum shift of the glyph's centre, as a fraction of the image.
        stroke: extra stroke width in pixels at 32x32 (int: fixed; (low, high): uniform
            integers) -- thicker pens.
        blur: maximum Gaussian blur radius in pixels at 32x32 (or a (low, high) range).
        noise: maximum standard deviation of Gaussian pixel noise, as a fraction of white.
        background: grey level of the background in [0, 1], a (low, high) range, ``"random"``
            (a level per image) or ``"gradient"`` (a random linear ramp per image).
        lowres: e.g. 8 for the "digits-like" domain: crop to the ink, average down to 8x8,
            quantise to 17 grey levels as sklearn's digits are, then resize back to ``size``.
        seed: same seed, same images.

    Returns:
        ``(images, labels)``: a uint8 tensor ``N x size x size`` and a long tensor of class
        indices into ``chars``, class by class.

    Example:
        >>> x, y = render_glyphs("AB", per_class=3, size=16, rotation=0, seed=1)
        >>> x.shape, y.tolist()
        (torch.Size([6, 16, 16]), [0, 0, 0, 1, 1, 1])
    """
    classes = list(chars)
    if not classes or any(not isinstance(c, str) or not c for c in classes):
        raise ValueError(f"chars must be a non-empty string, or a list of non-empty strings; got {chars!r}.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"chars has repeated classes: {chars!r}. Each character (or string) is one class.")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a whole number >= 1, got {per_class!r}.")
    if not isinstance(size, int) or size < 4:
        raise ValueError(f"size must be a whole number of pixels >= 4, got {size!r}.")
    if lowres is not None and not (2 <= lowres <= size):
        raise ValueError(f"lowres must be between 2 and size ({size}), e.g. 8 like sklearn's digits; got {lowres!r}.")
    lo_scale, hi_scale = _range(scale, "scale")
    if hi_scale > 1:
        raise ValueError(f"scale is the glyph height as a fraction of the image, at most 1; got {scale!r}.")
    if rotation < 0 or shift < 0:
        raise ValueError(f"rotation (degrees) and shift (fraction of the image) are maximums, >= 0; "
                         f"got rotation={rotation!r}, shift={shift!r}.")
    paths = _font_paths(fonts, classes)
    res = max(size, _RENDER)
    px_per_unit = res / 32  # stroke and blur are given in pixels at 32x32
    n = len(classes) * per_class
    labels = np.repeat(np.arange(len(classes)), per_class)

    # Draw every random number up front, in a fixed order: the same seed gives the same images.
    rng = np.random.default_rng(seed)
    font_ix = rng.integers(len(paths), size=n)
    heights = rng.uniform(lo_scale, hi_scale, n) * res
    shifts = rng.uniform(-shift, shift, (n, 2)) * res
    angles = rng.uniform(-rotation, rotation, n)
    s_lo, s_hi = _range(stroke, "stroke", fixed=True)
    strokes = rng.integers(int(s_lo), int(s_hi) + 1, n)
    blurs = rng.uniform(*_range(blur, "blur"), n) * px_per_unit
    noises = rng.uniform(*_range(noise, "noise"), n)
    backgrounds = _backgrounds(background, n, res, rng)

    ink = np.empty((n, res, res), np.float32)
    for i in range(n):
        text, path, width = classes[labels[i]], paths[font_ix[i]], int(round(strokes[i] * px_per_unit))
        px = max(4, int(round(heights[i] / 0.72)))  # digits and capitals are ~0.72 em tall
        left, top, right, bottom = _font(path, px).getbbox(text, stroke_width=width)
        fit = min(1.0, (res - 2) / max(right - left, bottom - top, 1))  # wide glyphs ('W', 'mm') must fit
        if fit < 1.0:
            px = max(4, int(px * fit))
            left, top, right, bottom = _font(path, px).getbbox(text, stroke_width=width)
        # Shift the centre, but keep the whole glyph inside the image.
        half_w, half_h = (right - left) / 2 + 1, (bottom - top) / 2 + 1
        cx = float(np.clip(res / 2 + shifts[i, 0], half_w, max(half_w, res - half_w)))
        cy = float(np.clip(res / 2 + shifts[i, 1], half_h, max(half_h, res - half_h)))
        image = Image.new("L", (res, res), 0)
        ImageDraw.Draw(image).text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, fill=255,
                                   font=_font(path, px), stroke_width=width, stroke_fill=255)
        if angles[i] != 0:
            image = image.rotate(float(angles[i]), resample=Image.BILINEAR, center=(cx, cy))
        if blurs[i] > 0.05:
            image = image.filter(ImageFilter.GaussianBlur(float(blurs[i])))
        ink[i] = np.asarray(image, dtype=np.float32) / 255

    images = backgrounds * (1 - ink) + ink  # white ink over the background
    if noises.any():
        images = images + rng.standard_normal(images.shape) * noises[:, None, None]
    images = np.clip(images, 0, 1).astype(np.float32)
    if lowres is not None:
        images = np.stack([_lowres(images[i], ink[i], lowres) for i in range(n)]).astype(np.float32)
    # The same bilinear resampling the model-card transform uses on the real 8x8 digits.
    out = resize(torch.from_numpy(images), (size, size))
    return (out * 255).round().clamp(0, 255).to(torch.uint8), torch.from_numpy(labels).long()
