"""The augmentation catalogue: one entry per augmentation (how an intensity in [0, 1] becomes an
albumentations transform), rendering one augmentation (augment_image) and the per-thread transform cache.
Add a built-in augmentation here."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import numbers
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fastpaths import _BLUR_SIGMA_AT_WORK, _elastic_unit_fields, _fast_transform_classes
from .helpers import _CATALOGUE_VERSION, AugmentError, _as_rgb, _cached, _derive_seed, _image_digest


@dataclass(frozen=True)
class Augmentation:
    """One catalogue entry: how an intensity in [0, 1] becomes an albumentations transform.

    ``family`` groups contradictory augmentations (Brighten and Darken, the blurs and
    Sharpen, ...) that synthesis never combines in one image; ``geometric`` marks the
    ones that move pixels, so labels with positions must move with them.

    >>> CATALOGUE["SafeRotate"].at_full_intensity, CATALOGUE["SafeRotate"].geometric
    ('rotation 90 degrees, frame kept, corners black', True)
    """

    name: str
    group: str
    transform: str
    at_full_intensity: str
    family: str
    geometric: bool
    build: Callable[[float, int, int], Any] = field(repr=False, compare=False)
    revision: str = ""  # a registered augmentation's code and behaviour digest (see register_augmentation)
    variant: str = ""  # a built-in whose pixels changed since its first release says how (a new definition)

    @property
    def definition(self) -> str:
        """A fingerprint of the mapping, stored with cached results."""
        text = f"{_CATALOGUE_VERSION}|{self.name}|{self.transform}|{self.at_full_intensity}"
        if self.variant:
            text += f"|{self.variant}"
        if self.revision:
            text += f"|{self.group}|{self.family}|{self.geometric}|{self.revision}"
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


@_cached("catalogue: elastic displacement per size", maxsize=64, entry_bytes=0)
def _elastic_unit_displacement(height: int, width: int, sigma: float) -> float:
    """Mean |displacement| (px) of the elastic field at alpha=1 (see _elastic_unit_fields).

    The smoothed field's amplitude depends on sigma and the image size, so alpha is
    calibrated to make intensity 1 mean the same relative warp at every size: on average over
    8 draws (a field of sigma 6 % of the side has few independent bumps, so one draw's mean
    varies by about 10 %).
    """
    means = []
    for seed in range(8):
        state = json.dumps(np.random.default_rng(seed).bit_generator.state)
        dx, dy, _ = _elastic_unit_fields(height, width, sigma, False, "gaussian", state)
        means.append(float(np.hypot(dx, dy).mean()))  # at the field's own size: upsampling keeps the mean
    return float(np.mean(means)) or 1e-6


def _elastic(intensity: float, height: int, width: int):
    side = _short_side(height, width)
    sigma = max(1.0, 0.06 * side)
    alpha = intensity * 0.05 * side / _elastic_unit_displacement(height, width, sigma)
    return _fast_transform_classes()["ElasticTransform"](alpha=alpha, sigma=sigma, p=1)


def _gaussian_blur(intensity: float, height: int, width: int):
    import albumentations as A

    sigma = intensity * 0.08 * _short_side(height, width)
    if sigma <= 0.0:
        return None  # a zero sigma makes albumentations' kernel 0/0 (a black image)
    if sigma <= _BLUR_SIGMA_AT_WORK:
        return A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1)
    return _fast_transform_classes()["GaussianBlur"](blur_limit=0, sigma_limit=(sigma, sigma), p=1)


def _motion_blur(intensity: float, height: int, width: int):
    kernel = 1 + 2 * round(intensity * 0.15 * _short_side(height, width))
    if kernel < 3:
        return None  # a 1 px kernel is the identity
    return _fast_transform_classes()["MotionBlur"](blur_limit=(kernel, kernel), allow_shifted=False, p=1)


def _downscale(intensity: float, height: int, width: int):
    import albumentations as A
    import cv2

    side = _short_side(height, width)
    # Below 10 px the 0.1 scale would leave less than one pixel (OpenCV refuses an
    # empty size), so the scale stops at one pixel on the short side.
    scale = max(1.0 - 0.9 * intensity, 1.0 / side)
    if round(side * scale) >= side:
        return None
    # Area down / linear up: nearest-neighbour aliasing made the change jump around
    # between neighbouring scales.
    return A.Downscale(scale_range=(scale, scale), p=1, interpolation_pair={
        "downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR})


def _random_sized_crop(intensity: float, height: int, width: int):
    import albumentations as A

    # Crop windows of one seed are nested as the intensity grows (albumentations places
    # them at the same relative offset), so a sweep zooms steadily into one region.
    # albumentations floors the crop width (crop_height * width / height); on images
    # much taller than wide the crop stays at least one pixel wide (ceil is the closed
    # form; the loop corrects float rounding, e.g. 49 * (1 / 49) < 1).
    crop_height = max(1, round(height * (1.0 - 0.75 * intensity)), math.ceil(height / width))
    while int(crop_height * (width / height)) < 1:
        crop_height += 1
    if crop_height >= height:
        return None
    return A.RandomSizedCrop(min_max_height=(crop_height, crop_height), size=(height, width),
                             w2h_ratio=width / height, p=1)


def _superpixels(intensity: float, height: int, width: int):
    return _fast_transform_classes()["Superpixels"](p_replace=(intensity, intensity), n_segments=(100, 100),
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
         lambda i, h, w: _fast_transform_classes()["MultiplicitiveNoise"](multiplier=(1 - i, 1 + i), elementwise=True,
                                                                          p=1)),
        ("PixelDropout", "pixel_dropout", "PixelDropout", "every pixel dropped to black",
         "dropout", False, lambda i, h, w: _fast_transform_classes()["PixelDropout"](dropout_prob=i, p=1)),
        ("RandomSizedCrop", "pixel_dropout", "RandomSizedCrop", "crop of 25% of each side, stretched back",
         "crop", True, _random_sized_crop),
        ("Superpixels", "pixel_dropout", "Superpixels",
         "every one of 100 SLIC superpixels (scikit-image) replaced by its mean",
         "superpixels", False, _superpixels),  # SLIC cached per image: see CachedSuperpixels
    ]
    # Changed pixels since their first release (their cached searches are searched again): SLIC on a
    # 72 px copy, not 128 px, 5 iterations, not 10; the elastic field drawn where its sigma is 3 px, then upsampled.
    variants = {"Superpixels": "SLIC on 72 px, 5 iterations", "ElasticTransform": "field at sigma 3 px"}
    return {name: Augmentation(name, group, transform, full, family, geometric, build, variant=variants.get(name, ""))
            for name, group, transform, full, family, geometric, build in entries}


CATALOGUE: dict[str, Augmentation] = _catalogue()


# -- the extended catalogue (opt-in: EXTENDED_AUGMENTATIONS) ------------------------------
# Corruption-benchmark and camera-pipeline operations, each albumentations' own transform,
# under the catalogue's rules: identity at 0, a larger intensity never changes natural photos
# less on average, sizes as fractions of the short side. Weather (fog, snow, rain, frost), glass
# blur, perspective and nearest-neighbour pixelation are not here: see the README.

def _flip(horizontal: bool) -> Callable[[float, int, int], Any]:
    def build(intensity: float, height: int, width: int):
        # Two-valued: the image flips from intensity 0.5 on. The search finds whether the model
        # tolerates it (a step at 0.5 or never); synthesis flips when a draw reaches 0.5.
        A = _albumentations()
        return (A.HorizontalFlip(p=1) if horizontal else A.VerticalFlip(p=1)) if intensity >= 0.5 else None

    return build


def _cutout(intensity: float, height: int, width: int):
    side = round(0.2 * _short_side(height, width) * intensity)
    if side < 1:
        return None
    return _albumentations().CoarseDropout(num_holes_range=(8, 8), hole_height_range=(side, side),
                                           hole_width_range=(side, side), fill=0, p=1)


def _zoom_blur(intensity: float, height: int, width: int):
    # Ten zoomed copies averaged, the last at 1 + 0.27 t: albumentations takes them from
    # np.arange(1, max_factor, step), whose count a step of exactly a tenth leaves to float
    # rounding (10 or 11 copies, a dip in the change wherever it flips); 9.5 steps fit always 10.
    factor = 1.0 + 0.3 * intensity
    return _fast_transform_classes()["ZoomBlur"](max_factor=(factor, factor), step_factor=(0.3 * intensity / 9.5,) * 2,
                                                 p=1)


def _defocus(intensity: float, height: int, width: int):
    radius = intensity * 0.04 * _short_side(height, width)
    # Below half a pixel the rim weighs nothing: the identity.
    return _fast_transform_classes()["DefocusBlur"](disk_radius=radius, p=1) if radius > 0.5 else None


def _posterize(intensity: float, height: int, width: int):
    bits = 8 - round(7 * intensity)
    return _albumentations().Posterize(num_bits=(bits, bits), p=1) if bits < 8 else None


def _extended() -> dict[str, Augmentation]:
    A = _albumentations
    entries = [
        # name, transform, at intensity 1, family, geometric, build(intensity, h, w)
        ("HorizontalFlip", "HorizontalFlip", "mirrored left-right (from intensity 0.5 on)", "flip horizontal", True,
         _flip(True)),
        ("VerticalFlip", "VerticalFlip", "upside down (from intensity 0.5 on)", "flip vertical", True, _flip(False)),
        ("Cutout", "CoarseDropout", "8 black squares of 20% of the short side", "dropout", False, _cutout),
        ("GaussianNoise", "GaussNoise", "Gaussian noise, standard deviation 40% of the range", "noise", False,
         lambda i, h, w: _fast_transform_classes()["GaussianNoise"](std_range=(0.4 * i, 0.4 * i), p=1)),
        ("ShotNoise", "ShotNoise", "Poisson noise at scale 0.5 (few photons)", "noise", False,
         lambda i, h, w: _fast_transform_classes()["ShotNoise"](scale_range=(0.5 * i, 0.5 * i), p=1)),
        ("ImpulseNoise", "SaltAndPepper", "30% of pixels salt or pepper", "noise", False,
         lambda i, h, w: _fast_transform_classes()["ImpulseNoise"](amount=(0.3 * i, 0.3 * i), p=1)),
        ("ZoomBlur", "ZoomBlur", "ten zoomed copies up to 1.27x averaged", "blur", False, _zoom_blur),
        ("DefocusBlur", "Defocus", "a lens's disk blur, radius 4% of the short side", "blur", False, _defocus),
        ("JPEG", "ImageCompression", "JPEG quality 5 (100 just above 0)", "compression", False,
         lambda i, h, w: A().ImageCompression(quality_range=(round(100 - 95 * i),) * 2, p=1)),
        ("Translate", "Affine", "shifted by up to 25% of each side, borders black", "translate", True,
         lambda i, h, w: A().Affine(translate_percent={"x": (-0.25 * i, 0.25 * i), "y": (-0.25 * i, 0.25 * i)},
                                    p=1)),
        ("Scale", "Affine", "zoomed out to half size, borders black", "scale", True,
         lambda i, h, w: A().Affine(scale=(1 / (1 + i), 1 / (1 + i)), p=1)),
        ("Shear", "Affine", "sheared by up to 30 degrees on each axis", "shear", True,
         lambda i, h, w: A().Affine(shear={"x": (-30 * i, 30 * i), "y": (-30 * i, 30 * i)}, p=1)),
        ("Posterize", "Posterize", "1 bit per channel", "posterize", False, _posterize),
        ("Solarize", "Solarize", "every pixel inverted", "solarize", False,
         lambda i, h, w: A().Solarize(threshold_range=(1 - i, 1 - i), p=1)),
    ]
    # Their first release drew new noise at every intensity and summed ZoomBlur in floats: caches
    # of those searches are searched again (see _cached_draws, ByteZoomBlur).
    variants = {"GaussianNoise": "cached draws", "ShotNoise": "cached quantile draws",
                "ImpulseNoise": "nested draws", "ZoomBlur": "byte copies"}
    return {name: Augmentation(name, "extended", transform, full, family, geometric, build,
                               variant=variants.get(name, ""))
            for name, transform, full, family, geometric, build in entries}


CATALOGUE.update(_extended())


def _check_augmentation_name(name: Any, parameter: str = "augmentation") -> str:
    if not isinstance(name, str) or name not in CATALOGUE:
        close = difflib.get_close_matches(str(name), list(CATALOGUE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise AugmentError(f"unknown {parameter} {name!r}.{hint} Valid names: {', '.join(CATALOGUE)} (your own "
                           f"augmentations are known once registered: register_augmentation, or "
                           f"--augmentations-from on the command line)")
    return name


def _check_intensity(intensity: Any, name: str) -> float:
    if isinstance(intensity, bool) or not isinstance(intensity, numbers.Real):
        # float() would also take "0.5" or True, and hide a mixed-up argument.
        raise AugmentError(f"intensity for {name} must be a number in [0, 1], got {intensity!r}")
    value = float(intensity)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise AugmentError(f"intensity for {name} must be in [0, 1], got {intensity!r}")
    return value


def _transform(name: str, intensity: float, height: int, width: int, rotate_method: str = "largest_box"):
    # Building an albumentations transform validates its arguments (pydantic) and
    # costs far more than applying it to a small image, so transforms are reused: by one thread
    # each, since a render seeds its transform's generator, then draws from it (two threads
    # sharing one, as shards on a thread pool executor do, would draw each other's numbers).
    return _thread_transform(name, intensity, height, width, rotate_method, threading.get_ident())


@_cached("catalogue: built transforms per thread", maxsize=8192, entry_bytes=0)
def _thread_transform(name: str, intensity: float, height: int, width: int, rotate_method: str, thread: int):
    transform = CATALOGUE[name].build(intensity, height, width)
    if transform is not None and rotate_method != "largest_box" and hasattr(transform, "rotate_method"):
        transform.rotate_method = rotate_method  # how a rotated box is enclosed; pixels are the same
    return transform


def augment_image(image: np.ndarray, name: str, intensity: float, seed: int = 0) -> np.ndarray:
    """Apply one catalogue augmentation at ``intensity`` in [0, 1] to an RGB image.

    ``image`` is (H, W, 3) uint8; the result has the same shape and dtype. The same
    ``seed`` gives the same random draws (crop position, noise field, motion angle) at
    every intensity, so a sweep over intensities is one continuous change.

    >>> import numpy as np
    >>> out = augment_image(np.full((32, 32, 3), 100, np.uint8), "Brighten", 0.5)
    >>> int(out[0, 0, 0])
    227
    """
    _check_augmentation_name(name)
    return _apply_augmentation(_as_rgb(image, "image"), name, _check_intensity(intensity, name), seed)


def augmentation_seed(image: np.ndarray, name: str, seed: int = 0) -> int:
    """The seed of one image's random draws (crop position, noise, motion angle) for ``name``.

    Derived from the search ``seed``, the image's pixels and the augmentation, never from a
    file's path: the same images searched from another folder, by another path, or as
    arrays get the same draws and the same boundaries. ``augment_image(image, name, t,
    augmentation_seed(image, name, seed))`` is the image the search showed the model.

    >>> image = np.zeros((8, 8, 3), np.uint8)
    >>> augmentation_seed(image, "Brighten") == augmentation_seed(image.copy(), "Brighten")
    True
    """
    return _derive_seed(seed, _image_digest(image), name)


# Brighten, Darken and the six channel shifts map each channel's value on its own (RandomBrightnessContrast
# without contrast adds to every channel, RGBShift to one): their result is a 256-entry table per channel.
# Built-ins whose transform draws nothing at a fixed intensity (ColorJitter shuffles the order of its
# operations, but all but one are identities): the same pixels whatever the seed (tested), so no seeding.
_SEED_FREE = frozenset({
    "Contrast", "Decontrast", "Saturate", "Desaturate", "Hue", "Dehue", "GaussianBlur", "SafeRotate", "Sharpen",
    "Downscale", "HorizontalFlip", "VerticalFlip", "ZoomBlur", "DefocusBlur", "JPEG", "Scale", "Posterize", "Solarize",
})
_POINTWISE = frozenset({"Brighten", "Darken", "MoreRed", "LessRed", "MoreGreen", "LessGreen", "MoreBlue", "LessBlue"})


@_cached("catalogue: colour lookup tables", maxsize=4096, entry_bytes=768)
def _pointwise_table(name: str, intensity: float) -> np.ndarray:
    """The (256, 1, 3) table albumentations' own transform makes of every value of every channel."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    table = np.ascontiguousarray(_transform(name, intensity, 256, 1)(image=ramp)["image"])
    table.flags.writeable = False
    return table


def _apply_steps_to_image(image: np.ndarray, steps: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """``steps`` [(name, intensity)] applied in order to an (H, W, 3) uint8 image alone, each
    rendered as the search renders it with ``seed``: the pixels of ``A.Compose(transforms, seed=seed)``.

    A training transform pays for every step of every image, so consecutive pointwise colour steps
    (Brighten, Darken, the channel shifts) fold into one byte lookup table (a table of a table is exact).
    """
    import cv2

    table = None
    for name, intensity in steps:
        if name in _POINTWISE and round(intensity, 6) > 0.0:
            step = _pointwise_table(name, round(intensity, 6))[:, 0, :]  # (256, 3): value -> value, per channel
            table = step if table is None else np.take_along_axis(step, table.astype(np.intp), axis=0)
            continue
        if table is not None:
            image, table = cv2.LUT(image, np.ascontiguousarray(table[:, None, :])), None
        image = _apply_augmentation(image, name, intensity, seed)
    return image if table is None else cv2.LUT(image, np.ascontiguousarray(table[:, None, :]))


def _apply_augmentation(image: np.ndarray, name: str, intensity: float, seed: int) -> np.ndarray:
    """augment_image without the argument checks (the search's inner loop)."""
    intensity = round(intensity, 6)  # transforms are cached per rounded intensity; below 5e-7 is 0
    if intensity == 0.0:
        return image.copy()
    if name in _POINTWISE and image.ndim == 3 and image.shape[2] == 3:
        import cv2  # one lookup instead of albumentations' per-call machinery: the same pixels (tested)

        return cv2.LUT(image, _pointwise_table(name, intensity))
    transform = _transform(name, intensity, image.shape[0], image.shape[1])
    if transform is None:
        return image.copy()
    if name not in _SEED_FREE:  # seeding costs as much as a small image's colour change
        transform.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = np.ascontiguousarray(transform(image=image)["image"])
    if out.shape != image.shape:  # a registered build may resize only images larger than its probes
        raise AugmentError(f"augmentation {name} at intensity {intensity:g} returned an image of shape {out.shape} "
                           f"for one of {image.shape}: an augmentation must keep the image's size")
    return out
