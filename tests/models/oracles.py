"""Importable oracle models for CLI tests (``--predict tests/models/oracles.py:bright``)."""

import numpy as np


def bright(images):
    """Batched: 1 where the mean pixel is above 127."""
    return [int(np.asarray(image).mean() > 127) for image in images]


def bright_one(image):
    """Single image: 1 where the mean pixel is above 127."""
    return int(np.asarray(image).mean() > 127)
