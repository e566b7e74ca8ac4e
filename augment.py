"""augment.py: find where an image model breaks, then synthesize data up to that edge.

Bring any vision model as a Python ``predict`` function and a set of training
images. augment.py sweeps 24 augmentations (brightness, hue, blur, rotation,
crops, noise, ...) over intensities from 0 to 1, measures at which intensity the
model's output changes, caches that in ``analysis.json``, renders an offline
HTML report, synthesizes data sets whose strength is set by one ``realism``
knob, and evaluates models on them.

Public API
----------
ImageAugmenter(my_predict=None, diff_error=None, augmentations=ALL_AUGMENTATIONS,
               label_format=None, *, seed=0, batch_size=None, predict_input="auto",
               failure_threshold=0.5, ...)
    .search_randomization_boundaries(images, labels=None, step_size_percent=0.05,
                                     analytics_cache="analysis.json")
    .render_boundaries(html_dir="analytics", ...)
    .synthesize_more(organic_img_filenames, organic_labels=None, realism=0.5, ...)
    .evaluate(img_filenames, img_labels)
    .set_augmentation_realism(name, realism) / .set_augmentation_weight(name, weight)
    .load_analysis(path)
    (the seed README's spellings searchRandomizationBoundries, renderBoundries and
    synthesizeMore are aliases)
augment_image(image, name, intensity, seed=0) -> (H, W, 3) uint8
load_image(source) -> (H, W, 3) uint8
load_analysis(path) -> Analysis
gradcam_frames(...) / write_gradcam_gif(...)   Grad-CAM over one augmentation sweep
CATALOGUE, ALL_AUGMENTATIONS, COLOR_AUGMENTATIONS, DISTORTION_AUGMENTATIONS,
PIXEL_DROPOUT_AUGMENTATIONS
main(argv=None)                                 the command line (python augment.py -h)

Quickstart
----------
>>> from augment import ImageAugmenter
>>> def predict(images):                      # a list of (H, W, 3) uint8 arrays
...     return [int(img.mean() > 127) for img in images]
>>> augmenter = ImageAugmenter(predict, batch_size=64, seed=0)
>>> analysis = augmenter.search_randomization_boundaries(["a.png", "b.png"])  # doctest: +SKIP
>>> analysis.curves["Brighten"].intensity_at_share(0.5)                        # doctest: +SKIP
0.35
>>> augmenter.render_boundaries("analytics")                                  # doctest: +SKIP
>>> files, labels = augmenter.synthesize_more(["a.png", "b.png"], realism=0.5)  # doctest: +SKIP
>>> augmenter.evaluate(files, labels)["accuracy"]                             # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "ALL_AUGMENTATIONS",
    "CATALOGUE",
    "COLOR_AUGMENTATIONS",
    "DISTORTION_AUGMENTATIONS",
    "PIXEL_DROPOUT_AUGMENTATIONS",
    "Analysis",
    "Augmentation",
    "AugmentationCurve",
    "ImageAugmenter",
    "ImageRecord",
    "augment_image",
    "load_analysis",
    "load_image",
    "main",
]

###############################################################################
# Imports
###############################################################################

import argparse
import dataclasses
import difflib
import functools
import glob
import hashlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

###############################################################################
# Public constants: augmentation names
###############################################################################

COLOR_AUGMENTATIONS = [
    "Brighten", "Contrast", "Darken", "Decontrast", "Desaturate", "Dehue", "Hue",
    "LessBlue", "LessGreen", "LessRed", "MoreBlue", "MoreGreen", "MoreRed", "Saturate",
]
DISTORTION_AUGMENTATIONS = ["ElasticTransform", "GaussianBlur", "MotionBlur", "SafeRotate", "Sharpen"]
PIXEL_DROPOUT_AUGMENTATIONS = [
    "Downscale", "MultiplicitiveNoise", "PixelDropout", "RandomSizedCrop", "Superpixels",
]
ALL_AUGMENTATIONS = COLOR_AUGMENTATIONS + DISTORTION_AUGMENTATIONS + PIXEL_DROPOUT_AUGMENTATIONS

# Bumped whenever an intensity mapping changes: cached analyses made with another
# mapping are then recomputed for that augmentation instead of silently reused.
_CATALOGUE_VERSION = 1
_ANALYSIS_FORMAT = "augment.py analysis"
_ANALYSIS_VERSION = 1

###############################################################################
# The augmentation catalogue
###############################################################################
# Each entry maps an intensity in [0, 1] to one albumentations transform. Intensity 0
# is the identity, 1 the documented extreme, and a larger intensity never changes
# the image less. Geometric sizes are fractions of the image's shorter side so that
# an intensity means the same thing on a 32 px digit and a 1024 px photo.


@dataclass(frozen=True)
class Augmentation:
    """One catalogue entry: how an intensity in [0, 1] becomes an albumentations transform.

    ``family`` groups contradictory augmentations (Brighten and Darken, the blurs and
    Sharpen, ...) that synthesis never combines in one image; ``geometric`` marks the
    ones that move pixels, so labels with positions must move with them.
    """

    name: str
    group: str
    transform: str
    at_full_intensity: str
    family: str
    geometric: bool
    build: Callable[[float, int, int], Any] = field(repr=False, compare=False)

    @property
    def definition(self) -> str:
        """A fingerprint of the mapping, stored with cached results."""
        text = f"{_CATALOGUE_VERSION}|{self.name}|{self.transform}|{self.at_full_intensity}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _albumentations():
    # Imported on first use so that `import augment` stays fast.
    import albumentations

    return albumentations


def _short_side(height: int, width: int) -> int:
    return min(height, width)


def _color_jitter(brightness=1.0, contrast=1.0, saturation=1.0):
    import albumentations as A

    return A.ColorJitter(
        brightness=(brightness, brightness), contrast=(contrast, contrast),
        saturation=(saturation, saturation), hue=(0, 0), p=1,
    )


def _brightness(delta: float):
    import albumentations as A

    return A.RandomBrightnessContrast(brightness_limit=(delta, delta), contrast_limit=(0, 0), p=1)


def _hue(shift_degrees: float):
    import albumentations as A

    # OpenCV stores hue in [0, 180) for uint8 images, so one unit is two degrees.
    units = shift_degrees / 2
    return A.HueSaturationValue(hue_shift_limit=(units, units), sat_shift_limit=(0, 0),
                                val_shift_limit=(0, 0), p=1)


def _rgb_shift(channel: int, delta: float):
    import albumentations as A

    shifts = [(0, 0), (0, 0), (0, 0)]
    shifts[channel] = (delta, delta)
    return A.RGBShift(r_shift_limit=shifts[0], g_shift_limit=shifts[1], b_shift_limit=shifts[2], p=1)


@functools.lru_cache(maxsize=64)
def _elastic_unit_displacement(height: int, width: int, sigma: float) -> float:
    """Mean |displacement| (px) of albumentations' elastic field at alpha=1.

    The smoothed field's amplitude depends on sigma and the image size, so alpha is
    calibrated to make intensity 1 mean the same relative warp at every size.
    """
    from albumentations.augmentations.geometric import functional as fgeometric

    dx, dy = fgeometric.generate_displacement_fields(
        (height, width), 1.0, sigma, same_dxdy=False, kernel_size=(0, 0),
        random_generator=np.random.default_rng(0), noise_distribution="gaussian",
    )
    return float(np.hypot(dx, dy).mean()) or 1e-6


def _elastic(intensity: float, height: int, width: int):
    import albumentations as A

    side = _short_side(height, width)
    sigma = max(1.0, 0.06 * side)
    alpha = intensity * 0.05 * side / _elastic_unit_displacement(height, width, sigma)
    return A.ElasticTransform(alpha=alpha, sigma=sigma, p=1)


def _gaussian_blur(intensity: float, height: int, width: int):
    import albumentations as A

    sigma = intensity * 0.08 * _short_side(height, width)
    return A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1)


def _motion_blur(intensity: float, height: int, width: int):
    import albumentations as A

    kernel = 1 + 2 * round(intensity * 0.15 * _short_side(height, width))
    if kernel < 3:
        return None  # a 1 px kernel is the identity
    return A.MotionBlur(blur_limit=(kernel, kernel), allow_shifted=False, p=1)


def _downscale(intensity: float, height: int, width: int):
    import albumentations as A
    import cv2

    scale = 1.0 - 0.9 * intensity
    if round(_short_side(height, width) * scale) >= _short_side(height, width):
        return None
    # Area down / linear up: nearest-neighbour aliasing made the change jump around
    # between neighbouring scales.
    return A.Downscale(scale_range=(scale, scale), p=1, interpolation_pair={
        "downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR})


def _random_sized_crop(intensity: float, height: int, width: int):
    import albumentations as A

    # Crop windows of one seed are nested as the intensity grows (albumentations places
    # them at the same relative offset), so a sweep zooms steadily into one region.
    crop_height = max(1, round(height * (1.0 - 0.75 * intensity)))
    if crop_height >= height:
        return None
    return A.RandomSizedCrop(min_max_height=(crop_height, crop_height), size=(height, width),
                             w2h_ratio=width / height, p=1)


@functools.lru_cache(maxsize=256)
def _superpixel_segments(image_bytes: bytes, shape: tuple[int, ...], n_segments: int):
    """SLIC segments of one image and each segment's mean colour, computed once.

    Returns (positions, means): ``positions`` (H, W) int, the index of each pixel's
    segment among the non-zero labels (-1 for label 0, which albumentations never
    replaces); ``means`` (segments, C) uint8, rounded and clipped as albumentations does.
    """
    from albumentations.augmentations.pixel import functional as fpixel

    image = np.frombuffer(image_bytes, np.uint8).reshape(shape)
    segments = fpixel.slic(image, n_segments=n_segments, compactness=10)
    labels = np.unique(segments)
    labels = labels[labels != 0]
    lookup = np.full(segments.max() + 1, -1, dtype=np.int64)
    lookup[labels] = np.arange(len(labels))
    positions = lookup[segments]
    flat = positions.ravel()
    inside = flat >= 0
    counts = np.bincount(flat[inside], minlength=len(labels)).astype(np.float64)
    means = np.stack([
        np.bincount(flat[inside], weights=image.reshape(-1, shape[2])[inside, c].astype(np.float64),
                    minlength=len(labels)) / np.maximum(counts, 1)
        for c in range(shape[2])
    ], axis=1)
    return positions, np.clip(np.round(means), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _cached_superpixels_class():
    import albumentations as A

    class CachedSuperpixels(A.Superpixels):
        """albumentations' Superpixels with the SLIC segmentation cached per image.

        The segmentation does not depend on the intensity (``p_replace``), so a sweep
        over intensities segments each image once instead of once per step; the
        parameter draws and the replacement rule are albumentations' own.
        """

        def apply(self, img, replace_samples, n_segments, **params):
            if not np.any(replace_samples):
                return img
            positions, means = _superpixel_segments(img.tobytes(), img.shape, n_segments)
            replace = np.asarray(replace_samples)[np.arange(len(means)) % len(replace_samples)]
            chosen = (positions >= 0) & replace[np.maximum(positions, 0)]
            out = img.copy()
            out[chosen] = means[positions[chosen]]
            return out

    return CachedSuperpixels


def _superpixels(intensity: float, height: int, width: int):
    return _cached_superpixels_class()(p_replace=(intensity, intensity), n_segments=(100, 100),
                                       max_size=None, p=1)


def _catalogue() -> dict[str, Augmentation]:
    entries = [
        # name, group, transform, at intensity 1, family, geometric, build(intensity, h, w)
        ("Brighten", "color", "RandomBrightnessContrast", "brightness +1.0 (+255: white)",
         "brightness", False, lambda i, h, w: _brightness(i)),
        ("Darken", "color", "RandomBrightnessContrast", "brightness -1.0 (-255: black)",
         "brightness", False, lambda i, h, w: _brightness(-i)),
        ("Contrast", "color", "ColorJitter", "contrast factor 4",
         "contrast", False, lambda i, h, w: _color_jitter(contrast=1 + 3 * i)),
        ("Decontrast", "color", "ColorJitter", "contrast factor 0 (flat mean gray)",
         "contrast", False, lambda i, h, w: _color_jitter(contrast=1 - i)),
        ("Saturate", "color", "ColorJitter", "saturation factor 4",
         "saturation", False, lambda i, h, w: _color_jitter(saturation=1 + 3 * i)),
        ("Desaturate", "color", "ColorJitter", "saturation factor 0 (grayscale)",
         "saturation", False, lambda i, h, w: _color_jitter(saturation=1 - i)),
        # Hue stops at 150 degrees: past that, hue rotations start to come back toward
        # the original colours and the image changes less, not more.
        ("Hue", "color", "HueSaturationValue", "hue +150 degrees",
         "hue", False, lambda i, h, w: _hue(150 * i)),
        ("Dehue", "color", "HueSaturationValue", "hue -150 degrees",
         "hue", False, lambda i, h, w: _hue(-150 * i)),
        ("MoreRed", "color", "RGBShift", "red channel +255", "red", False, lambda i, h, w: _rgb_shift(0, 255 * i)),
        ("LessRed", "color", "RGBShift", "red channel -255", "red", False, lambda i, h, w: _rgb_shift(0, -255 * i)),
        ("MoreGreen", "color", "RGBShift", "green channel +255",
         "green", False, lambda i, h, w: _rgb_shift(1, 255 * i)),
        ("LessGreen", "color", "RGBShift", "green channel -255",
         "green", False, lambda i, h, w: _rgb_shift(1, -255 * i)),
        ("MoreBlue", "color", "RGBShift", "blue channel +255", "blue", False, lambda i, h, w: _rgb_shift(2, 255 * i)),
        ("LessBlue", "color", "RGBShift", "blue channel -255", "blue", False, lambda i, h, w: _rgb_shift(2, -255 * i)),
        ("ElasticTransform", "distortion", "ElasticTransform",
         "mean displacement 5% of the short side (sigma 6%)", "elastic", True, _elastic),
        ("GaussianBlur", "distortion", "GaussianBlur", "sigma 8% of the short side",
         "blur", False, _gaussian_blur),
        ("MotionBlur", "distortion", "MotionBlur", "kernel 30% of the short side, random angle",
         "blur", False, _motion_blur),
        ("Sharpen", "distortion", "Sharpen", "alpha 1 (full sharpening kernel)",
         "blur", False, lambda i, h, w: _albumentations().Sharpen(alpha=(i, i), lightness=(1, 1), p=1)),
        # A fixed-frame rotation: albumentations' SafeRotate shrinks the image to fit,
        # most at 45 degrees, which makes the change non-monotone in the angle.
        ("SafeRotate", "distortion", "Rotate", "rotation 90 degrees, frame kept, corners black",
         "rotate", True, lambda i, h, w: _albumentations().Rotate(limit=(90 * i, 90 * i), p=1)),
        ("Downscale", "pixel_dropout", "Downscale", "resolution scale 0.1",
         "resolution", False, _downscale),
        ("MultiplicitiveNoise", "pixel_dropout", "MultiplicativeNoise", "per-pixel multiplier in [0, 2]",
         "noise", False,
         lambda i, h, w: _albumentations().MultiplicativeNoise(multiplier=(1 - i, 1 + i), elementwise=True, p=1)),
        ("PixelDropout", "pixel_dropout", "PixelDropout", "every pixel dropped to black",
         "dropout", False, lambda i, h, w: _albumentations().PixelDropout(dropout_prob=i, p=1)),
        ("RandomSizedCrop", "pixel_dropout", "RandomSizedCrop", "crop of 25% of each side, stretched back",
         "crop", True, _random_sized_crop),
        ("Superpixels", "pixel_dropout", "Superpixels", "every one of 100 SLIC superpixels replaced by its mean",
         "superpixels", False, _superpixels),  # SLIC cached per image: see CachedSuperpixels
    ]
    return {name: Augmentation(name, group, transform, full, family, geometric, build)
            for name, group, transform, full, family, geometric, build in entries}


CATALOGUE: dict[str, Augmentation] = _catalogue()


def _check_augmentation_name(name: Any, parameter: str = "augmentation") -> str:
    if name not in ALL_AUGMENTATIONS:
        close = difflib.get_close_matches(str(name), ALL_AUGMENTATIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {parameter} {name!r}.{hint} Valid names: {', '.join(ALL_AUGMENTATIONS)}")
    return name


def _check_intensity(intensity: Any, name: str) -> float:
    try:
        value = float(intensity)
    except (TypeError, ValueError):
        raise ValueError(f"intensity for {name} must be a number in [0, 1], got {intensity!r}") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"intensity for {name} must be in [0, 1], got {intensity!r}")
    return value


@functools.lru_cache(maxsize=8192)
def _transform(name: str, intensity: float, height: int, width: int):
    # Building an albumentations transform validates its arguments (pydantic) and
    # costs far more than applying it to a small image, so transforms are reused.
    return CATALOGUE[name].build(intensity, height, width)


def _derive_seed(*parts: Any) -> int:
    """A stable 32-bit seed from any parts: the same in every process and on every machine."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def augment_image(image: np.ndarray, name: str, intensity: float, seed: int = 0) -> np.ndarray:
    """Apply one catalogue augmentation at ``intensity`` in [0, 1] to an RGB image.

    ``image`` is (H, W, 3) uint8; the result has the same shape and dtype. The same
    ``seed`` gives the same random draws (crop position, noise field, motion angle) at
    every intensity, so a sweep over intensities is one continuous change.

    >>> import numpy as np
    >>> out = augment_image(np.full((32, 32, 3), 100, np.uint8), "Brighten", 0.5)
    >>> int(out[0, 0, 0])
    228
    """
    _check_augmentation_name(name)
    intensity = _check_intensity(intensity, name)
    image = _as_rgb(image, "image")
    if intensity == 0.0:
        return image.copy()
    transform = _transform(name, round(intensity, 6), image.shape[0], image.shape[1])
    if transform is None:
        return image.copy()
    transform.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.ascontiguousarray(transform(image=image)["image"])


###############################################################################
# Loading images and calling the model
###############################################################################


def _as_rgb(array: Any, what: str) -> np.ndarray:
    """Return ``array`` as (H, W, 3) uint8; grayscale is repeated, alpha dropped."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} must be a numpy array or a file path, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (H, W, 3) RGB, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def load_image(source: str | os.PathLike | np.ndarray) -> np.ndarray:
    """Read an image file (or take an array) as (H, W, 3) uint8 RGB.

    EXIF orientation is applied, grayscale and palette images become RGB, alpha is
    dropped and 16-bit images are scaled to 8 bits. A file that cannot be read is a
    ``ValueError`` naming it.
    """
    if isinstance(source, np.ndarray):
        return _as_rgb(source, "image array")
    from PIL import Image, ImageOps

    path = os.fspath(source)
    try:
        with Image.open(path) as opened:
            opened = ImageOps.exif_transpose(opened)
            if opened.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(opened, dtype=np.float64)
                peak = 65535.0 if array.max() > 255 else 255.0
                return _as_rgb((array / peak * 255).round().clip(0, 255).astype(np.uint8), path)
            return _as_rgb(np.asarray(opened.convert("RGB")), path)
    except FileNotFoundError:
        raise ValueError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


@dataclass
class _Source:
    """One input image: where it comes from and how to load it."""

    key: str  # the file name as given, or "array-<index>" for in-memory images
    path: str | None
    array: np.ndarray | None = field(default=None, repr=False)

    def load(self) -> np.ndarray:
        return load_image(self.array if self.array is not None else self.path)

    def identity(self) -> str:
        """What the cache fingerprint sees: path, size and mtime, or the array's bytes."""
        if self.array is not None:
            return f"{self.key}:{self.array.shape}:{hashlib.sha256(self.array.tobytes()).hexdigest()[:16]}"
        stat = os.stat(self.path)
        return f"{self.path}:{stat.st_size}:{stat.st_mtime_ns}"


def _sources(images: Any, parameter: str) -> list[_Source]:
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError(f"{parameter} is empty: give at least one image file or array")
    sources = []
    for index, image in enumerate(images):
        if isinstance(image, np.ndarray):
            sources.append(_Source(f"array-{index}", None, _as_rgb(image, f"{parameter}[{index}]")))
        elif isinstance(image, (str, os.PathLike)):
            sources.append(_Source(os.fspath(image), os.fspath(image)))
        else:
            raise ValueError(f"{parameter}[{index}] must be a file path or an RGB uint8 array, "
                             f"got {type(image).__name__}")
    return sources


def _check_readable(sources: Sequence[_Source]) -> None:
    """Fail before any prediction if a file is missing or not an image."""
    from PIL import Image

    for source in sources:
        if source.path is None:
            continue
        if not os.path.isfile(source.path):
            raise ValueError(f"image file not found: {source.path}")
        try:
            with Image.open(source.path):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read image {source.path}: {exc}") from None


def _check_labels(labels: Any, count: int, parameter: str) -> list | None:
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"{parameter} has {len(labels)} labels for {count} images; they must match 1-to-1")
    return labels


class _Predictor:
    """Calls the user's predict on batches, whatever form it takes.

    ``batch_size=None``: predict takes one image; an int: predict takes a list of up to
    that many and returns a list as long. ``predict_input``: "array" ((H, W, 3) uint8
    RGB), "filename" (a path; augmented images go to a private temporary folder that is
    removed on exit, even when predict raises) or "auto" (try an array first, fall back
    to a file name if predict raises on it).
    """

    def __init__(self, predict: Callable, batch_size: int | None, predict_input: str):
        self.predict = predict
        self.batch_size = batch_size
        self.predict_input = predict_input
        self.calls = 0  # images sent to the model
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._written = 0

    def __enter__(self) -> _Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _path_for(self, array: np.ndarray, path: str | None) -> str:
        if path is not None:
            return os.path.abspath(path)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="augment-")
        from PIL import Image

        self._written += 1
        target = os.path.join(self._tmp.name, f"{self._written:09d}.png")
        Image.fromarray(array).save(target, compress_level=1)
        return target

    def _call(self, inputs: list) -> list:
        if self.batch_size is None:
            return [self.predict(item) for item in inputs]
        outputs = self.predict(inputs)
        try:
            outputs = list(outputs)
        except TypeError:
            raise ValueError(f"batched predict must return a list, got {type(outputs).__name__}") from None
        if len(outputs) != len(inputs):
            raise ValueError(f"batched predict returned {len(outputs)} outputs for {len(inputs)} images")
        return outputs

    def _call_in_mode(self, arrays: list[np.ndarray], paths: list[str | None], mode: str) -> list:
        if mode == "array":
            return self._call(arrays)
        return self._call([self._path_for(a, p) for a, p in zip(arrays, paths)])

    def __call__(self, arrays: list[np.ndarray], paths: list[str | None] | None = None) -> list:
        """Predict ``arrays`` ((H, W, 3) uint8); ``paths`` are their files where they have one."""
        paths = paths if paths is not None else [None] * len(arrays)
        outputs: list = []
        step = self.batch_size or len(arrays) or 1
        for start in range(0, len(arrays), step):
            chunk, chunk_paths = arrays[start:start + step], paths[start:start + step]
            if self.predict_input == "auto":
                try:
                    result = self._call_in_mode(chunk, chunk_paths, "array")
                    self.predict_input = "array"
                except Exception as array_error:
                    try:
                        result = self._call_in_mode(chunk, chunk_paths, "filename")
                    except Exception:
                        raise array_error from None
                    self.predict_input = "filename"
            else:
                result = self._call_in_mode(chunk, chunk_paths, self.predict_input)
            self.calls += len(chunk)
            outputs.extend(result)
        if self.predict_input == "filename" and self._tmp is not None:
            for name in os.listdir(self._tmp.name):  # keep the folder small between batches
                os.unlink(os.path.join(self._tmp.name, name))
        return outputs


def default_diff_error(output: Any, reference: Any) -> float:
    """0 where the stringified outputs are equal, else 1 (the seed's rule)."""
    return 0.0 if str(output) == str(reference) else 1.0


def _checked_diff(diff_error: Callable, output: Any, reference: Any, where: str) -> float:
    value = diff_error(output, reference)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"diff_error must return a number in [0, 1], got {value!r} ({where})") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"diff_error must return a number in [0, 1], got {value!r} ({where})")
    return number


class TemplateMatcher:
    """The model-free default predictor: which training image is this, and how similar?

    Each training image becomes a descriptor: its 24x24 grayscale intensities and
    gradient magnitudes, each zero-mean and unit-norm; a query is matched to the most similar
    one by cosine similarity. Outputs are ``(index, similarity)``; the matching
    :meth:`diff_error` is 1 when the best match is another image and otherwise grows
    as the similarity falls below 1. It needs no weights and runs offline.
    """

    size = 24

    def __init__(self, images: Sequence[np.ndarray], min_similarity: float = 0.5):
        self.min_similarity = min_similarity
        self.descriptors = np.stack([self.describe(image) for image in images])

    @classmethod
    def describe(cls, image: np.ndarray) -> np.ndarray:
        import cv2

        gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32),
                          (2 * cls.size, 2 * cls.size), interpolation=cv2.INTER_AREA)
        # Intensities say what is where; gradient magnitudes say how sharp it is, so
        # blur and noise lower the similarity as well as moves and colour shifts do.
        edges = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        parts = []
        for channel in (gray, edges):
            small = cv2.resize(channel, (cls.size, cls.size), interpolation=cv2.INTER_AREA).ravel()
            small = small - small.mean()
            norm = np.linalg.norm(small)
            parts.append(small / norm if norm > 1e-6 else small)
        return np.concatenate(parts) / math.sqrt(2)

    def __call__(self, images: list[np.ndarray]) -> list[tuple[int, float]]:
        queries = np.stack([self.describe(image) for image in images])
        similarity = queries @ self.descriptors.T
        best = similarity.argmax(axis=1)
        return [(int(b), round(float(similarity[row, b]), 4)) for row, b in enumerate(best)]

    def diff_error(self, output: tuple[int, float], reference: tuple[int, float]) -> float:
        if output[0] != reference[0]:
            return 1.0
        drop = (1.0 - output[1]) / (1.0 - self.min_similarity)
        return float(min(1.0, max(0.0, drop)))


###############################################################################
# The search
###############################################################################
# For every (image, augmentation, intensity) the model's output on the augmented
# image is compared with its output on the original: diff_error in [0, 1]. An image
# "fails" an augmentation at the first grid intensity whose diff error reaches
# ``failure_threshold``. Work is done in chunks of images; each finished chunk is a
# checkpoint of the analysis file.


def _grid(step: float) -> list[float]:
    count = round(1.0 / step)
    return [round(i / count, 6) for i in range(count + 1)]


def _check_step(step_size_percent: Any) -> float:
    try:
        step = float(step_size_percent)
    except (TypeError, ValueError):
        raise ValueError(f"step_size_percent must be a number, got {step_size_percent!r}") from None
    if 1.0 < step <= 50.0:
        step = step / 100.0  # the seed's README also speaks of "5" meaning 5 %
    if not 0.0 < step <= 0.5 or abs(1.0 / step - round(1.0 / step)) > 1e-6:
        raise ValueError(f"step_size_percent must divide 1 into whole steps (0.05, 0.1, 0.25, ...), "
                         f"got {step_size_percent!r}")
    return step


def _truncate(text: Any, limit: int = 300) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class _ImageResult:
    """What the search learns about one image (one chunk item, before it joins the Analysis)."""

    index: int
    output: str
    label_error: float | None
    diff_errors: dict[str, list[float]]
    label_errors: dict[str, list[float]] | None
    last_success_output: dict[str, str]
    first_failure_output: dict[str, str | None]


def _search_chunk(
    sources: Sequence[_Source],
    todo: dict[int, list[str]],
    labels: Sequence | None,
    grid: Sequence[float],
    predictor: _Predictor,
    diff_error: Callable,
    failure_threshold: float,
    seed: int,
    progress: Any = None,
) -> list[_ImageResult]:
    """Search ``todo`` (image index -> augmentations not yet searched); one model batch stream."""
    keys: list[tuple[int, str | None, float]] = []
    arrays: list[np.ndarray] = []
    paths: list[str | None] = []
    for index, augmentations in todo.items():
        source = sources[index]
        image = source.load()
        keys.append((index, None, 0.0))
        arrays.append(image)
        paths.append(source.path)
        for name in augmentations:
            image_seed = _derive_seed(seed, source.key, name)
            for intensity in grid[1:]:
                keys.append((index, name, intensity))
                arrays.append(augment_image(image, name, intensity, image_seed))
                paths.append(None)
    outputs: list = []
    step = predictor.batch_size or 64
    for start in range(0, len(arrays), step):
        outputs.extend(predictor(arrays[start:start + step], paths[start:start + step]))
        if progress is not None:
            progress.update(min(step, len(arrays) - start))
    by_key = dict(zip(keys, outputs))

    results = []
    for index, augmentations in todo.items():
        original = by_key[(index, None, 0.0)]
        key = sources[index].key
        label = labels[index] if labels is not None else None
        result = _ImageResult(
            index=index, output=_truncate(original),
            label_error=(_checked_diff(diff_error, original, label, f"image {key}, label")
                         if labels is not None else None),
            diff_errors={}, label_errors={} if labels is not None else None,
            last_success_output={}, first_failure_output={},
        )
        for name in augmentations:
            row, label_row = [0.0], [result.label_error] if labels is not None else None
            for intensity in grid[1:]:
                output = by_key[(index, name, intensity)]
                where = f"image {key}, augmentation {name}, intensity {intensity}"
                row.append(round(_checked_diff(diff_error, output, original, where), 4))
                if label_row is not None:
                    label_row.append(round(_checked_diff(diff_error, output, label, where + ", label"), 4))
            result.diff_errors[name] = row
            if label_row is not None:
                result.label_errors[name] = label_row
            failed = next((i for i, d in enumerate(row) if d >= failure_threshold), None)
            last = (failed - 1) if failed is not None else len(grid) - 1
            result.last_success_output[name] = _truncate(
                original if last == 0 else by_key[(index, name, grid[last])])
            result.first_failure_output[name] = (
                _truncate(by_key[(index, name, grid[failed])]) if failed is not None else None)
        results.append(result)
    return results


###############################################################################
# The analysis file
###############################################################################


def _first_at_or_above(values: Sequence[float | None], threshold: float) -> int | None:
    return next((i for i, v in enumerate(values) if v is not None and v >= threshold), None)


@dataclass
class AugmentationCurve:
    """Search results for one augmentation over the intensity grid.

    ``diff_errors[k]`` is image k's diff error at each grid intensity (None until that
    image is searched); the summaries below are computed from the searched images.
    """

    name: str
    intensities: list[float]
    failure_threshold: float
    definition: str
    diff_errors: list[list[float] | None]
    label_errors: list[list[float] | None] | None = None
    last_success_output: list[str | None] = field(default_factory=list)
    first_failure_output: list[str | None] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"AugmentationCurve({self.name!r}, images={self.searched_count}, "
                f"at_10%={self.intensity_at_share(0.1)}, at_50%={self.intensity_at_share(0.5)}, "
                f"at_90%={self.intensity_at_share(0.9)})")

    @property
    def group(self) -> str:
        return CATALOGUE[self.name].group

    @property
    def searched(self) -> list[int]:
        return [k for k, row in enumerate(self.diff_errors) if row is not None]

    @property
    def searched_count(self) -> int:
        return len(self.searched)

    def _rows(self) -> np.ndarray:
        rows = [row for row in self.diff_errors if row is not None]
        return np.array(rows, dtype=float).reshape(len(rows), len(self.intensities))

    @property
    def mean_diff_error(self) -> list[float]:
        """Mean diff error per grid intensity."""
        rows = self._rows()
        return [round(float(v), 4) for v in rows.mean(axis=0)] if len(rows) else []

    @property
    def changed_share(self) -> list[float]:
        """Share of images whose output changed (diff error >= threshold) per intensity."""
        rows = self._rows()
        return [round(float(v), 4) for v in (rows >= self.failure_threshold).mean(axis=0)] if len(rows) else []

    @property
    def label_accuracy(self) -> list[float] | None:
        """Share of images whose augmented output still matches the ground truth."""
        if self.label_errors is None:
            return None
        rows = [row for row in self.label_errors if row is not None]
        if not rows:
            return []
        return [round(float(v), 4) for v in (np.array(rows) < self.failure_threshold).mean(axis=0)]

    @property
    def first_failure_intensities(self) -> list[float | None]:
        """Per image: the first grid intensity at which its output changed (None: never, or not searched)."""
        result = []
        for row in self.diff_errors:
            index = _first_at_or_above(row, self.failure_threshold) if row is not None else None
            result.append(self.intensities[index] if index is not None else None)
        return result

    def share_failed_by(self, intensity: float) -> float:
        """Share of searched images whose first failure is at or below ``intensity``."""
        firsts = [f for k, f in zip(range(len(self.diff_errors)), self.first_failure_intensities)
                  if self.diff_errors[k] is not None]
        if not firsts:
            return 0.0
        return sum(1 for f in firsts if f is not None and f <= intensity + 1e-9) / len(firsts)

    def intensity_at_share(self, share: float) -> float | None:
        """The lowest grid intensity by which ``share`` of the images have changed output (None: never)."""
        return next((t for t in self.intensities if self.share_failed_by(t) >= share - 1e-9), None)

    def safe_intensity(self, negligible_share: float = 0.02) -> float:
        """The largest grid intensity by which at most ``negligible_share`` of images changed output."""
        safe = 0.0
        for t in self.intensities:
            if self.share_failed_by(t) > negligible_share + 1e-9:
                break
            safe = t
        return safe

    @property
    def onset_intensity(self) -> float:
        """Where outputs start to change non-negligibly: 10 % of images changed (1.0 if never)."""
        value = self.intensity_at_share(0.1)
        return 1.0 if value is None else value

    @property
    def failure_intensity(self) -> float:
        """Where most outputs have changed: 50 % of images changed (1.0 if never)."""
        value = self.intensity_at_share(0.5)
        return 1.0 if value is None else value

    def exemplar(self) -> dict | None:
        """The representative image: its first failure is closest to the 50 % intensity."""
        firsts = self.first_failure_intensities
        searched = self.searched
        if not searched:
            return None
        target = self.failure_intensity
        best = min(searched, key=lambda k: (abs((firsts[k] if firsts[k] is not None else 1.5) - target), k))
        first = firsts[best]
        last_index = (self.intensities.index(first) - 1) if first is not None else len(self.intensities) - 1
        return {
            "image": best,
            "last_success_intensity": self.intensities[last_index],
            "last_success_output": self.last_success_output[best],
            "first_failure_intensity": first,
            "first_failure_output": self.first_failure_output[best],
        }

    def summary(self) -> dict:
        return {
            "group": self.group,
            "searched_images": self.searched_count,
            "safe_intensity": self.safe_intensity(),
            "intensity_at_10": self.intensity_at_share(0.1),
            "intensity_at_50": self.intensity_at_share(0.5),
            "intensity_at_90": self.intensity_at_share(0.9),
            "onset_intensity": self.onset_intensity,
            "failure_intensity": self.failure_intensity,
            "mean_diff_error": self.mean_diff_error,
            "changed_share": self.changed_share,
            "label_accuracy": self.label_accuracy,
            "exemplar": self.exemplar(),
        }

    def to_json(self) -> dict:
        return {
            "definition": self.definition,
            "summary": self.summary(),
            "first_failure_intensity": self.first_failure_intensities,
            "diff_errors": self.diff_errors,
            "label_errors": self.label_errors,
            "last_success_output": self.last_success_output,
            "first_failure_output": self.first_failure_output,
        }

    @classmethod
    def from_json(cls, name: str, data: dict, intensities: list[float], failure_threshold: float
                  ) -> AugmentationCurve:
        return cls(name=name, intensities=intensities, failure_threshold=failure_threshold,
                   definition=data["definition"], diff_errors=data["diff_errors"],
                   label_errors=data.get("label_errors"),
                   last_success_output=data["last_success_output"],
                   first_failure_output=data["first_failure_output"])


@dataclass
class ImageRecord:
    """One searched image: its file (or array key), label and the model's original output."""

    file: str
    label: Any = None
    output: str | None = None
    label_error: float | None = None


@dataclass
class Analysis:
    """The result of a boundary search; what ``analysis.json`` holds.

    >>> analysis = load_analysis("analysis.json")                 # doctest: +SKIP
    >>> analysis.curves["SafeRotate"].intensity_at_share(0.5)     # doctest: +SKIP
    0.25
    """

    fingerprint: str
    settings: dict
    images: list[ImageRecord]
    curves: dict[str, AugmentationCurve]

    def __repr__(self) -> str:
        done = sum(1 for c in self.curves.values() if c.searched_count == len(self.images))
        return (f"Analysis(images={len(self.images)}, augmentations={len(self.curves)}, "
                f"complete={done}/{len(self.curves)}, step={self.settings.get('step_size')})")

    @property
    def intensities(self) -> list[float]:
        return self.settings["intensities"]

    @property
    def complete(self) -> bool:
        return all(c.searched_count == len(self.images) for c in self.curves.values())

    def summary_rows(self) -> list[dict]:
        """One row per augmentation, most fragile (lowest 50 % intensity) first."""
        rows = [{"augmentation": name, **curve.summary()} for name, curve in self.curves.items()]
        return sorted(rows, key=lambda r: (r["intensity_at_50"] if r["intensity_at_50"] is not None else 2.0,
                                           r["intensity_at_10"] if r["intensity_at_10"] is not None else 2.0,
                                           r["augmentation"]))

    def to_json(self) -> dict:
        return {
            "format": _ANALYSIS_FORMAT,
            "version": _ANALYSIS_VERSION,
            "tool_version": __version__,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "images": [dataclasses.asdict(record) for record in self.images],
            "augmentations": {name: curve.to_json() for name, curve in self.curves.items()},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "analysis") -> Analysis:
        if not isinstance(data, dict) or data.get("format") != _ANALYSIS_FORMAT:
            raise ValueError(f"{where} is not an augment.py analysis file")
        if data.get("version") != _ANALYSIS_VERSION:
            raise ValueError(f"{where} has analysis format version {data.get('version')!r}; this augment.py "
                             f"{__version__} reads version {_ANALYSIS_VERSION}. Re-run the search "
                             f"(the old file is kept as a backup).")
        try:
            settings = data["settings"]
            intensities = settings["intensities"]
            threshold = settings["failure_threshold"]
            images = [ImageRecord(**record) for record in data["images"]]
            curves = {name: AugmentationCurve.from_json(name, entry, intensities, threshold)
                      for name, entry in data["augmentations"].items()}
            for name, curve in curves.items():
                _check_augmentation_name(name, "augmentation in the analysis")
                if len(curve.diff_errors) != len(images):
                    raise ValueError(f"augmentation {name} has {len(curve.diff_errors)} rows for "
                                     f"{len(images)} images")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where} is damaged: missing or malformed field {exc}") from None
        return cls(fingerprint=data["fingerprint"], settings=settings, images=images, curves=curves)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then rename."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".analysis-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def load_analysis(path: str | os.PathLike = "analysis.json") -> Analysis:
    """Read an analysis file; a missing, truncated or foreign file is a ``ValueError`` naming it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"no analysis file at {path}: run the search first "
                         f"(search_randomization_boundaries or `python augment.py search`)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"analysis file {path} is truncated or corrupt ({exc}); move it away to start "
                         f"a fresh search") from None
    return Analysis.from_json(data, where=f"analysis file {path}")


def _backup(path: str) -> str:
    backup = f"{path}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
    counter = 1
    while os.path.exists(backup):
        backup = f"{path}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{counter}"
        counter += 1
    os.replace(path, backup)
    return backup


###############################################################################
# Evaluation
###############################################################################


def _evaluate(outputs: Sequence, labels: Sequence, keys: Sequence[str], diff_error: Callable,
              failure_threshold: float) -> dict:
    errors = [_checked_diff(diff_error, output, label, f"image {key}")
              for output, label, key in zip(outputs, labels, keys)]
    differing = [
        {"file": key, "label": _truncate(label), "output": _truncate(output), "diff_error": error}
        for key, label, output, error in zip(keys, labels, outputs, errors) if error >= failure_threshold
    ]
    count = len(errors)
    return {
        "count": count,
        "avg_diff_error": float(np.mean(errors)) if errors else 0.0,
        "output_differs_count": len(differing),
        "accuracy": (count - len(differing)) / count if count else 0.0,
        "differing_output_errs": [d["diff_error"] for d in differing],
        "differing_outputs": differing,
        "diff_errors": errors,
    }


###############################################################################
# ImageAugmenter: the public face
###############################################################################


def _check_probability_like(value: Any, parameter: str, low: float, high: float | None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{parameter} must be a number, got {value!r}") from None
    if math.isnan(number) or number < low or (high is not None and number > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{parameter} must be {allowed}, got {value!r}")
    return number


class ImageAugmenter:
    """Searches how far each augmentation can go before a model's output changes.

    ``my_predict``: takes one image (an RGB (H, W, 3) uint8 array, or a file name as in
    the seed README) and returns labels of any string-ifiable type. With ``batch_size``
    set, it takes a list of up to that many images and returns a list as long: that is
    what makes a real model fast. ``predict_input`` says which it takes: "array",
    "filename" or "auto" (try an array, fall back to a file name). With
    ``my_predict=None`` a model-free :class:`TemplateMatcher` built from the training
    images is used.

    ``diff_error(output, reference) -> [0, 1]``: how different two outputs are; the
    default is 0 for equal strings, else 1. An output "changed" when its diff error
    reaches ``failure_threshold``. ``seed`` makes searches and synthesis repeatable.

    >>> augmenter = ImageAugmenter(lambda imgs: [int(i.mean() > 127) for i in imgs], batch_size=32)
    >>> augmenter.augmentations[:3]
    ['Brighten', 'Contrast', 'Darken']
    """

    def __init__(
        self,
        my_predict: Callable | None = None,
        diff_error: Callable | None = None,
        augmentations: Iterable[str] = ALL_AUGMENTATIONS,
        label_format: str | dict | None = None,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        predict_input: str = "auto",
        failure_threshold: float = 0.5,
        checkpoint_seconds: float = 10.0,
        progress: bool = True,
    ):
        if my_predict is not None and not callable(my_predict):
            raise ValueError(f"my_predict must be callable or None, got {type(my_predict).__name__}")
        if diff_error is not None and not callable(diff_error):
            raise ValueError(f"diff_error must be callable or None, got {type(diff_error).__name__}")
        if isinstance(augmentations, str):
            augmentations = [augmentations]
        self.augmentations = [_check_augmentation_name(n, "augmentation") for n in augmentations]
        if not self.augmentations:
            raise ValueError("augmentations is empty: pick at least one of ALL_AUGMENTATIONS")
        if len(set(self.augmentations)) != len(self.augmentations):
            raise ValueError(f"augmentations lists a name twice: {self.augmentations}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if predict_input not in ("auto", "array", "filename"):
            raise ValueError(f"predict_input must be 'auto', 'array' or 'filename', got {predict_input!r}")
        if not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.my_predict = my_predict
        self.diff_error = diff_error
        self.label_format = label_format
        self.seed = int(seed)
        self.batch_size = batch_size
        self.predict_input = predict_input
        self.failure_threshold = _check_probability_like(failure_threshold, "failure_threshold", 0.0, 1.0)
        if self.failure_threshold == 0.0:
            raise ValueError("failure_threshold must be > 0, got 0 (every output would count as changed)")
        self.checkpoint_seconds = float(checkpoint_seconds)
        self.progress = progress
        self.rng = np.random.default_rng(self.seed)
        self.realism_overrides: dict[str, float] = {}
        self.weights: dict[str, float] = {name: 1.0 for name in self.augmentations}
        self.analysis: Analysis | None = None
        self.analysis_path: str | None = None
        self.predict_calls = 0

    def __repr__(self) -> str:
        return (f"ImageAugmenter(predict={getattr(self.my_predict, '__name__', self.my_predict)!r}, "
                f"augmentations={len(self.augmentations)}, seed={self.seed}, batch_size={self.batch_size})")

    # -- settings ---------------------------------------------------------------

    def set_augmentation_realism(self, augmentation_name: str, realism: float) -> None:
        """Override the global realism for one augmentation (<= 1; see synthesize_more)."""
        _check_augmentation_name(augmentation_name, "augmentation_name")
        value = _check_probability_like(realism, f"realism for {augmentation_name}", -math.inf, 1.0)
        self.realism_overrides[augmentation_name] = value

    def set_augmentation_weight(self, augmentation_name: str, weight: float) -> None:
        """Relative odds of picking one augmentation in synthesis (default 1; 0 never picks it)."""
        _check_augmentation_name(augmentation_name, "augmentation_name")
        if augmentation_name not in self.weights:
            raise ValueError(f"augmentation_name {augmentation_name!r} is not among this augmenter's "
                             f"augmentations {self.augmentations}")
        value = _check_probability_like(weight, f"weight for {augmentation_name}", 0.0, None)
        if math.isinf(value):
            raise ValueError(f"weight for {augmentation_name} must be finite, got {weight!r}")
        self.weights[augmentation_name] = value

    # -- model plumbing -----------------------------------------------------------

    def _predictor(self, default_images: Sequence[_Source] | None = None) -> tuple[_Predictor, Callable]:
        """The batched predictor and the diff_error to use with it."""
        if self.my_predict is None:
            if default_images is None:
                raise ValueError("my_predict is None and there are no training images to build the "
                                 "model-free matcher from: run the search first or give my_predict")
            matcher = TemplateMatcher([source.load() for source in default_images])
            return _Predictor(matcher, 256, "array"), self.diff_error or matcher.diff_error
        return (_Predictor(self.my_predict, self.batch_size, self.predict_input),
                self.diff_error or default_diff_error)

    # -- the search ---------------------------------------------------------------

    def _fingerprint(self, sources: Sequence[_Source], labels: list | None, step: float) -> str:
        parts = {
            "images": [source.identity() for source in sources],
            "labels": None if labels is None else [str(label) for label in labels],
            "step": step,
            "seed": self.seed,
            "failure_threshold": self.failure_threshold,
        }
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]

    def _resume_or_start(self, path: str | None, fingerprint: str, sources: Sequence[_Source],
                         labels: list | None, step: float) -> Analysis:
        grid = _grid(step)
        if path is not None and os.path.exists(path):
            try:
                cached = load_analysis(path)
                reason = None if cached.fingerprint == fingerprint else (
                    "its images, labels, step size, seed or failure threshold differ from this search")
            except ValueError as exc:
                cached, reason = None, str(exc)
            if reason is None:
                for name in self.augmentations:
                    curve = cached.curves.get(name)
                    if curve is None or curve.definition != CATALOGUE[name].definition:
                        cached.curves[name] = self._empty_curve(name, grid, len(sources), labels is not None)
                return cached
            backup = _backup(path)
            warnings.warn(f"not reusing {path}: {reason}. It was kept as {backup}; starting a fresh search.",
                          stacklevel=3)
        images = [ImageRecord(file=source.key, label=_jsonable(label))
                  for source, label in zip(sources, labels if labels is not None else [None] * len(sources))]
        settings = {"step_size": step, "intensities": grid, "seed": self.seed,
                    "failure_threshold": self.failure_threshold, "strategy": "grid",
                    "labels": labels is not None}
        curves = {name: self._empty_curve(name, grid, len(sources), labels is not None)
                  for name in self.augmentations}
        return Analysis(fingerprint=fingerprint, settings=settings, images=images, curves=curves)

    @staticmethod
    def _empty_curve(name: str, grid: list[float], count: int, with_labels: bool) -> AugmentationCurve:
        return AugmentationCurve(
            name=name, intensities=grid, failure_threshold=0.0, definition=CATALOGUE[name].definition,
            diff_errors=[None] * count, label_errors=[None] * count if with_labels else None,
            last_success_output=[None] * count, first_failure_output=[None] * count,
        )

    def search_randomization_boundaries(
        self,
        training_img_filenames: Any,
        training_labels: Sequence | None = None,
        step_size_percent: float = 0.05,
        analytics_cache: str | os.PathLike | None = "analysis.json",
        *,
        images_per_chunk: int | None = None,
    ) -> Analysis:
        """Measure, per augmentation and intensity, how often the model's output changes.

        ``training_img_filenames``: file paths or RGB arrays. ``training_labels``
        (optional): ground truth, 1-to-1; then accuracy against it is measured too.
        ``step_size_percent``: grid step as a fraction (0.05) or percent (5).
        ``analytics_cache``: the analysis file; progress is checkpointed there and a
        re-run with the same inputs resumes (None: keep it in memory only).

        >>> augmenter = ImageAugmenter(lambda img: int(img.mean() > 127), augmentations=["Brighten"])
        >>> import numpy as np
        >>> analysis = augmenter.search_randomization_boundaries(
        ...     [np.full((16, 16, 3), 100, np.uint8)], step_size_percent=0.25, analytics_cache=None)
        >>> analysis.curves["Brighten"].first_failure_intensities
        [0.25]
        """
        sources = _sources(training_img_filenames, "training_img_filenames")
        labels = _check_labels(training_labels, len(sources), "training_labels")
        step = _check_step(step_size_percent)
        _check_readable(sources)
        path = os.fspath(analytics_cache) if analytics_cache is not None else None
        fingerprint = self._fingerprint(sources, labels, step)
        analysis = self._resume_or_start(path, fingerprint, sources, labels, step)
        for curve in analysis.curves.values():
            curve.failure_threshold = self.failure_threshold
        self.analysis, self.analysis_path = analysis, path
        grid = analysis.intensities

        todo = {k: missing for k in range(len(sources))
                if (missing := [n for n in self.augmentations if analysis.curves[n].diff_errors[k] is None])}
        if not todo:
            if path is not None and not os.path.exists(path):
                analysis.save(path)
            return analysis

        predictor, diff_error = self._predictor(sources)
        chunk = images_per_chunk or max(1, (self.batch_size or 64) // max(1, len(self.augmentations)))
        total = sum(1 + len(names) * (len(grid) - 1) for names in todo.values())
        from tqdm.auto import tqdm

        last_save = time.monotonic()
        try:
            with predictor, tqdm(total=total, unit="pred", desc="search",
                                 disable=not self.progress, smoothing=0.1) as bar:
                pending = list(todo.items())
                for start in range(0, len(pending), chunk):
                    results = _search_chunk(sources, dict(pending[start:start + chunk]), labels, grid,
                                            predictor, diff_error, self.failure_threshold, self.seed,
                                            progress=bar)
                    self._merge(analysis, results)
                    if path is not None and time.monotonic() - last_save >= self.checkpoint_seconds:
                        analysis.save(path)
                        last_save = time.monotonic()
        finally:
            # Whatever ended the search (done, an error, Ctrl-C), finished images are kept.
            self.predict_calls += predictor.calls
            if path is not None:
                analysis.save(path)
        return analysis

    searchRandomizationBoundries = search_randomization_boundaries  # the seed README's spelling

    @staticmethod
    def _merge(analysis: Analysis, results: Iterable[_ImageResult]) -> None:
        for result in results:
            record = analysis.images[result.index]
            record.output, record.label_error = result.output, result.label_error
            for name, row in result.diff_errors.items():
                curve = analysis.curves[name]
                curve.diff_errors[result.index] = row
                if curve.label_errors is not None and result.label_errors is not None:
                    curve.label_errors[result.index] = result.label_errors[name]
                curve.last_success_output[result.index] = result.last_success_output[name]
                curve.first_failure_output[result.index] = result.first_failure_output[name]

    def load_analysis(self, path: str | os.PathLike = "analysis.json") -> Analysis:
        """Use an analysis file written earlier (for the report and synthesis)."""
        self.analysis = load_analysis(path)
        self.analysis_path = os.fspath(path)
        self.failure_threshold = self.analysis.settings["failure_threshold"]
        return self.analysis

    # -- evaluation -----------------------------------------------------------------

    def evaluate(self, img_filenames: Any, img_labels: Sequence) -> dict:
        """Run the model on images and compare its outputs with ``img_labels``.

        Returns the seed's keys ``avg_diff_error``, ``output_differs_count`` and
        ``differing_output_errs`` (the diff errors of the outputs that differ), plus
        ``accuracy``, ``count``, ``differing_outputs`` (file, label, output, error) and
        ``diff_errors`` (every image's error, in order).
        """
        sources = _sources(img_filenames, "img_filenames")
        labels = _check_labels(img_labels, len(sources), "img_labels")
        if labels is None:
            raise ValueError("img_labels is required to evaluate")
        _check_readable(sources)
        predictor, diff_error = self._predictor(None if self.my_predict is not None else sources)
        outputs: list = []
        step = self.batch_size or 64
        with predictor:
            for start in range(0, len(sources), step):
                chunk = sources[start:start + step]
                outputs.extend(predictor([s.load() for s in chunk], [s.path for s in chunk]))
        self.predict_calls += predictor.calls
        return _evaluate(outputs, labels, [s.key for s in sources], diff_error, self.failure_threshold)


def _jsonable(value: Any) -> Any:
    """Labels go into JSON as they are when they can, else as their string."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, np.ndarray):
            return value.tolist()
        return str(value)


###############################################################################
# The command line
###############################################################################


def _import_object(spec: str, parameter: str) -> Any:
    """``package.module:attribute`` (or ``path/to/file.py:attribute``) to the object."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{parameter} must look like package.module:function, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py"):
            spec_obj = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            module = importlib.util.module_from_spec(spec_obj)
            spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as exc:
        raise ValueError(f"{parameter}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{parameter}: module {module_name!r} has no attribute {attribute!r}") from None


def _expand_images(patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches and not any(ch in pattern for ch in "*?["):
            matches = [pattern]  # a plain file name: let the loader report it if missing
        if not matches:
            raise ValueError(f"--images pattern {pattern!r} matches no file")
        files.extend(matches)
    return files


def _read_labels(path: str | None, files: Sequence[str]) -> list | None:
    """A JSON list (1-to-1 with the sorted files) or an object keyed by file name or base name."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read --labels {path}: {exc}") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        labels = []
        for name in files:
            for key in (name, os.path.basename(name), os.path.abspath(name)):
                if key in data:
                    labels.append(data[key])
                    break
            else:
                raise ValueError(f"--labels {path} has no label for image {name}")
        return labels
    raise ValueError(f"--labels {path} must hold a JSON list or object, got {type(data).__name__}")


def format_summary(analysis: Analysis) -> str:
    """A plain-text table: per augmentation, the intensities at which 10/50/90 % of outputs changed."""

    def cell(value: float | None) -> str:
        return ">1" if value is None else f"{value:.2f}"

    lines = [f"{'augmentation':<20} {'safe':>5} {'10%':>5} {'50%':>5} {'90%':>5}   (intensity at which "
             f"that share of {len(analysis.images)} images changed output)"]
    for row in analysis.summary_rows():
        lines.append(f"{row['augmentation']:<20} {cell(row['safe_intensity']):>5} "
                     f"{cell(row['intensity_at_10']):>5} {cell(row['intensity_at_50']):>5} "
                     f"{cell(row['intensity_at_90']):>5}")
    return "\n".join(lines)


def catalogue_markdown() -> str:
    """The README's catalogue table, made from the catalogue itself so the two cannot disagree."""
    lines = ["| name | group | albumentations transform | at intensity 1 |", "|---|---|---|---|"]
    for entry in CATALOGUE.values():
        lines.append(f"| {entry.name} | {entry.group} | `{entry.transform}` | {entry.at_full_intensity} |")
    return "\n".join(lines)


def _command_catalogue(args: argparse.Namespace) -> int:
    print(catalogue_markdown())
    return 0


def _augmenter_from_args(args: argparse.Namespace) -> ImageAugmenter:
    predict = _import_object(args.predict, "--predict") if args.predict else None
    diff_error = _import_object(args.diff_error, "--diff-error") if getattr(args, "diff_error", None) else None
    return ImageAugmenter(predict, diff_error, augmentations=args.augmentations or ALL_AUGMENTATIONS,
                          seed=args.seed, batch_size=args.batch_size, predict_input=args.predict_input,
                          failure_threshold=args.failure_threshold)


def _command_search(args: argparse.Namespace) -> int:
    files = _expand_images(args.images)
    labels = _read_labels(args.labels, files)
    augmenter = _augmenter_from_args(args)
    analysis = augmenter.search_randomization_boundaries(files, labels, args.step, args.cache)
    print(format_summary(analysis))
    print(f"\nanalysis written to {args.cache} ({augmenter.predict_calls} predictions this run)")
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    files = _expand_images(args.images)
    labels = _read_labels(args.labels, files)
    if labels is None:
        raise ValueError("evaluate needs --labels")
    result = _augmenter_from_args(args).evaluate(files, labels)
    shown = {k: v for k, v in result.items() if k not in ("diff_errors", "differing_outputs")}
    print(json.dumps(shown, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augment.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"augment.py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--predict", help="package.module:function (or file.py:function); "
                                           "omit for the model-free matcher")
        sub.add_argument("--diff-error", help="package.module:function returning [0, 1]")
        sub.add_argument("--images", nargs="+", required=True, help="image files or glob patterns")
        sub.add_argument("--labels", help="JSON list (sorted file order) or object keyed by file name")
        sub.add_argument("--augmentations", nargs="+", metavar="NAME", help="default: all 24")
        sub.add_argument("--batch-size", type=int, default=None,
                         help="predict takes a list of up to N images (default: one image per call)")
        sub.add_argument("--predict-input", choices=["auto", "array", "filename"], default="auto")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--failure-threshold", type=float, default=0.5)

    search = commands.add_parser("search", help="search randomization boundaries into the analysis file")
    model_options(search)
    search.add_argument("--step", type=float, default=0.05, help="intensity step (fraction or percent)")
    search.add_argument("--cache", default="analysis.json", help="analysis file (resumed if present)")
    search.set_defaults(run=_command_search)

    evaluate = commands.add_parser("evaluate", help="run the model on images and compare with labels")
    model_options(evaluate)
    evaluate.set_defaults(run=_command_evaluate)
    catalogue = commands.add_parser("catalogue", help="print the augmentation catalogue as a Markdown table")
    catalogue.set_defaults(run=_command_catalogue)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python augment.py {search,evaluate,...} ...``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is in the analysis file; run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
