"""A trivial model and tiny images for benchmarks where the model must not be the cost
(importable by Dask worker processes: no torch, no augment import)."""

import numpy as np


def trivial_predict(images):
    """1 where the top-left pixel's red is above 127."""
    return [int(np.asarray(image)[0, 0, 0] > 127) for image in images]


def tiny_images(count: int) -> list[np.ndarray]:
    """``count`` 8x8 images: a smooth random field each (so every augmentation does something)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (count, 2, 2, 3), dtype=np.uint8)
    return list(np.repeat(np.repeat(base, 4, axis=1), 4, axis=2))
