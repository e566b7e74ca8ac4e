"""Sampling policies: realism -> per-augmentation intensity limits (realism_max_intensity), and the
SamplingPolicy that synthesis and the training transform draw from."""

from __future__ import annotations

import difflib
import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .catalogue import CATALOGUE, _check_augmentation_name
from .files import _write_atomic
from .formats import _formats, _validated
from .helpers import (
    _CATALOGUE_VERSION,
    _LEVELS,
    _POLICY_FORMAT,
    _POLICY_VERSION,
    AugmentError,
    _check_int,
    _check_number,
    _is_int,
    _json_failure,
)


def realism_max_intensity(realism: float, onset: float, failure: float) -> float:
    """The largest intensity synthesis draws at ``realism`` (see the rule above).

    >>> realism_max_intensity(0.5, onset=0.2, failure=0.4), realism_max_intensity(0, 0.2, 0.4)
    (0.2, 0.4)
    """
    onset, failure = min(onset, failure), max(onset, failure)
    if realism >= 0.5:
        value = onset * (1.0 - realism) / 0.5
    elif realism >= 0.0:
        value = failure + (onset - failure) * realism / 0.5
    else:
        value = failure + (1.0 - failure) * min(1.0, -realism)
    return round(min(1.0, max(0.0, value)), 6)


# Weights are relative odds, bounded so that their sum stays finite (two weights of 1e308 sum to
# inf, and every draw would then fail inside numpy, mid-training).
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class SamplingPolicy:
    """How synthesis picks augmentations and intensities for one image: pure, nothing is applied.

    ``limits``: per augmentation (in order), the largest intensity drawn, which realism and
    the search decided (see :meth:`ImageAugmenter.sampling_policy`); ``weights``: relative
    odds of each (0: never); each image gets between ``fewest`` and ``most`` picks, never
    two of one catalogue family (Brighten and Darken, the blurs and Sharpen, ...), each at an
    intensity drawn uniformly from the 100 levels 1 %, 2 %, ..., 100 % of its limit (a grid 5x
    finer than the search's default step at any limit, on which built transforms are reused:
    the online transform runs at the speed of applying them, not of building them).

    >>> policy = SamplingPolicy({"Brighten": 0.3, "Darken": 0.2, "Hue": 0.5}, fewest=1, most=2)
    >>> steps, pixel_seed = policy.sample(np.random.default_rng(0))
    >>> all(0 <= t <= policy.limits[name] for name, t in steps) and 1 <= len(steps) <= 2
    True
    """

    limits: dict[str, float]
    weights: dict[str, float] = field(default_factory=dict)
    fewest: int = 3
    most: int = 8
    realism: float | None = None  # where the limits came from (for people reading a policy file)
    model_id: str | None = None
    floors: dict[str, float] = field(default_factory=dict)  # smallest intensity drawn (default 0)
    # the perceptual ceiling (ImageNet-C severity units) the limits were bounded by, for people reading
    # a policy file (with per-augmentation realism, the largest of them); None: limits from the model
    # alone (see ImageAugmenter's perceptual_ceiling)
    severity_ceiling: float | None = None

    def __post_init__(self) -> None:
        for name, limit in self.limits.items():
            _check_augmentation_name(name)
            _check_number(limit, f"limit for {name}", 0.0, 1.0)
        for name, weight in self.weights.items():
            _check_number(weight, f"weight for {name}", 0.0, MAX_WEIGHT)
            if name not in self.limits:
                raise AugmentError(f"weight for {name} given, but {name} is not among the limits")
        if stray := sorted(set(self.floors) - set(self.limits)):
            raise AugmentError(f"smallest intensities given for {stray}, which have no limit")
        if _check_int(self.most, "most", 1) > 1000:
            raise AugmentError(f"most must be at most 1000 augmentations per image, got {self.most}")
        for name, floor in self.floors.items():
            if _check_number(floor, f"smallest intensity for {name}", 0.0, 1.0) > self.limits.get(name, 0.0):
                raise AugmentError(f"smallest intensity {floor} for {name} is above its largest "
                                   f"{self.limits.get(name)}")
        if not 1 <= _check_int(self.fewest, "fewest", 1) <= _check_int(self.most, "most", 1):
            raise AugmentError(f"need 1 <= fewest <= most, got {self.fewest} and {self.most}")
        # checked: numpy numbers (np.float32 limits from an array) as plain ones, what a policy file holds
        for field_name in ("limits", "weights", "floors"):
            object.__setattr__(self, field_name, {name: float(value) for name, value in
                                                  getattr(self, field_name).items()})
        object.__setattr__(self, "fewest", int(self.fewest))
        object.__setattr__(self, "most", int(self.most))
        if self.realism is not None:
            object.__setattr__(self, "realism", _check_number(self.realism, "realism", -1.0, 1.0))
        if self.severity_ceiling is not None:
            object.__setattr__(self, "severity_ceiling", _check_number(self.severity_ceiling, "severity_ceiling", 0.0))

    @property
    def eligible(self) -> list[str]:
        return [name for name in self.limits if self.weights.get(name, 1.0) > 0]

    def sample(self, rng: np.random.Generator) -> tuple[list[tuple[str, float]], int]:
        """One image's [(augmentation, intensity)] in the order to apply, and its pixel seed."""
        names, families, weights, floors, limits = self._table
        wanted = int(rng.integers(self.fewest, self.most + 1))
        # never a step that changes nothing: an augmentation whose limit is 0 is not drawn (realism 1
        # draws nothing at all), and an intensity is drawn from 1..100 % of its range, not 0 %
        open_ = np.ones(len(names), bool)  # not yet of a family drawn: contradictory pairs never meet
        chosen: list[int] = []
        while len(chosen) < wanted and open_.any():
            pool = np.flatnonzero(open_)
            # rng.choice(len(pool), p=w / w.sum()) without its checks of p (the same draw: numpy's
            # own steps), which cost a training transform as much as a small image's colour change
            cdf = (weights[pool] / weights[pool].sum()).cumsum()
            cdf /= cdf[-1]
            pick = int(pool[int(cdf.searchsorted(rng.random(), side="right"))])
            chosen.append(pick)
            open_ &= families != families[pick]
        # (a tiny limit's lowest levels would round to 0: 1e-6 at least)
        steps = [(names[k], max(1e-6, round(floors[k] + (limits[k] - floors[k]) * int(rng.integers(
            0 if floors[k] > 0 else 1, _LEVELS + 1)) / _LEVELS, 6))) for k in chosen]
        return steps, int(rng.integers(2**31 - 1))

    @functools.cached_property
    def _table(self) -> tuple[list[str], np.ndarray, np.ndarray, list[float], list[float]]:
        """The drawable augmentations (eligible, limit above 0): names, family numbers, weights,
        floors and limits."""
        names = [name for name in self.eligible if self.limits[name] > 0]
        family_numbers = {family: k for k, family in enumerate(dict.fromkeys(CATALOGUE[n].family for n in names))}
        return (names, np.array([family_numbers[CATALOGUE[n].family] for n in names], dtype=np.int64),
                np.array([self.weights.get(n, 1.0) for n in names], dtype=np.float64),
                [self.floors.get(n, 0.0) for n in names], [self.limits[n] for n in names])

    def to_json(self) -> dict:
        """The policy file's content: readable, one entry per augmentation (see :meth:`save`)."""
        return {"format": _POLICY_FORMAT, "version": _POLICY_VERSION, "catalogue_version": _CATALOGUE_VERSION,
                "tool_version": __version__, "realism": self.realism, "model_id": self.model_id,
                **({"severity_ceiling": self.severity_ceiling} if self.severity_ceiling is not None else {}),
                "min_augmentations": self.fewest, "max_augmentations": self.most,
                "augmentations": [{"name": name, "family": CATALOGUE[name].family,
                                   "min_intensity": self.floors.get(name, 0.0), "max_intensity": limit,
                                   "weight": self.weights.get(name, 1.0)} for name, limit in self.limits.items()]}

    def save(self, path: str | os.PathLike) -> str:
        """Write the policy as JSON (atomically): all a training job needs, without the analysis.

        >>> SamplingPolicy({"Brighten": 0.3}, fewest=1, most=1).save("policy.json")   # doctest: +SKIP
        'policy.json'
        """
        return _write_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> SamplingPolicy:
        """Read a policy file written by :meth:`save`; a damaged or unknown one is an AugmentError.

        >>> policy = SamplingPolicy.load("policy.json")                               # doctest: +SKIP
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8-sig") as handle:
                document = json.load(handle)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also a 5,000-digit number
            raise AugmentError(f"policy file {path} is not JSON: {_json_failure(exc)}") from None
        except OSError as exc:
            raise AugmentError(f"cannot read policy file {path}: {exc.strerror}") from None
        return cls.from_json(document, path)

    @classmethod
    def from_json(cls, document: Any, where: str = "policy") -> SamplingPolicy:
        """A policy from the content of a policy file (``where`` names it in errors)."""
        if not isinstance(document, dict) or document.get("format") != _POLICY_FORMAT:
            raise AugmentError(f"{where} is not an augment.py policy file (no \"format\": \"{_POLICY_FORMAT}\")")
        for key, ours in (("version", _POLICY_VERSION), ("catalogue_version", _CATALOGUE_VERSION)):
            if _is_int(document.get(key)) and document[key] > ours:
                raise AugmentError(f"{where} has {key} {document[key]}, newer than this augment.py reads ({ours}, "
                                   f"augment.py {__version__}): update augment.py")
        policy = _validated(_formats().Policy, document, where)
        names = [entry.name for entry in policy.augmentations]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise AugmentError(f"{where} lists {', '.join(twice)} more than once")
        for entry in policy.augmentations:
            if entry.name not in CATALOGUE:
                close = difflib.get_close_matches(entry.name, list(CATALOGUE), n=1)
                raise AugmentError(f"{where} names augmentation {entry.name!r}, which this augment.py does not know"
                                   + (f" (did you mean {close[0]!r}?)" if close else " (your own augmentations: "
                                      "register them before loading the policy)"))
            if entry.family != CATALOGUE[entry.name].family:
                raise AugmentError(f"{where}: {entry.name} is in family {entry.family!r} there but "
                                   f"{CATALOGUE[entry.name].family!r} here: the file is from another catalogue")
        try:
            return cls({e.name: e.max_intensity for e in policy.augmentations},
                       {e.name: e.weight for e in policy.augmentations}, policy.min_augmentations,
                       policy.max_augmentations, policy.realism, policy.model_id,
                       {e.name: e.min_intensity for e in policy.augmentations if e.min_intensity},
                       policy.severity_ceiling)
        except AugmentError as exc:
            raise AugmentError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class _IntensityOverride:
    """set_augmentation_intensity's override (ml-infinite-image-augment's options) of what synthesis draws."""

    multiplier: float = 1.0
    low: float | None = None
    high: float | None = None
    only_shrink_max: bool = False

    def largest(self, limit: float) -> float:
        """The largest intensity drawn, given the realism rule's ``limit``."""
        scaled = min(1.0, limit * self.multiplier)
        return self.high if self.high is not None and (not self.only_shrink_max or self.high < scaled) else scaled

    def smallest(self, largest: float) -> float:
        return 0.0 if self.low is None else min(self.low, largest)


@dataclass
class _FilterWindow:
    """Keep a candidate only if the model's diff error to its source's output is in [low, high]."""

    low: float = 0.0
    high: float = 1.0
    max_attempts: int = 10

    @classmethod
    def checked(cls, low: Any, high: Any, max_attempts: Any) -> _FilterWindow:
        window = cls(_check_number(low, "min_predicted_diff_error", 0.0, 1.0),
                     _check_number(high, "max_predicted_diff_error", 0.0, 1.0),
                     _check_int(max_attempts, "max_attempts", 1))
        if window.low > window.high:
            raise AugmentError(f"min_predicted_diff_error {window.low} is above max_predicted_diff_error {window.high}")
        return window

    @property
    def active(self) -> bool:
        return self.low > 0.0 or self.high < 1.0
