"""Where to ask the model: the intensity grid, the grid/adaptive/guided probes, and a search's settings.
Below both the search and the analysis file, which share them."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .helpers import AugmentError, _digest, _is_number
from .images import _Source
from .labels import _LabelFormat

_COARSE_PROBES = 5  # adaptive: probes of the coarse walk over a whole sweep


def _grid(step: float) -> list[float]:
    count = round(1.0 / step)
    return [round(i / count, 6) for i in range(count + 1)]


_FINEST_STEP = 0.001  # 1,001 intensities; finer grids cost more model calls than any boundary is worth


def _check_step(step_size_percent: Any) -> float:
    """The grid step as a fraction: below 1 it is one (0.05), from 1 up a percent (5 or 1 = 1 %)."""
    if not _is_number(step_size_percent):
        raise AugmentError(f"step_size_percent must be a number, got {step_size_percent!r}")
    step = float(step_size_percent)
    if step >= 1.0:
        step = step / 100.0  # ml-infinite-image-augment's README speaks of "5" meaning 5 %, and of 1 % steps
    if not _FINEST_STEP - 1e-12 <= step <= 0.5 or abs(1.0 / step - round(1.0 / step)) > 1e-6:
        raise AugmentError(f"step_size_percent must divide 1 into whole steps, as a fraction from "
                           f"{_FINEST_STEP} to 0.5 (0.05, 0.1, 0.25) or a percent from 1 to 50 (5 means 5 %), "
                           f"got {step_size_percent!r}")
    return step


def _grid_probe(points: int):
    """Probe every grid index 1..points at once; returns the first failing index (None: never)."""
    failed = yield tuple(range(1, points + 1))
    return next((index for index in range(1, points + 1) if failed[index]), None)


def _adaptive_probe(points: int):
    """Coarse walk up, then bisection: the first failing grid index with few measurements.

    Yields tuples of grid indices to measure and receives {index: failed}. The walk
    probes every ``stride``-th index (about ``_COARSE_PROBES`` in all) until one fails,
    then bisects between the last passing and the first failing probe down to
    neighbouring indices. It assumes that a failure, once reached, lasts over one coarse
    step; ``AugmentationCurve.adaptive_agreement`` measures that on the full-grid sample.
    """
    stride = max(1, round(points / _COARSE_PROBES))
    passed, failed_at = 0, None
    for index in [*range(stride, points, stride), points]:
        if (yield (index,))[index]:
            failed_at = index
            break
        passed = index
    if failed_at is None:
        return None
    while failed_at - passed > 1:
        middle = (passed + failed_at) // 2
        if (yield (middle,))[middle]:
            failed_at = middle
        else:
            passed = middle
    return failed_at


def _guided_probe(points: int, prior: Sequence[float] | None = None):
    """Bisection by probability: each probe splits in half the chance, learned from the images
    searched before, of where this augmentation's first failure lies.

    ``prior[i]``: how many earlier images first failed at grid index i (1..points), and
    ``prior[points + 1]`` how many never did (None: no images yet, plain bisection). Half an
    image is added to every outcome, so none is ruled out. A robust augmentation (most images
    never fail) is settled by one probe at intensity 1; failures that cluster cost about the
    entropy of where they cluster. The same monotonicity assumption as the adaptive walk.
    """
    weights = np.full(points + 2, 0.5) + (np.asarray(prior, dtype=float) if prior is not None else 0.0)
    low, high = 0, points + 1  # the first failure is in (low, high]; high == points + 1: maybe never
    while high - low > 1:
        share = np.cumsum(weights[low + 1:high + 1]) / weights[low + 1:high + 1].sum()
        candidates = range(low + 1, min(high - 1, points) + 1)  # probing m splits (low, m] from (m, high]
        middle = min(candidates, key=lambda m: (abs(share[m - low - 1] - 0.5), m))
        if (yield (middle,))[middle]:
            high = middle
        else:
            low = middle
    return high if high <= points else None


_PROBES = {"grid": _grid_probe, "adaptive": _adaptive_probe, "guided": _guided_probe}


def _start_probe(strategy: str, points: int, prior: Sequence[float] | None = None):
    """A new probe of ``strategy`` over grid indices 1..points (only the guided one uses ``prior``)."""
    return _guided_probe(points, prior) if strategy == "guided" else _PROBES[strategy](points)


def _replay_probe(strategy: str, row: Sequence[float], threshold: float,
                  prior: Sequence[float] | None = None) -> tuple[int | None, int]:
    """Run a probe against a fully measured row: (first failing index it finds, measurements used)."""
    probe, used = _start_probe(strategy, len(row) - 1, prior), 0
    try:
        request = next(probe)
        while True:
            used += len(request)
            request = probe.send({index: row[index] >= threshold for index in request})
    except StopIteration as stop:
        return stop.value, used


_GUIDED_SAMPLE = (4, 0.02)  # guided default: this many images or this share, whichever is more

# strategy="auto" (the default): the full grid up to this many (image, augmentation) pairs (40,000
# predictions at step 0.05: seconds for a small model), the guided search from there on.
_AUTO_GUIDED_FROM = 2000
_STRATEGIES = ("auto", *_PROBES)


def _resolved_strategy(strategy: Any, pairs: int) -> str:
    """``strategy`` checked, with "auto" made "grid" or "guided" by the search's size."""
    if not isinstance(strategy, str) or strategy not in _STRATEGIES:
        raise AugmentError(f"strategy must be one of {list(_STRATEGIES)}, got {strategy!r}")
    if strategy == "auto":
        return "guided" if pairs >= _AUTO_GUIDED_FROM else "grid"
    return strategy


def _not_monotone(row: Sequence[float | None], threshold: float) -> bool:
    """Whether a fully measured row passes again somewhere above its first failure."""
    first = next((i for i, d in enumerate(row) if i > 0 and d is not None and d >= threshold), None)
    return first is not None and any(d is not None and d < threshold for d in row[first + 1:])


def _needs_full_grid(not_monotone: int, rows: int) -> bool:
    """The guided search's fallback for one augmentation, from its full-grid sample rows: bisection
    finds *a* change of the output, the first one only where the output, once changed, stays changed.
    Where at least half the sample rows (and at least 3) pass again above their first failure, the
    augmentation's other images are measured on the full grid too. (On the digits CNN, whose rows
    are mostly monotone, it costs 0.07 questions per pair; on a ResNet with random weights, whose
    outputs flip back and forth, it brings agreement with the full grid from 85 % to 88 %.)"""
    return rows > 0 and not_monotone >= max(3, rows / 2)


def _grid_sample(count: int, sample: Any, seed: int, strategy: str = "adaptive") -> frozenset[int]:
    """The seeded images an adaptive or guided search measures on the whole grid (int: how many;
    float: share; None: the strategy's default, a share of 0.1 or the guided search's few)."""
    if sample is None:
        least, share = _GUIDED_SAMPLE
        sample = 0.1 if strategy != "guided" else max(min(least, count), math.ceil(share * count))
    if isinstance(sample, float) and 0.0 <= sample <= 1.0:
        size = math.ceil(sample * count)
    elif isinstance(sample, (int, np.integer)) and not isinstance(sample, bool) and sample >= 0:
        size = min(int(sample), count)
    else:
        raise AugmentError(f"grid_sample must be an int >= 0 (images) or a float in [0, 1] (share), got {sample!r}")
    order = np.random.default_rng([seed, count]).permutation(count)
    return frozenset(int(k) for k in order[:size])


@dataclass(frozen=True)
class _SearchSettings:
    """What the search, the analysis file and the report need of an augmenter's settings."""

    augmentations: tuple[str, ...]
    seed: int
    failure_threshold: float
    label_format: str | dict | None
    rotate_method: str
    model_id: str | None
    max_image_pixels: int | None
    batch_size: int
    checkpoint_seconds: float
    progress: bool
    describe: Callable[[Any], str] | None = None
    group_by: Callable[[Any], Any] | None = None
    measure_strength: bool = True  # the perceptual strengths at the end of a search

    @functools.cached_property
    def label_form(self) -> _LabelFormat:
        return _LabelFormat.of(self.label_format)

    def fingerprint(self, sources: Sequence[_Source], labels: list | None, step: float) -> str:
        """What a cached analysis must match to be resumed: the inputs and every setting that
        changes a measurement (not the augmentations: adding one reuses the others)."""
        parts = {"images": [source.identity() for source in sources],
                 "labels": None if labels is None else [_digest(label) for label in labels],
                 "step": step, "seed": self.seed, "failure_threshold": self.failure_threshold}
        if self.model_id is not None:  # absent otherwise, so caches made before model_id still match
            parts["model_id"] = self.model_id
        if self.label_form.positional:  # positional outputs are compared after moving them
            parts["label_format"] = self.label_format
            if self.label_form.kind == "bbox":  # rotated boxes compare with a range (since 0.3), whatever
                parts["rotated_boxes"] = "range"  # rotate_method says: it only decides how labels move
            else:
                parts["rotate_method"] = self.rotate_method
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
