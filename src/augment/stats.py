"""Statistics of one augmentation's rows: CurveSummary, bootstrap intervals of the thresholds,
first failures and the exemplar."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .helpers import _derive_seed, _format_intensity
from .probes import _replay_probe
from .rows import _Deferred, _python_row

if TYPE_CHECKING:
    from .analysis import AugmentationCurve

_NEGLIGIBLE_SHARE = 0.02  # "safe": at most this share of images changed output


@dataclass(frozen=True)
class CurveSummary:
    """One augmentation's statistics, computed once by :meth:`AugmentationCurve.summarize`.

    Thresholds come from every searched image's first failure; the curves (mean diff
    error, changed share, label accuracy) from the images measured on the whole grid.

    >>> summary = analysis.curves["Brighten"].summarize()          # doctest: +SKIP
    >>> summary.intensity_at_50, summary.safe_intensity              # doctest: +SKIP
    (0.35, 0.1)
    """

    intensities: tuple[float, ...]
    searched_images: int
    full_grid_images: int
    adaptive_agreement: float | None  # replayed on (up to 256 of) the full-grid images
    first_failure_intensities: tuple[float | None, ...]  # per image; None: never, or not searched
    failed_share: tuple[float, ...]  # per intensity: share of searched images failed at or below it
    mean_diff_error: tuple[float, ...]
    changed_share: tuple[float, ...]
    label_accuracy: tuple[float, ...] | None
    exemplar: dict | None  # the image whose first failure is closest to the 50 % intensity
    # 95 % bootstrap intervals over images of safe/10/50/90 % intensities: name -> (low, high), None = never
    intervals: dict = field(default_factory=dict)

    def intensity_at_share(self, share: float) -> float | None:
        """The lowest grid intensity by which ``share`` of the images have changed output (None: never)."""
        return next((t for t, failed in zip(self.intensities, self.failed_share) if failed >= share - 1e-9), None)

    def safe_at(self, negligible_share: float = _NEGLIGIBLE_SHARE) -> float:
        """The largest grid intensity by which at most ``negligible_share`` of images changed output."""
        safe = 0.0
        for t, failed in zip(self.intensities, self.failed_share):
            if failed > negligible_share + 1e-9:
                break
            safe = t
        return safe

    @property
    def safe_intensity(self) -> float:
        return self.safe_at()

    @property
    def intensity_at_10(self) -> float | None:
        return self.intensity_at_share(0.1)

    @property
    def intensity_at_50(self) -> float | None:
        return self.intensity_at_share(0.5)

    @property
    def intensity_at_90(self) -> float | None:
        return self.intensity_at_share(0.9)

    @property
    def onset_intensity(self) -> float:
        """Where outputs start to change non-negligibly: 10 % of images changed (1.0 if never)."""
        return 1.0 if self.intensity_at_10 is None else self.intensity_at_10

    @property
    def failure_intensity(self) -> float:
        """Where most outputs have changed: 50 % of images changed (1.0 if never)."""
        return 1.0 if self.intensity_at_50 is None else self.intensity_at_50

    def to_json(self, group: str) -> dict:
        """The summary block of ``analysis.json`` (per-image first failures are stored beside it)."""
        return {
            "group": group, "searched_images": self.searched_images, "full_grid_images": self.full_grid_images,
            "adaptive_agreement": self.adaptive_agreement, "safe_intensity": self.safe_intensity,
            "intensity_at_10": self.intensity_at_10, "intensity_at_50": self.intensity_at_50,
            "intensity_at_90": self.intensity_at_90, "onset_intensity": self.onset_intensity,
            "failure_intensity": self.failure_intensity, "failed_share": list(self.failed_share),
            "mean_diff_error": list(self.mean_diff_error),
            "changed_share": list(self.changed_share),
            "label_accuracy": list(self.label_accuracy) if self.label_accuracy is not None else None,
            "exemplar": self.exemplar,
            "confidence_intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
        }

    def interval_text(self, name: str) -> str:
        """``name``'s 95 % interval as text ("[0.30, 0.45]", ">1" for never), "" when unknown."""
        bounds = self.intervals.get(name)
        return "" if bounds is None else f"[{_format_intensity(bounds[0])}, {_format_intensity(bounds[1])}]"


class _Intensity(float):
    """A float that can also be called: ``curve.safe_intensity`` and the older ``curve.safe_intensity()``."""

    def __new__(cls, value: float, curve: AugmentationCurve):
        instance = super().__new__(cls, value)
        instance._curve = curve
        return instance

    def __call__(self, negligible_share: float = _NEGLIGIBLE_SHARE) -> float:
        return float(self._curve.summarize().safe_at(negligible_share))


# -- uncertainty: bootstrap over images ----------------------------------------------
# A threshold measured on a few dozen images is a noisy estimate. Every interval here is a
# 95 % percentile bootstrap over images (2,000 resamples, seeded): first failures take one
# of at most len(grid) + 1 values, so resampling n images with replacement is a multinomial
# draw of how many images land on each value. That is the same bootstrap as resampling the
# images one by one, at a cost that does not grow with the number of images.

_BOOTSTRAP_RESAMPLES = 2000
_CONFIDENCE = 0.95
_MIN_IMAGES = 5  # fewer images give no interval and no verdict: a bootstrap of 1-4 values says little


def _bootstrap_counts(values: np.ndarray, *seed_parts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Resamples of ``values`` (any 1-D numbers) as (distinct values, (resamples, distinct) counts)."""
    distinct, counts = np.unique(values, return_counts=True)
    generator = np.random.default_rng(_derive_seed("bootstrap", *seed_parts))
    return distinct, generator.multinomial(len(values), counts / len(values), size=_BOOTSTRAP_RESAMPLES)


def _percentile_interval(estimates: np.ndarray) -> tuple[float, float]:
    tail = (1 - _CONFIDENCE) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def _threshold_intervals(firsts: np.ndarray, grid: Sequence[float], name: str) -> dict:
    """Intervals of the safe and 10/50/90 % intensities from the searched images' first failures
    (an array, 2.0 for never; none under ``_MIN_IMAGES`` images: a bootstrap of so few values
    collapses to a point)."""
    if len(firsts) < _MIN_IMAGES:
        return {}
    never = 2.0  # sorts after every intensity; shown as ">1"
    distinct, draws = _bootstrap_counts(np.asarray(firsts, dtype=float), "thresholds", name)
    grid = np.asarray(grid, dtype=float)
    below = np.searchsorted(distinct, grid + 1e-9, side="right")  # distinct values at or below each intensity
    failed = np.concatenate([np.zeros((len(draws), 1)), np.cumsum(draws, axis=1)], axis=1)[:, below] / len(firsts)
    padded = np.append(grid, never)

    def first_index(hit: np.ndarray) -> np.ndarray:  # per resample, the first grid index hit (len(grid): none)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), len(grid))

    estimates = {f"intensity_at_{round(share * 100)}": padded[first_index(failed >= share - 1e-9)]
                 for share in (0.1, 0.5, 0.9)}
    over = first_index(failed > _NEGLIGIBLE_SHARE + 1e-9)
    estimates["safe_intensity"] = np.where(over == 0, 0.0, grid[np.maximum(over - 1, 0)])
    return {key: tuple(None if v >= never else round(v, 4) for v in _percentile_interval(values))
            for key, values in estimates.items()}


def _first_failures(curve: AugmentationCurve) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the first failing grid index (-1 never, -2 not searched) and its intensity (2.0:
    never or not searched), from the curve's columns."""
    indices = curve.diff_errors.first_indices(curve.failure_threshold)
    return indices, np.append(np.asarray(curve.intensities, dtype=float), 2.0)[np.where(indices < 0, -1, indices)]


def _first_failure_tuple(curve: AugmentationCurve, indices: np.ndarray | None = None) -> tuple:
    """Per image, its first-failure intensity (None: never, or not searched)."""
    if indices is None:
        indices = curve.diff_errors.first_indices(curve.failure_threshold)
    return tuple(None if i < 0 else curve.intensities[i] for i in indices.tolist())


def _summarize(curve: AugmentationCurve) -> CurveSummary:
    """The pure function behind every figure of a curve: rows in, frozen summary out."""
    grid, threshold = curve.intensities, curve.failure_threshold
    present = curve.diff_errors.searched_mask()
    indices, at = _first_failures(curve)
    # per image, made when first asked for (a checkpoint of a large analysis never needs the tuple)
    firsts = _Deferred(lambda: _first_failure_tuple(curve, indices))
    searched = indices[present]
    failed = (np.cumsum(np.bincount(searched[searched >= 0], minlength=len(grid))) / len(searched)).tolist() \
        if len(searched) else [0.0] * len(grid)
    full, full_rows = curve.diff_errors.complete_rows()
    rows = full_rows.astype(np.float64)
    means = np.round(rows, 7)  # the decimals the float32 values stand for (the search keeps 4)
    agreement = None
    if len(full):  # the first 256: it runs at every checkpoint
        prior = None  # guided: the probe learns where this curve's images first failed, as the search did
        if curve.strategy == "guided":
            prior = np.bincount(np.where(searched < 0, len(grid), searched), minlength=len(grid) + 1)
        probe = "guided" if curve.strategy == "guided" else "adaptive"
        agree = sum(_replay_probe(probe, _python_row(row, threshold), threshold, prior)[0]
                    == (None if indices[k] < 0 else int(indices[k])) for k, row in zip(full[:256].tolist(), full_rows))
        agreement = round(agree / min(len(full), 256), 4)
    label_accuracy = None
    if curve.label_errors is not None:
        label_values = curve.label_errors.complete_rows()[1].astype(np.float64)
        label_accuracy = tuple(round(float(v), 4) for v in (label_values < threshold).mean(axis=0)) \
            if len(label_values) else ()
    summary = CurveSummary(
        intensities=tuple(grid), searched_images=len(searched), full_grid_images=len(full),
        adaptive_agreement=agreement, first_failure_intensities=firsts, failed_share=tuple(failed),
        mean_diff_error=tuple(round(float(v), 4) for v in means.mean(axis=0)) if len(rows) else (),
        changed_share=tuple(round(float(v), 4) for v in (rows >= threshold).mean(axis=0)) if len(rows) else (),
        label_accuracy=label_accuracy, exemplar=None, intervals=_threshold_intervals(at[present], grid, curve.name))
    return dataclasses.replace(summary, exemplar=_exemplar(curve, indices, at, summary.failure_intensity))


def _exemplar(curve: AugmentationCurve, indices: np.ndarray, at: np.ndarray, failure: float) -> dict | None:
    """The representative image: its first failure is closest to the 50 % intensity (never: 1.5)."""
    searched = np.flatnonzero(indices > -2)
    if not len(searched):
        return None
    distance = np.abs(np.where(indices[searched] == -1, 1.5, at[searched]) - failure)
    best = int(searched[np.argmin(distance)])  # the first of equals: the lowest image index
    first = None if indices[best] < 0 else curve.intensities[indices[best]]
    last_index = (int(indices[best]) - 1) if first is not None else len(curve.intensities) - 1
    exemplar = {"image": best, "last_success_intensity": curve.intensities[last_index],
                "last_success_output": curve.last_success_output[best], "first_failure_intensity": first,
                "first_failure_output": curve.first_failure_output[best]}
    if curve.last_success_view is not None:
        exemplar["last_success_view"] = curve.last_success_view[best]
        exemplar["first_failure_view"] = curve.first_failure_view[best]
    return exemplar
