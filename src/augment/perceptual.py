"""One perceptual scale for every augmentation: how far an augmented image looks from its original,
in ImageNet-C severity units, so that a boundary under Hue and one under blur can be compared, and
realism can be bounded by what a person would call mild."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .catalogue import _apply_augmentation, _check_augmentation_name, _check_intensity
from .helpers import AugmentError, _check_number

# Every image is compared on a copy resampled to exactly this many px on its short side (area
# averaging down, bilinear up), so a severity does not depend on the image's resolution: an
# augmentation's sizes are fractions of the short side, and the strength of a search renders it
# on that copy. SSIM there and CIEDE2000 on a copy half that size cost about 1.4 ms per pair.
_WORK_SIDE = 96
_COLOUR_SIDE = 48
# CIEDE2000 of 100 is black against white, and 1 - SSIM of unrelated images is about 1: both terms
# run from 0 to about 1, so neither decides alone.
_COLOUR_SCALE = 100.0
_STRENGTH_POINTS = 11  # intensities 0, 0.1, ..., 1 are measured; a finer grid is interpolated
_LONGEST = 1024  # px: the long side of a copy at most (a very long, thin image stays thinner than 96 px)

# The calibration: the mean perceptual distance of ImageNet-C's 15 corruptions (imagecorruptions)
# at severities 1..5 on the reference photos, written by `python tools/calibrate_severity.py`
# (which says how closely each corruption's own severities come back). Severity s lies where the
# distance is SEVERITY_DISTANCES[s - 1]; between and beyond, linearly.
SEVERITY_CALIBRATION = "imagenet-c 15 corruptions, 6 reference photos at 224 px, 96 px copies, v2"
SEVERITY_DISTANCES = (0.2227, 0.3159, 0.4063, 0.487, 0.5589)


def _resampled(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` resized so that its short side is ``side`` px (the aspect ratio kept)."""
    import cv2

    height, width = image.shape[:2]
    scale = min(side / min(height, width), _LONGEST / max(height, width))  # a 1 x 4000 strip stays small
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """perceptual_distance of two working copies (short side _WORK_SIDE px)."""
    from skimage.color import deltaE_ciede2000, rgb2gray, rgb2lab
    from skimage.metrics import structural_similarity

    if np.array_equal(a, b):
        return 0.0
    side = min(a.shape[:2])
    if side >= 3:
        window = min(7, side if side % 2 else side - 1)  # SSIM's window must fit the copy and be odd
        structure = 1.0 - structural_similarity(rgb2gray(a), rgb2gray(b), data_range=1.0, win_size=window)
    else:  # a strip too thin for a window: the luminance difference alone
        structure = float(np.abs(rgb2gray(a) - rgb2gray(b)).mean())
    small_a, small_b = _resampled(a, _COLOUR_SIDE), _resampled(b, _COLOUR_SIDE)
    colour = float(deltaE_ciede2000(rgb2lab(small_a), rgb2lab(small_b)).mean()) / _COLOUR_SCALE
    return round(max(0.0, float(structure)) + colour, 6)


def _check_rgb(image: object, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise AugmentError(f"{what} must be an (H, W, 3) uint8 RGB array (load_image makes one), got {described}")


def perceptual_distance(original: np.ndarray, augmented: np.ndarray) -> float:
    """How different two (H, W, 3) uint8 images of one size look: 1 - SSIM of their luminance
    plus their mean CIEDE2000 colour difference / 100 (0: the same picture), both on copies
    resampled to 96 px on the short side (colour on a 48 px copy).

    >>> image = np.full((16, 16, 3), 120, np.uint8)
    >>> perceptual_distance(image, image)
    0.0
    """
    _check_rgb(original, "original")
    _check_rgb(augmented, "augmented")
    if original.shape != augmented.shape:
        raise AugmentError(f"perceptual_distance needs two images of one shape, got {original.shape} and "
                           f"{augmented.shape}")
    if np.array_equal(original, augmented):
        return 0.0
    return _distance(_resampled(original, _WORK_SIDE), _resampled(augmented, _WORK_SIDE))


def distance_to_severity(distance: float, distances: Sequence[float] = SEVERITY_DISTANCES) -> float:
    """A perceptual distance in ImageNet-C severity units: 0 at distance 0, s at the corruptions'
    mean distance at severity s, linear between the points and beyond the last two.

    >>> distance_to_severity(0.0), distance_to_severity(SEVERITY_DISTANCES[2])
    (0.0, 3.0)
    """
    distance = _check_number(distance, "distance", 0.0, 1e6)
    try:
        points = np.concatenate([[0.0], np.asarray(distances, dtype=float).reshape(-1)])
    except (TypeError, ValueError):
        raise AugmentError(f"distances must be numbers, got {distances!r}") from None
    if len(points) < 3 or not np.all(np.isfinite(points)) or np.any(np.diff(points) <= 0):
        raise AugmentError(f"distances must be two or more increasing positive distances (severities 1, 2, ...), "
                           f"got {list(distances)}")
    if distance <= points[-1]:
        return round(float(np.interp(distance, points, np.arange(len(points)))), 4)
    slope = 1.0 / (points[-1] - points[-2])
    return round(float(len(points) - 1 + (distance - points[-1]) * slope), 4)


def perceptual_strength(images: Sequence[np.ndarray], name: str, intensities: Sequence[float],
                        seeds: Sequence[int]) -> list[float]:
    """Per intensity, the severity of augmentation ``name`` on ``images``: each image's 96 px copy
    rendered with its seed (an augmentation's sizes are fractions of the short side, so the copy
    shows what the full image shows) and compared with the copy; the severity of the mean
    distance. Measured at 0, 0.1, ..., 1 (or at ``intensities`` when they are fewer) and
    interpolated between.

    0 at intensity 0, and never lower at a larger intensity (a random draw can make one intensity
    look closer than a smaller one; the strength keeps the largest so far, so that a ceiling in
    severity units is one intensity).

    >>> photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> strength = perceptual_strength([photo], "GaussianBlur", [0.0, 0.5, 1.0], seeds=[0])
    >>> strength[0], strength[1] <= strength[2]
    (0.0, True)
    """
    try:
        images, seeds, intensities = list(images), [int(seed) for seed in seeds], list(intensities)
    except TypeError as exc:
        raise AugmentError(f"perceptual_strength takes a sequence of images, of seeds and of intensities ({exc})") \
            from None
    if not images or len(seeds) != len(images) or not intensities:
        raise AugmentError(f"perceptual_strength needs one or more images, one seed per image and one or more "
                           f"intensities, got {len(images)} images, {len(seeds)} seeds and {len(intensities)} "
                           f"intensities")
    name = _check_augmentation_name(name)
    intensities = [_check_intensity(intensity, name) for intensity in intensities]
    for k, image in enumerate(images):
        _check_rgb(image, f"images[{k}]")
    copies = [_resampled(image, _WORK_SIDE) for image in images]
    measured = sorted(set(intensities)) if len(set(intensities)) <= _STRENGTH_POINTS else [
        k / (_STRENGTH_POINTS - 1) for k in range(_STRENGTH_POINTS)]
    strength, largest = [], 0.0
    for intensity in measured:
        if intensity > 0.0:
            mean = float(np.mean([_distance(copy, _apply_augmentation(copy, name, intensity, seed))
                                  for copy, seed in zip(copies, seeds)]))
            largest = max(largest, distance_to_severity(mean))
        strength.append(largest)
    return [round(float(value), 4) for value in np.interp(intensities, measured, strength)]


def intensity_at_severity(strength: Sequence[float], intensities: Sequence[float], ceiling: float) -> float:
    """The largest intensity whose strength stays at or below ``ceiling`` severity units,
    interpolated between grid points (the strength is non-decreasing).

    >>> intensity_at_severity([0.0, 1.0, 2.0, 4.0], [0.0, 0.25, 0.5, 1.0], 3.0)
    0.75
    """
    if ceiling <= 0.0 or strength[0] > ceiling:
        return 0.0
    for k in range(1, len(strength)):
        if strength[k] > ceiling:
            low, high = strength[k - 1], strength[k]
            share = (ceiling - low) / (high - low) if high > low else 0.0
            return round(intensities[k - 1] + share * (intensities[k] - intensities[k - 1]), 6)
    return float(intensities[-1])


def severity_at_intensity(strength: Sequence[float], intensities: Sequence[float], intensity: float) -> float:
    """The strength (severity units) at any intensity in [0, 1], interpolated on the grid."""
    return round(float(np.interp(intensity, intensities, strength)), 4)


def realism_severity_ceiling(realism: float) -> float:
    """The perceptual ceiling of ``realism``, in ImageNet-C severity units: 3 - 2 x realism, so
    realism 0.5 stays within severity 2 (mild), 0 within 3 (an average ImageNet-C corruption's
    middle severity) and -0.5 within 4; realism 1 draws nothing either way.

    >>> realism_severity_ceiling(0.5), realism_severity_ceiling(0), realism_severity_ceiling(-0.5)
    (2.0, 3.0, 4.0)
    """
    return round(3.0 - 2.0 * _check_number(realism, "realism", -1.0, 1.0), 6)
