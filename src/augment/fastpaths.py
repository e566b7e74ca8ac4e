"""Fast pixel paths: the catalogue's own subclasses of albumentations transforms that give the same
pixels faster (cached superpixel segments and elastic fields, byte lookup tables, fixed-point noise),
and the bounded caches they keep."""

from __future__ import annotations

import json
import math
import numbers

import numpy as np

from .helpers import _BoundedCache, _cached, _image_digest, _made_on_first_use, _owned_cache, _PerThreadCache

# SLIC runs on a copy at most this many px on the short side: its cost grows with the pixels
# (128 px: 7 ms per image, 72 px: 2.5 ms, 1.3 ms at 5 iterations), and a training transform
# segments every new image. (64 px would place 121 SLIC centres on a square image, not 100.)
_SLIC_SIDE = 72
_SLIC_ITERATIONS = 5  # of k-means; scikit-image's default 10 moves few pixels after the fifth
_BLUR_SIGMA_AT_WORK = 3.0
_DISK_RADIUS_AT_WORK = 5.0
_MOTION_ADDS = 50_000_000  # element additions one MotionBlur render may cost (~50 ms)
_MOTION_POINTS_PER_LOST_PIXEL = 6
# The elastic field is drawn smoothed at this sigma (px) and upsampled: smoothing a full-size
# field at sigma 6 % of the short side took 6 ms of a 224 px image; a smooth field loses nothing.
_ELASTIC_SIGMA_AT_WORK = 3.0


_SEGMENTS = _owned_cache("fastpaths: superpixel segments per image", _BoundedCache(256 * 2**20))
_FIELDS = _owned_cache("fastpaths: elastic displacement fields per size and seed", _BoundedCache(256 * 2**20))


def _upsampled(field: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if field.shape == (height, width):
        return field
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)


def _superpixel_segments(image: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """SLIC segments of one image and each segment's mean colour, computed once per image.

    scikit-image's SLIC (what albumentations 1.x called; 2.x ships a slower NumPy port)
    runs on the image area-resized to at most ``_SLIC_SIDE`` px on the short side, and the
    segment means come from that copy (area averaging keeps means); the segment map is
    scaled back by nearest neighbour. Returns (positions (H, W) uint8 or int segment index,
    means (segments, C) uint8).
    """
    key = (_image_digest(image), n_segments)
    return _SEGMENTS.get_or_make(key, lambda: _segment(image, n_segments))


def _segment(image: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from skimage.segmentation import slic

    height, width = image.shape[:2]
    scale = min(1.0, _SLIC_SIDE / min(height, width))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    # Without the connectivity pass, as albumentations' port: n_segments means n superpixels.
    segments = slic(small, n_segments=n_segments, compactness=10, max_num_iter=_SLIC_ITERATIONS, start_label=0,
                    channel_axis=-1, enforce_connectivity=False)
    _, positions = np.unique(segments, return_inverse=True)
    positions = positions.reshape(segments.shape).astype(np.uint16)
    flat = positions.ravel()
    counts = np.bincount(flat).astype(np.float64)
    means = np.stack([np.bincount(flat, weights=small.reshape(-1, small.shape[2])[:, c].astype(np.float64))
                      for c in range(small.shape[2])], axis=1) / counts[:, None]
    if scale < 1.0:
        positions = cv2.resize(positions, (width, height), interpolation=cv2.INTER_NEAREST)
    if len(means) <= 256:
        positions = positions.astype(np.uint8)
    return positions, np.clip(np.round(means), 0, 255).astype(np.uint8)


def _elastic_unit_fields(height: int, width: int, sigma: float, approximate: bool, noise: str, state: str):
    """The smoothed random displacement field at alpha=1 for one generator state.

    Returns (dx, dy, state after the draw as JSON); dx and dy are (H, W), or smaller where
    ``sigma`` is over ``_ELASTIC_SIGMA_AT_WORK`` px (upsample them; values are full-size
    pixels): the field is drawn on a grid scaled so that its sigma is that. Up to that sigma
    it is albumentations' own field; alpha only scales it, so a sweep over intensities
    draws and smooths it once.
    """
    key = (height, width, sigma, approximate, noise, state)
    return _FIELDS.get_or_make(key, lambda: _draw_elastic_fields(*key))


def _draw_elastic_fields(height: int, width: int, sigma: float, approximate: bool, noise: str, state: str):
    from albumentations.augmentations.geometric import functional as fgeometric

    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = json.loads(state)
    factor = max(1.0, sigma / _ELASTIC_SIGMA_AT_WORK)
    shape = (max(1, round(height / factor)), max(1, round(width / factor)))
    dx, dy = fgeometric.generate_displacement_fields(
        shape, 1.0, sigma / factor, same_dxdy=False, kernel_size=(17, 17) if approximate else (0, 0),
        random_generator=generator, noise_distribution=noise)
    if factor > 1.0:  # smoothed white noise is ``factor`` times stronger at a sigma ``factor`` times
        # smaller (its std goes as 1 / sigma in 2-D): scaled back, alpha means albumentations' alpha
        dx, dy = dx / np.float32(factor), dy / np.float32(factor)
    dx.flags.writeable = dy.flags.writeable = False
    return dx, dy, json.dumps(generator.bit_generator.state)


@_cached("fastpaths: pixel coordinate grids", maxsize=2)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :], (height, width)).copy()
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width)).copy()
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def _bilinear(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``grid`` (H, W) sampled at points inside it, by bilinear interpolation."""
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    x1, y1 = np.minimum(x0 + 1, grid.shape[1] - 1), np.minimum(y0 + 1, grid.shape[0] - 1)
    fx, fy = xs - x0, ys - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
    bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


_BUFFERS = _owned_cache("fastpaths: elastic warp maps (one pair per thread)", _PerThreadCache())


def _map_buffers(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (H, W) float32 buffers this thread reuses for the elastic warp's maps.

    A fresh 36 MB array per render of a 3000 px photo costs more in page faults than the
    arithmetic that fills it; the maps only live until the render that made them ends.
    """
    buffers = _BUFFERS.get()
    if buffers is None or buffers[0].shape != (height, width):
        buffers = (np.empty((height, width), np.float32), np.empty((height, width), np.float32))
        _BUFFERS.put(buffers)
    return buffers


def _shift_mean(image: np.ndarray, offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted mean of ``image`` shifted by each (dy, dx) in ``offsets`` (edges reflected)."""
    import cv2

    half = int(np.abs(offsets).max()) if len(offsets) else 0
    height, width = image.shape[:2]
    padded = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REFLECT_101)
    total = np.zeros(image.shape, np.uint32 if weights.sum() > 257 else np.uint16)
    for (dy, dx), weight in zip(offsets.tolist(), weights.tolist()):
        window = padded[half + dy:half + dy + height, half + dx:half + dx + width]
        total += window if weight == 1 else window.astype(total.dtype) * weight
    return np.rint(total * np.float32(1.0 / weights.sum())).astype(np.uint8)


def _cached_superpixels() -> type:
    import albumentations as A
    import cv2

    class CachedSuperpixels(A.Superpixels):
        """albumentations' Superpixels with the segmentation computed once per image.

        ``p_replace`` (the intensity) only picks which segments are replaced, so a sweep
        segments each image once; the parameter draws are albumentations' own.
        """

        def apply(self, img, replace_samples, n_segments, **params):
            if not np.any(replace_samples):
                return img
            positions, means = _superpixel_segments(img, n_segments)
            replace = np.asarray(replace_samples)[np.arange(len(means)) % len(replace_samples)]
            if len(means) > 256 or img.ndim != 3 or img.shape[2] != 3:
                return np.where(replace[positions][..., None], means[positions], img)
            # Table lookups (cv2.LUT) instead of fancy indexing: ~5x faster at 224 px.
            colours = np.zeros((256, 1, 3), np.uint8)
            colours[:len(means), 0] = means
            chosen = np.zeros(256, np.uint8)
            chosen[:len(means)] = np.where(replace, 255, 0)
            out = img.copy()
            cv2.copyTo(cv2.LUT(cv2.merge([positions, positions, positions]), colours), cv2.LUT(positions, chosen),
                       out)
            return out

    return CachedSuperpixels


def _cached_elastic_transform() -> type:
    import albumentations as A
    import cv2

    class CachedElasticTransform(A.ElasticTransform):
        """albumentations' ElasticTransform; the alpha=1 field is cached per seed and shape
        (drawn on a grid where its sigma is ``_ELASTIC_SIGMA_AT_WORK`` px, then upsampled)."""

        def get_params_dependent_on_data(self, params, data):
            height, width = params["shape"][:2]
            dx, dy, after = _elastic_unit_fields(height, width, float(self.sigma), bool(self.approximate),
                                                 self.noise_distribution,
                                                 json.dumps(self.random_generator.bit_generator.state))
            self.random_generator.bit_generator.state = json.loads(after)
            xs, ys = _pixel_grid(height, width)
            map_x, map_y = _map_buffers(height, width)
            for unit, grid, out in ((dx, xs, map_x), (dy, ys, map_y)):
                if unit.shape != out.shape:
                    unit = cv2.resize(unit, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
                cv2.scaleAdd(unit, float(self.alpha), grid, dst=out)
            return {"map_x": map_x, "map_y": map_y}

        def apply_to_keypoints(self, keypoints, map_x, map_y, **params):
            """Every point moves with the pixels, in order, inside the frame or out of it.

            A pixel at (x, y) of the output comes from (map_x, map_y) of the input, so a point
            p of the input lands where map(q) = p: solved by q <- p - d(q), d = map - identity,
            which converges because the smooth field's slope is well below 1. (albumentations'
            own methods drop points whose pixel is lost, or are slow on large images.)
            """
            if len(keypoints) == 0:
                return keypoints
            height, width = map_x.shape
            moved = np.array(keypoints, dtype=np.float64, copy=True)
            target = moved[:, :2].copy()
            points = target.copy()
            for _ in range(20):
                xs, ys = np.clip(points[:, 0], 0, width - 1), np.clip(points[:, 1], 0, height - 1)
                shift = np.stack([_bilinear(map_x, xs, ys) - xs, _bilinear(map_y, xs, ys) - ys], axis=1)
                points = target - shift
            moved[:, :2] = points
            return moved.astype(np.asarray(keypoints).dtype)

        def apply(self, img, map_x, map_y, **params):
            if img.ndim != 3 or img.shape[2] > 4 or not isinstance(self.fill, numbers.Real):
                return super().apply(img, map_x=map_x, map_y=map_y, **params)
            # What albumentations computes, without stacking both maps into one new array first.
            return cv2.remap(img, map_x, map_y, self.interpolation, borderMode=self.border_mode,
                             borderValue=(self.fill,) * 4)

    return CachedElasticTransform


def _scaled_gaussian_blur() -> type:
    import albumentations as A
    import cv2

    class ScaledGaussianBlur(A.GaussianBlur):
        """albumentations' GaussianBlur for sigma above 3 px, on an area-downscaled copy.

        The copy is made so small that sigma is 3 of its pixels; area downscaling and linear
        upscaling add variances of 1/12 and 1/6 of a copy pixel squared, taken off sigma.
        """

        def apply(self, img, kernel, **params):
            sigma = float(self.sigma_limit[0])
            height, width = img.shape[:2]
            factor = sigma / _BLUR_SIGMA_AT_WORK
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            spread = [math.sqrt(max((sigma * n / full) ** 2 - 0.25, 0.01)) for n, full in zip(size, (width, height))]
            # Mirrored about the image's edge (not an edge pixel's centre, which is half a copy
            # pixel inside): what reflecting the full-size image about its edge pixel becomes.
            small = cv2.GaussianBlur(small, (0, 0), sigmaX=spread[0], sigmaY=spread[1], borderType=cv2.BORDER_REFLECT)
            return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)

    return ScaledGaussianBlur


def _shift_sum_motion_blur() -> type:
    import albumentations as A
    import cv2

    class ShiftSumMotionBlur(A.MotionBlur):
        """albumentations' MotionBlur (same kernel draws) applied as a mean of shifted copies.

        The kernel is a one-pixel line of equal weights, so correlating with it is the
        mean of the image shifted to each point of the line (equal to filter2D's result up
        to rounding). Long lines on large images run on a downscaled copy (see above).
        """

        def apply(self, img, kernel, **params):
            ys, xs = np.nonzero(kernel)
            if img.dtype != np.uint8 or not np.all(kernel[ys, xs] == kernel[ys[0], xs[0]]):
                return super().apply(img, kernel=kernel, **params)
            center = kernel.shape[0] // 2
            height, width = img.shape[:2]
            # Shrink only as far as the work needs: len(ys) * img.size / factor**3 adds.
            factor = min((len(ys) * img.size / _MOTION_ADDS) ** (1 / 3), len(ys) / _MOTION_POINTS_PER_LOST_PIXEL)
            if factor <= 1.0:
                offsets = np.stack([ys - center, xs - center], axis=1)
                return _shift_mean(img, offsets, np.ones(len(ys), np.int64))
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            scaled = np.rint(np.stack([(ys - center) * size[1] / height, (xs - center) * size[0] / width], axis=1))
            offsets, weights = np.unique(scaled.astype(np.int64), axis=0, return_counts=True)
            return cv2.resize(_shift_mean(small, offsets, weights), (width, height), interpolation=cv2.INTER_LINEAR)

    return ShiftSumMotionBlur


def _byte_multiplicative_noise() -> type:
    import albumentations as A
    import cv2

    class ByteMultiplicativeNoise(A.MultiplicativeNoise):
        """albumentations' per-pixel MultiplicativeNoise drawn as bytes and applied by OpenCV.

        The multiplier of each pixel (the same on every channel, as albumentations draws it
        with per_channel=False) is uniform in [1 - i, 1 + i] on 256 levels and applied in
        fixed point (1/127 steps, at most one grey level from the float product): a
        3000 px photo in ~50 ms instead of ~500 ms of float arrays.
        """

        def get_params_dependent_on_data(self, params, data):
            image = data["image"]
            if image.dtype != np.uint8 or image.ndim != 3 or not self.elementwise or self.per_channel:
                return super().get_params_dependent_on_data(params, data)
            low, high = self.multiplier
            levels = low + (high - low) * (np.arange(256) + 0.5) / 256
            table = np.clip(np.rint(levels * 127), 0, 255).astype(np.uint8)
            draws = self.random_generator.integers(0, 256, image.shape[:2], dtype=np.uint8)
            return {"multiplier": cv2.LUT(draws, table), "fixed_point": True}

        def apply(self, img, multiplier, fixed_point=False, **params):
            if not fixed_point:
                return super().apply(img, multiplier=multiplier, **params)
            return cv2.multiply(img, cv2.merge([multiplier] * img.shape[2]), scale=1 / 127)

    return ByteMultiplicativeNoise


def _byte_pixel_dropout() -> type:
    import albumentations as A
    import cv2

    class BytePixelDropout(A.PixelDropout):
        """albumentations' PixelDropout with the drop mask drawn as 16-bit integers.

        A pixel is dropped when its draw is below ``dropout_prob`` (on 65,536 levels), so
        one seed's masks are nested as the intensity grows, as with albumentations' float
        draws, at a fifth of the cost on large photos.
        """

        def get_params_dependent_on_data(self, params, data):
            image = data.get("image")
            if (image is None or image.ndim != 3 or self.per_channel or self.mask_drop_value is not None
                    or self.drop_value != 0):
                return super().get_params_dependent_on_data(params, data)
            draws = self.random_generator.integers(0, 65536, image.shape[:2], dtype=np.uint16)
            return {"drop_mask": draws < round(self.dropout_prob * 65536), "drop_values": self.drop_value,
                    "mask_drop_mask": None, "mask_drop_values": None}

        def apply(self, img, drop_mask, drop_values, **params):
            if drop_mask.ndim != 2 or img.ndim != 3:
                return super().apply(img, drop_mask=drop_mask, drop_values=drop_values, **params)
            return cv2.bitwise_and(img, img, mask=np.logical_not(drop_mask).view(np.uint8))  # dropped: 0

    return BytePixelDropout


_DRAWS = _owned_cache("fastpaths: noise draws per shape and seed", _BoundedCache(256 * 2**20))
_SHOT_LEVELS = 4096  # quantiles of each grey level's photon count (12-bit draws)


def _cached_draws(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """One seed's random field for one shape, drawn once (read-only).

    A sweep renders every intensity of one image with one seed, so the noise
    augmentations scale or threshold the same draws: each intensity costs a pass of
    OpenCV over bytes, and the noise at a higher intensity contains the lower one.
    ``normal``: int16 standard normal in 1/256 steps (a 16-bit uniform draw through the
    normal quantile function: tails beyond 4.3 sigma cut); ``uniform``: uint16 uniform on
    65,536 levels; ``quantile``: uint16 on ``_SHOT_LEVELS``.
    """
    def draw() -> np.ndarray:
        levels = _SHOT_LEVELS if kind == "quantile" else 65536
        values = np.random.default_rng(seed).integers(0, levels, shape, dtype=np.uint16)
        if kind == "normal":
            values = _normal_quantiles()[values]  # (np.take would first copy 16-bit indices to 64-bit: 15x slower)
        values.flags.writeable = False
        return values

    return _DRAWS.get_or_make((kind, shape, seed), draw)


@_cached("fastpaths: normal quantiles", maxsize=1, entry_bytes=2**17)
def _normal_quantiles() -> np.ndarray:
    """The standard normal's 65,536 quantiles (k + 0.5) / 65536 in 1/256 steps, as int16."""
    from statistics import NormalDist

    inverse = NormalDist().inv_cdf
    table = np.array([round(256 * inverse((k + 0.5) / 65536)) for k in range(65536)], np.int16)
    table.flags.writeable = False
    return table


@_cached("fastpaths: shot noise tables", maxsize=128, entry_bytes=256 * 4096)
def _shot_table(scale: float) -> np.ndarray:
    """Grey level x quantile -> grey level of albumentations' shot noise at one scale.

    albumentations draws k ~ Poisson(v^2.2 / scale) photons for a pixel of value v in
    [0, 1] and shows (k scale)^(1/2.2). Row v holds that output at the quantiles
    (j + 0.5) / ``_SHOT_LEVELS`` of the photon count: a uniform draw j picks one, so a
    pixel is a Poisson draw (tails rarer than 1 in 8,192 cut) in one table lookup.
    """
    linear = (np.arange(256) / 255.0) ** 2.2
    rates = (linear + scale * 1e-6) / scale
    photons = np.arange(int(rates.max() + 12 * math.sqrt(rates.max()) + 20))
    log_factorials = np.concatenate([[0.0], np.cumsum(np.log(photons[1:]))])
    cumulative = np.cumsum(np.exp(photons[None, :] * np.log(rates[:, None]) - rates[:, None] - log_factorials), axis=1)
    quantiles = (np.arange(_SHOT_LEVELS) + 0.5) / _SHOT_LEVELS
    drawn = np.stack([np.searchsorted(row, quantiles) for row in cumulative])  # photons at each quantile
    shown = np.clip(drawn * scale, 0, 1) ** (1 / 2.2)
    table = np.clip(np.rint(shown * 255), 0, 255).astype(np.uint8).ravel()
    table.flags.writeable = False
    return table


def _fixed_point_gauss_noise() -> type:
    import albumentations as A
    import cv2

    class FixedPointGaussNoise(A.GaussNoise):
        """albumentations' GaussNoise (zero mean, per channel) from one cached unit field.

        The field is a standard normal in 1/256 steps, drawn once per seed and shape; each
        intensity scales it and adds it with saturation in one OpenCV call (a 3000 px
        photo: ~40 ms per intensity after the first, instead of ~300 ms of float arrays).
        """

        def get_params_dependent_on_data(self, params, data):
            image = data.get("image")
            if (image is None or image.dtype != np.uint8 or not self.per_channel or self.mean_range != (0, 0)
                    or self.noise_scale_factor != 1):
                return super().get_params_dependent_on_data(params, data)
            sigma = self.py_random.uniform(*self.std_range) * 255
            seed = int(self.random_generator.integers(0, 2**31 - 1))
            return {"noise_map": None, "unit": _cached_draws("normal", image.shape, seed), "sigma": sigma}

        def apply(self, img, noise_map, unit=None, sigma=0.0, **params):
            if unit is None or unit.shape != img.shape:
                return super().apply(img, noise_map=noise_map, **params)
            noisy = cv2.addWeighted(img.astype(np.int16), 1.0, unit, sigma / 256, 0.0, dtype=cv2.CV_8U)
            return noisy.reshape(img.shape)  # OpenCV drops a single channel's axis

    return FixedPointGaussNoise


def _table_shot_noise() -> type:
    import albumentations as A

    class TableShotNoise(A.ShotNoise):
        """albumentations' ShotNoise as one lookup per pixel: (grey level, 12-bit draw) in
        ``_shot_table``; the draws are cached per seed and shape, so across a sweep the
        same pixels are lucky or unlucky and the noise grows with the intensity."""

        def apply(self, img, scale, random_seed, **params):
            if img.dtype != np.uint8:
                return super().apply(img, scale=scale, random_seed=random_seed, **params)
            table, draws = _shot_table(float(scale)), _cached_draws("quantile", img.shape, int(random_seed))
            out = np.empty_like(img)
            rows = max(1, 2**20 // max(1, img[0].size))  # in bands of ~1M values: small, cache-warm temporaries
            index = np.empty((rows, *img.shape[1:]), np.uint32)
            for top in range(0, img.shape[0], rows):
                band = slice(top, top + rows)
                part = index[:img[band].shape[0]]
                np.left_shift(img[band], 12, out=part, dtype=np.uint32)
                np.bitwise_or(part, draws[band], out=part)
                np.take(table, part, out=out[band])
            return out

    return TableShotNoise


def _nested_salt_and_pepper() -> type:
    import albumentations as A
    import cv2

    class NestedSaltAndPepper(A.SaltAndPepper):
        """albumentations' SaltAndPepper with each pixel salted or peppered by its own 16-bit
        draw (cached per seed and shape) against the amount: the noisy pixels of a lower
        intensity stay noisy at a higher one, and a 3000 px photo costs ~20 ms."""

        def get_params_dependent_on_data(self, params, data):
            image = data.get("image")
            if image is None or image.dtype != np.uint8 or image.ndim != 3:
                return super().get_params_dependent_on_data(params, data)
            amount = self.py_random.uniform(*self.amount)
            salt_share = self.py_random.uniform(*self.salt_vs_pepper)
            draws = _cached_draws("uniform", image.shape[:2], int(self.random_generator.integers(0, 2**31 - 1)))
            salt = (draws < round(amount * salt_share * 65536)).view(np.uint8) * np.uint8(255)
            pepper = (draws >= 65536 - round(amount * (1 - salt_share) * 65536)).view(np.uint8) * np.uint8(255)
            return {"salt_mask": salt, "pepper_mask": pepper}

        def apply(self, img, salt_mask, pepper_mask, **params):
            if salt_mask.dtype != np.uint8:
                return super().apply(img, salt_mask=salt_mask, pepper_mask=pepper_mask, **params)
            channels = img.shape[2]
            salted = cv2.max(img, cv2.merge([salt_mask] * channels).reshape(img.shape))
            kept = cv2.merge([cv2.bitwise_not(pepper_mask)] * channels).reshape(img.shape)
            return cv2.bitwise_and(salted, kept).reshape(img.shape)

    return NestedSaltAndPepper


def _byte_zoom_blur() -> type:
    import albumentations as A
    import cv2

    class ByteZoomBlur(A.ZoomBlur):
        """albumentations' ZoomBlur (the same centre crops and scales) resized as bytes and
        summed by OpenCV: each copy is rounded once, at most one grey level from
        albumentations' float sum, ~3x faster on large photos."""

        def apply(self, img, zoom_factors, **params):
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                return super().apply(img, zoom_factors=zoom_factors, **params)
            height, width, channels = img.shape
            total = img.astype(np.float32)
            sizes = [(max(height, int(math.ceil(height / f) * f)), max(width, int(math.ceil(width / f) * f)))
                     for f in zoom_factors]
            buffer = np.empty(max(h * w for h, w in sizes) * channels, np.uint8)  # one allocation for all copies
            for factor, (zoomed_height, zoomed_width) in zip(zoom_factors, sizes):
                crop_height, crop_width = math.ceil(height / factor), math.ceil(width / factor)
                top, left = (height - crop_height) // 2, (width - crop_width) // 2
                zoomed = buffer[:zoomed_height * zoomed_width * channels].reshape(zoomed_height, zoomed_width, channels)
                cv2.resize(img[top:top + crop_height, left:left + crop_width], (zoomed_width, zoomed_height),
                           dst=zoomed, interpolation=cv2.INTER_LINEAR)
                top, left = (zoomed_height - height) // 2, (zoomed_width - width) // 2
                cv2.accumulate(zoomed[top:top + height, left:left + width], total)
            return cv2.convertScaleAbs(total, alpha=1 / (len(zoom_factors) + 1))

    return ByteZoomBlur


def _disk_kernel(radius: float) -> np.ndarray:
    """A lens's blur disk of a fractional radius: full weight inside, the rim pixel's weight
    the share of it the disk covers (so the blur grows smoothly with the radius)."""
    reach = int(math.floor(radius + 0.5))
    ys, xs = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    weights = np.clip(radius + 0.5 - np.hypot(xs, ys), 0.0, 1.0).astype(np.float32)
    return weights / weights.sum()


def _disk_defocus() -> type:
    import albumentations as A
    import cv2

    class DiskDefocus(A.Defocus):
        """albumentations' Defocus (a lens's disk blur) with a fractional radius and no alias blur.

        albumentations rounds the radius to whole pixels (nothing happens on a small image, a
        jump at each pixel) and pads the kernel to 17 px. Radii above ``_DISK_RADIUS_AT_WORK``
        px blur an area-downscaled copy on which the radius is that many pixels, upscaled
        linearly (a 3000 px photo in ~60 ms).
        """

        def __init__(self, disk_radius: float, p: float = 1.0):
            super().__init__(radius=(1, 1), alias_blur=(0.0, 0.0), p=p)
            self.disk_radius = float(disk_radius)

        def apply(self, img, **params):
            height, width = img.shape[:2]
            factor = max(1.0, self.disk_radius / _DISK_RADIUS_AT_WORK)
            if factor == 1.0:
                blurred = cv2.filter2D(img, -1, _disk_kernel(self.disk_radius), borderType=cv2.BORDER_REFLECT_101)
                return blurred.reshape(img.shape)  # OpenCV drops a single channel's axis
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            small = cv2.filter2D(small, -1, _disk_kernel(self.disk_radius * size[0] / width),
                                 borderType=cv2.BORDER_REFLECT)
            return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).reshape(img.shape)

    return DiskDefocus


@_made_on_first_use()
def _fast_transform_classes() -> dict[str, type]:
    """The catalogue's own subclasses of albumentations transforms (built on first use, so that
    `import augment` does not import albumentations)."""
    return {"Superpixels": _cached_superpixels(), "ElasticTransform": _cached_elastic_transform(),
            "GaussianBlur": _scaled_gaussian_blur(), "MotionBlur": _shift_sum_motion_blur(),
            "MultiplicitiveNoise": _byte_multiplicative_noise(), "PixelDropout": _byte_pixel_dropout(),
            "GaussianNoise": _fixed_point_gauss_noise(), "ShotNoise": _table_shot_noise(),
            "ImpulseNoise": _nested_salt_and_pepper(), "ZoomBlur": _byte_zoom_blur(),
            "DefocusBlur": _disk_defocus()}
