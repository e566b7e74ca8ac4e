"""The augmentation catalogue: identity at 0, monotone, right channels, any reasonable shape."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from conftest import natural_images

import augment

GRID = [round(k / 20, 2) for k in range(21)]
# Resampling transforms cannot be exactly monotone: between neighbouring scales the
# pixel grid aligns differently with image content. Their allowed dip is measured,
# not assumed (see the README's catalogue table).
MONOTONE_TOLERANCE = {"Downscale": 0.07}


def test_catalogue_has_the_seed_names_in_three_groups():
    assert len(augment.ALL_AUGMENTATIONS) == 24 == len(set(augment.ALL_AUGMENTATIONS))
    built_in = {name for name, entry in augment.CATALOGUE.items() if not entry.revision}
    assert built_in == set(augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS)
    assert all(augment.CATALOGUE[n].group == "extended" for n in augment.EXTENDED_AUGMENTATIONS)
    for group, names in [("color", augment.COLOR_AUGMENTATIONS),
                         ("distortion", augment.DISTORTION_AUGMENTATIONS),
                         ("pixel_dropout", augment.PIXEL_DROPOUT_AUGMENTATIONS)]:
        assert all(augment.CATALOGUE[n].group == group for n in names)


@pytest.mark.parametrize("name", augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS)
def test_intensity_zero_is_the_identity(name):
    for image in natural_images((40, 56))[:3]:
        assert np.array_equal(augment.augment_image(image, name, 0.0, seed=7), image)
        # below the 1e-6 resolution of cached transforms is zero too (GaussianBlur once gave black)
        assert np.array_equal(augment.augment_image(image, name, 4e-7, seed=7), image)


@pytest.mark.parametrize("name", augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS)
def test_larger_intensity_never_changes_natural_images_less(name):
    tolerance = MONOTONE_TOLERANCE.get(name, 0.03)
    for size in [(48, 64), (32, 32)]:
        images = natural_images(size)
        change = np.zeros(len(GRID))
        for k, image in enumerate(images):
            for j, t in enumerate(GRID):
                out = augment.augment_image(image, name, t, seed=k)
                change[j] += np.abs(out.astype(float) - image).mean() / len(images)
        assert change[-1] > change[1] and change[-1] > 0, f"{name} at {size}: {change}"
        dips = [(GRID[j + 1], change[j] - change[j + 1]) for j in range(len(GRID) - 1)
                if change[j] - change[j + 1] > tolerance * change.max()]
        assert not dips, f"{name} at {size} changes less at higher intensity: {dips}"


def test_channel_names_follow_rgb_order():
    image = np.full((20, 20, 3), 128, np.uint8)
    for channel, (less, more) in enumerate([("LessRed", "MoreRed"), ("LessGreen", "MoreGreen"),
                                            ("LessBlue", "MoreBlue")]):
        lowered = augment.augment_image(image, less, 0.5).astype(int)
        raised = augment.augment_image(image, more, 0.5).astype(int)
        others = [c for c in range(3) if c != channel]
        assert (lowered[..., channel] < 128).all() and (lowered[..., others] == 128).all(), less
        assert (raised[..., channel] > 128).all() and (raised[..., others] == 128).all(), more


def test_brighten_and_darken_match_albumentations_applied_directly():
    image = natural_images((32, 32))[0]
    reference = A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3), contrast_limit=(0, 0), p=1)
    assert np.array_equal(augment.augment_image(image, "Brighten", 0.3), reference(image=image)["image"])
    reference = A.RandomBrightnessContrast(brightness_limit=(-0.3, -0.3), contrast_limit=(0, 0), p=1)
    assert np.array_equal(augment.augment_image(image, "Darken", 0.3), reference(image=image)["image"])


def test_superpixels_replaces_the_drawn_share_of_segments_by_their_mean_colour():
    from skimage.segmentation import slic

    image = natural_images((224, 224))[0]
    positions, means = augment._superpixel_segments(image, 100)
    assert 90 <= len(means) <= 100  # n_segments=100: one per SLIC grid centre that keeps pixels
    full = slic(image, n_segments=100, compactness=10, start_label=0, enforce_connectivity=False)
    assert abs(len(np.unique(full)) - len(means)) <= 10  # the 72 px working size changes little
    for p in (0.0, 0.3, 1.0):
        out = augment.augment_image(image, "Superpixels", p, seed=11)
        replaced = [k for k in range(len(means)) if np.all(out[positions == k] == means[k])
                    and not np.all(image[positions == k] == means[k])]
        assert abs(len(replaced) / len(means) - p) <= 0.2, (p, len(replaced), len(means))
        untouched = np.isin(positions, replaced, invert=True)
        assert np.array_equal(out[untouched], image[untouched])


def test_motion_blur_equals_albumentations_filter2d_up_to_rounding():
    image = natural_images((224, 224))[1]
    for size in (5, 31, 67):
        reference = A.MotionBlur(blur_limit=(size, size), allow_shifted=False, p=1)
        fast = augment._fast_transform_classes()["MotionBlur"](blur_limit=(size, size), allow_shifted=False, p=1)
        for seed in (1, 2):
            reference.set_random_seed(seed)
            fast.set_random_seed(seed)
            expected, got = reference(image=image)["image"], fast(image=image)["image"]
            difference = np.abs(expected.astype(int) - got.astype(int))
            assert difference.max() <= 1 and difference.mean() < 0.05, (size, seed, difference.mean())


def test_cached_elastic_equals_albumentations_elastic_and_reuses_the_field():
    image = natural_images((96, 128))[2]
    for alpha in (3.0, 30.0):  # sigma 3 px: the field is albumentations' own, drawn at full size
        reference = A.ElasticTransform(alpha=alpha, sigma=3.0, p=1)
        cached = augment._fast_transform_classes()["ElasticTransform"](alpha=alpha, sigma=3.0, p=1)
        reference.set_random_seed(5)
        cached.set_random_seed(5)
        assert np.array_equal(reference(image=image)["image"], cached(image=image)["image"])
        # the generator ends in the same state, so later draws are unchanged too
        assert reference.random_generator.bit_generator.state == cached.random_generator.bit_generator.state
    assert augment.cache_info()["fastpaths: elastic displacement fields per size and seed"]["hits"] >= 1


def displacement(transform, image: np.ndarray, seed: int) -> np.ndarray:
    """|map - identity| (px) of one draw of an elastic transform on ``image``."""
    transform.set_random_seed(seed)
    params = transform.get_params_dependent_on_data({"shape": image.shape}, {"image": image})
    if "map_x" in params:
        map_x, map_y = params["map_x"], params["map_y"]
    else:  # albumentations 2.x: the displacement fields themselves
        height, width = image.shape[:2]
        map_x = params["dx"] + np.arange(width)[None, :] if "dx" in params else None
        map_y = params["dy"] + np.arange(height)[:, None] if "dy" in params else None
    xs, ys = np.meshgrid(np.arange(image.shape[1]), np.arange(image.shape[0]))
    return np.hypot(map_x - xs, map_y - ys)


def test_a_wide_elastic_field_is_drawn_small_and_moves_pixels_as_far_and_as_smoothly_as_albumentations():
    # sigma 12 px: the field is drawn on a grid 4x smaller (sigma 3 there) and upsampled, which is
    # what made the transform fast; its displacements are the same size and as smooth as the full one
    image = natural_images((192, 256))[2]
    ours, theirs = [], []
    for seed in range(12):
        for sink, transform in ((ours, augment._fast_transform_classes()["ElasticTransform"]),
                                (theirs, A.ElasticTransform)):
            sink.append(displacement(transform(alpha=40.0, sigma=12.0, p=1), image, seed))
    ours_mean, theirs_mean = np.mean([d.mean() for d in ours]), np.mean([d.mean() for d in theirs])
    assert abs(ours_mean / theirs_mean - 1) < 0.2, (ours_mean, theirs_mean)
    # smooth: neighbouring pixels move alike, as much as in albumentations' own field
    def roughness(fields):
        return np.mean([np.abs(np.diff(d, axis=1)).mean() / d.mean() for d in fields])

    assert roughness(ours) < 1.5 * roughness(theirs), (roughness(ours), roughness(theirs))


@pytest.mark.parametrize("name", augment.ALL_AUGMENTATIONS + augment.EXTENDED_AUGMENTATIONS)
def test_runs_on_gray_non_square_and_small_images(name):
    photo = natural_images((40, 72))[1]
    gray = np.repeat(photo.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    for image in [photo, gray, photo[:16, :16], photo[:16, :40], photo[:, :, 0]]:
        out = augment.augment_image(image, name, 0.7, seed=3)
        assert out.shape[:2] == image.shape[:2] and out.shape[2] == 3 and out.dtype == np.uint8


def test_same_seed_same_pixels_and_other_seed_other_pixels():
    image = natural_images((32, 32))[0]
    first = augment.augment_image(image, "ElasticTransform", 0.6, seed=1)
    assert np.array_equal(first, augment.augment_image(image, "ElasticTransform", 0.6, seed=1))
    assert not np.array_equal(first, augment.augment_image(image, "ElasticTransform", 0.6, seed=2))


def test_bad_names_and_intensities_are_named_in_the_error():
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="Did you mean 'Brighten'"):
        augment.augment_image(image, "Brigthen", 0.5)
    with pytest.raises(ValueError, match=r"intensity for Hue must be in \[0, 1\], got 1.5"):
        augment.augment_image(image, "Hue", 1.5)
    with pytest.raises(ValueError, match="uint8"):
        augment.augment_image(image.astype(np.float32), "Hue", 0.5)


# -- large photos: what scales keeps to the exact operation ---------------------------------

SCALED = ["GaussianBlur", "MotionBlur", "ElasticTransform", "MultiplicitiveNoise", "PixelDropout", "Superpixels"]


@pytest.mark.parametrize("name", SCALED)
def test_the_scaled_paths_keep_identity_and_monotonicity_on_a_large_photo(name):
    photo = natural_images((900, 1000))[0]
    assert np.array_equal(augment.augment_image(photo, name, 0.0, seed=3), photo)
    changes = [np.abs(augment.augment_image(photo, name, t, seed=3).astype(float) - photo).mean()
               for t in (0.05, 0.2, 0.4, 0.7, 1.0)]
    assert all(b >= a * 0.97 for a, b in zip(changes, changes[1:])) and changes[0] > 0, changes


def test_a_large_gaussian_blur_is_close_to_the_exact_one():
    import cv2

    photo = natural_images((600, 640))[1]
    for intensity in (0.1, 0.5, 1.0):
        sigma = intensity * 0.08 * 600  # 4.8 to 48 px: all on the downscaled path
        exact = cv2.GaussianBlur(photo, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).astype(float)
        difference = np.abs(augment.augment_image(photo, "GaussianBlur", intensity) - exact)
        assert difference.mean() < 0.4 and np.percentile(difference, 99.9) <= 2, (intensity, difference.mean())


def test_a_long_motion_blur_on_a_large_photo_is_close_to_albumentations():
    photo = natural_images((768, 800))[2]
    for size in (41, 231):  # about 3 and 15 pixels of the line per pixel lost across it
        reference = A.MotionBlur(blur_limit=(size, size), allow_shifted=False, p=1)
        fast = augment._fast_transform_classes()["MotionBlur"](blur_limit=(size, size), allow_shifted=False, p=1)
        reference.set_random_seed(4)
        fast.set_random_seed(4)
        difference = np.abs(reference(image=photo)["image"].astype(float) - fast(image=photo)["image"])
        assert difference.mean() < 1.5 and np.percentile(difference, 99) < 10, (size, difference.mean())


def test_a_large_elastic_warp_moves_pixels_by_its_documented_amount():
    height, width = 1200, 1000
    transform = augment._transform("ElasticTransform", 1.0, height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    means = []
    for seed in range(10, 26):  # not the draws it was calibrated on
        transform.set_random_seed(seed)
        maps = transform.get_params_dependent_on_data({"shape": (height, width)}, {})
        means.append(np.hypot(maps["map_x"] - xs, maps["map_y"] - ys).mean())
    # intensity 1: mean displacement 5 % of the short side, on average (one draw varies by about 10 %)
    assert 0.045 * 1000 < np.mean(means) < 0.055 * 1000, means
    small = augment._transform("ElasticTransform", 1.0, 240, 200)
    ys, xs = np.mgrid[0:240, 0:200].astype(np.float32)
    relative = []
    for seed in range(10, 26):
        small.set_random_seed(seed)
        exact = small.get_params_dependent_on_data({"shape": (240, 200)}, {})
        relative.append(np.hypot(exact["map_x"] - xs, exact["map_y"] - ys).mean() / 200)
    assert abs(np.mean(relative) - np.mean(means) / 1000) < 0.005  # the same relative warp at both sizes


# -- the extended noise and zoom blur: the same distributions as albumentations, faster -------

def test_byte_zoom_blur_is_albumentations_zoom_blur_up_to_rounding():
    photo = natural_images((150, 200))[1]
    for factor in (1.03, 1.15, 1.3):
        step = (factor - 1) / 9.5
        reference = A.ZoomBlur(max_factor=(factor, factor), step_factor=(step, step), p=1)
        fast = augment._fast_transform_classes()["ZoomBlur"](max_factor=(factor, factor), step_factor=(step, step), p=1)
        difference = np.abs(reference(image=photo)["image"].astype(int) - fast(image=photo)["image"])
        assert difference.max() <= 1 and difference.mean() < 0.2, (factor, difference.mean())


def test_fixed_point_gaussian_noise_has_the_asked_deviation_per_channel():
    flat = np.full((300, 300, 3), 128, np.uint8)
    for std in (0.02, 0.1, 0.15, 0.4):  # 0.4: clipped at 0 and 255 as albumentations clips
        # albumentations' float path is the definition (its uint8 path loses ~0.4 grey level of deviation)
        reference = A.GaussNoise(std_range=(std, std), p=1)(image=flat.astype(np.float32) / 255)["image"]
        reference = np.clip(reference, 0, 1) * 255 - 128
        noise = augment._fast_transform_classes()["GaussianNoise"](std_range=(std, std), p=1)(image=flat)["image"]
        noise = noise.astype(float) - 128
        assert np.allclose(noise.std(axis=(0, 1)), reference.std(axis=(0, 1)), rtol=0.03), (std, noise.std())
        assert abs(noise.mean()) < 0.05 * std * 255 + 0.5
        assert abs(np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]) < 0.02  # channels independent


def test_table_shot_noise_draws_albumentations_distribution_per_grey_level():
    from scipy.stats import ks_2samp

    for scale in (0.02, 0.3):
        reference = A.ShotNoise(scale_range=(scale, scale), p=1)
        fast = augment._fast_transform_classes()["ShotNoise"](scale_range=(scale, scale), p=1)
        reference.set_random_seed(1)
        fast.set_random_seed(1)
        for level in (3, 60, 200, 255):
            flat = np.full((100, 100, 3), level, np.uint8)
            expected, got = reference(image=flat)["image"].ravel(), fast(image=flat)["image"].ravel()
            assert ks_2samp(expected, got).pvalue > 1e-3, (scale, level)
            assert abs(expected.mean() - got.mean()) < 0.05 * expected.std() + 0.5, (scale, level)


def test_noise_of_one_seed_grows_with_the_intensity_on_the_same_pixels():
    photo = natural_images((120, 160))[0]
    low, high = (augment.augment_image(photo, "ImpulseNoise", t, seed=5) for t in (0.3, 0.7))
    hit_low, hit_high = (low != photo).any(axis=2), (high != photo).any(axis=2)
    assert hit_low.sum() > 0 and np.all(hit_high[hit_low])  # every noisy pixel stays noisy
    assert abs((augment.augment_image(np.full((200, 200, 3), 128, np.uint8), "ImpulseNoise", 1.0, seed=5)
                != 128).any(axis=2).mean() - 0.3) < 0.01  # intensity 1: 30 % of pixels
    for name in ("GaussianNoise", "ShotNoise"):
        a, b = (augment.augment_image(photo, name, t, seed=5).astype(float) - photo for t in (0.2, 0.6))
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.5, name  # the same draws, scaled


def test_defocus_is_a_disk_blur_of_fractional_radius_at_every_size():
    import cv2

    photo = natural_images((600, 640))[2]
    for radius in (0.8, 3.3, 7.5, 24.0):  # 24: on the downscaled path
        exact = cv2.filter2D(photo, -1, augment._disk_kernel(radius), borderType=cv2.BORDER_REFLECT_101)
        got = augment._fast_transform_classes()["DefocusBlur"](disk_radius=radius, p=1)(image=photo)["image"]
        difference = np.abs(exact.astype(float) - got)
        assert difference.mean() < (0.01 if radius < 5 else 0.6), (radius, difference.mean())
    kernel = augment._disk_kernel(2.0)
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-6 and kernel[2, 2] == kernel.max()
    # the same relative blur on a small and a large copy of one scene
    small = cv2.resize(photo, (320, 300), interpolation=cv2.INTER_AREA)
    blurred_large = augment.augment_image(photo, "DefocusBlur", 0.8, seed=0)
    blurred_small = augment.augment_image(small, "DefocusBlur", 0.8, seed=0)
    shrunk = cv2.resize(blurred_large, (320, 300), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(float) - blurred_small).mean() < 1.5


@pytest.mark.parametrize("name", ["GaussianNoise", "ShotNoise", "ImpulseNoise", "ZoomBlur", "DefocusBlur"])
def test_the_fast_paths_keep_a_single_channel_axis_inside_a_compose(name):
    transform = A.Compose([augment._transform(name, 0.8, 64, 64)])
    grey = np.full((64, 64, 1), 100, np.uint8)
    assert transform(image=grey)["image"].shape == (64, 64, 1)


def test_the_draw_cache_counts_an_item_made_by_two_threads_at_once_once():
    import threading

    cache, barrier = augment._BoundedCache(64 * 2**20), threading.Barrier(8)

    def make():
        barrier.wait(timeout=10)  # every thread misses before any stores
        return np.zeros(2**20, np.uint8)

    threads = [threading.Thread(target=cache.get_or_make, args=("key", make)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes == 2**20 and len(cache._items) == 1


@pytest.mark.parametrize("name", sorted(augment._POINTWISE))
def test_the_lookup_table_path_gives_albumentations_pixels(name):
    images = natural_images((48, 64)) + [np.random.default_rng(1).integers(0, 256, (33, 17, 3), dtype=np.uint8)]
    for intensity in (0.05, 0.3, 0.77, 1.0):
        for image in images:
            expected = augment._transform(name, intensity, *image.shape[:2])(image=image)["image"]
            assert np.array_equal(augment.augment_image(image, name, intensity, seed=3), expected), (name, intensity)


@pytest.mark.parametrize("name", sorted(augment._SEED_FREE))
def test_augmentations_rendered_without_seeding_draw_nothing(name):
    """Each is rendered without seeding its transform: its pixels must not depend on the seed."""
    images = natural_images((48, 64)) + [np.random.default_rng(1).integers(0, 256, (33, 17, 3), dtype=np.uint8),
                                         np.random.default_rng(2).integers(0, 256, (1, 1, 3), dtype=np.uint8)]
    for intensity in (0.05, 0.3, 0.77, 1.0):
        for image in images:
            transform = augment._transform(name, intensity, *image.shape[:2])
            if transform is None:  # nothing to do at this intensity and size
                assert np.array_equal(augment._apply_augmentation(image, name, intensity, 99), image)
                continue
            outputs = []
            for seed in (0, 1, 7, 12345, 2**31 - 1):
                transform.set_random_seed(seed)
                outputs.append(transform(image=image)["image"])
            assert all(np.array_equal(outputs[0], other) for other in outputs[1:]), (name, intensity, image.shape)
            assert np.array_equal(augment._apply_augmentation(image, name, intensity, 99), outputs[0])


def test_the_render_caches_are_bounded_by_entries_too():
    cache = augment._BoundedCache(2**30, max_items=3)
    for key in range(10):
        cache.get_or_make(key, lambda: np.zeros(4, np.uint8))
    assert list(cache._items) == [7, 8, 9] and cache.bytes == 12


def test_every_cache_is_registered_bounded_and_the_ceiling_is_the_sum_of_their_bounds():
    info = augment.cache_info()
    assert {"fastpaths: superpixel segments per image", "fastpaths: noise draws per shape and seed",
            "catalogue: built transforms per thread", "pipeline: models made by a predict_factory"} <= set(info)
    per_thread_or_model = {name for name in info if name.startswith("pipeline") or "per thread" in name}
    assert all(entry["max_entries"] for name, entry in info.items() if name not in per_thread_or_model)
    assert sum(entry["max_bytes"] or 0 for entry in info.values()) == augment.CACHE_CEILING_BYTES < 2**30


def test_clear_caches_empties_what_renders_filled_and_renders_stay_the_same():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    names = ["Superpixels", "ElasticTransform", "MultiplicitiveNoise", "Brighten", "PixelDropout"]
    before = [augment.augment_image(image, name, 0.6, seed=3) for name in names]
    filled = {name: entry["entries"] for name, entry in augment.cache_info().items() if entry["entries"]}
    assert len(filled) >= 4, filled
    augment.clear_caches()
    assert sum(entry["entries"] for entry in augment.cache_info().values()) == 0
    after = [augment.augment_image(image, name, 0.6, seed=3) for name in names]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_array_caches_hold_no_more_than_their_bounds_over_many_distinct_images():
    rng = np.random.default_rng(11)
    for k in range(60):
        image = rng.integers(0, 256, (24 + k % 7, 30 + k % 5, 3), dtype=np.uint8)
        for name in ("Superpixels", "ElasticTransform", "MultiplicitiveNoise", "PixelDropout"):
            augment.augment_image(image, name, 0.1 + (k % 9) / 10, seed=k)
    for name, entry in augment.cache_info().items():
        if entry["max_bytes"]:
            assert entry["bytes"] <= entry["max_bytes"], name
        if entry["max_entries"]:
            assert entry["entries"] <= entry["max_entries"], name


def test_clear_caches_frees_every_threads_scratch_arrays_and_resets_hits():
    import concurrent.futures
    import threading

    image = np.random.default_rng(3).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    augment.clear_caches()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        barrier = threading.Barrier(2)

        def render(seed):  # both threads alive at once: two pairs of warp maps
            barrier.wait()
            return augment.augment_image(image, "ElasticTransform", 0.7, seed=seed)

        list(pool.map(render, [1, 2]))
        maps = augment.cache_info()["fastpaths: elastic warp maps (one pair per thread)"]
        assert maps["entries"] == 2 and maps["bytes"] == 2 * 2 * 120 * 90 * 4
        augment.clear_caches()  # from this thread: the pool's threads are still alive
    info = augment.cache_info()
    assert info["fastpaths: elastic warp maps (one pair per thread)"]["bytes"] == 0
    assert all(entry.get("hits", 0) == 0 for entry in info.values())
