"""ImageAugmenter: the public face. It validates its arguments and hands each job to its module."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .analysis import Analysis, AugmentationCurve, load_analysis
from .catalogue import CATALOGUE, _check_augmentation_name
from .files import _output_folder, _write_atomic
from .gradcam import _cam_class
from .helpers import ALL_AUGMENTATIONS, AugmentError, _check_int, _check_number, _json_failure, _jsonable
from .images import (
    MAX_IMAGE_PIXELS,
    TemplateMatcher,
    _check_labels,
    _check_readable,
    _Source,
    _sources,
    default_diff_error,
)
from .labels import _ROTATE_METHODS, _LabelFormat, _normal_label_format
from .perceptual import intensity_at_severity, realism_severity_ceiling
from .pipeline import _factory_token, _ModelSpec
from .policy import MAX_WEIGHT, SamplingPolicy, _FilterWindow, _IntensityOverride, realism_max_intensity
from .probes import _SearchSettings
from .report import _report_sources, _ReportWriter
from .search import _SearchRequest, _SearchRun
from .synthesis import (
    _evaluate_images,
    _summary,
    _SynthesisJob,
    _Synthesized,
    _SyntheticFolder,
    _write_preview,
    read_manifest,
)
from .transform import _realism_transform_class


class ImageAugmenter:
    """Searches how far each augmentation can go before a model's output changes, then
    synthesizes data up to that edge. It checks arguments and hands each job to its section.

    ``my_predict``: takes one image (an RGB (H, W, 3) uint8 array, or a file name as in
    ml-infinite-image-augment's README) and returns labels of any type; with ``batch_size``, a list of up to
    that many images and a list as long (what makes a real model fast). ``predict_input``:
    "array", "filename" or "auto" (try an array, fall back to a file name). Without a model,
    a model-free :class:`TemplateMatcher` built from the training images is used.
    ``predict_factory``: instead of ``my_predict``, a picklable zero-argument callable
    returning predict, called once per process (executor workers).

    ``diff_error(output, reference) -> [0, 1]``: how different two outputs are (default:
    :func:`outputs_equal`, 0 or 1); an output "changed" at ``failure_threshold``.
    ``label_format``: None (anything), a box format, "keypoints" or "mask": labels and
    outputs move with the pixels (``rotate_method`` encloses rotated boxes). ``describe``:
    ``output -> str`` for captions. ``seed`` makes searches and synthesis repeatable.
    ``on_error``: "raise" or "skip" images predict fails on. ``max_image_pixels``: larger
    files are skipped. ``model_id``: the model's version, part of the cache fingerprint.
    ``group_by(label) -> str``: the classes of the per-class breakdown (default: a
    classification label is its class).
    ``events``: set to a list to record the search pipeline's ("decode" | "release", index).
    ``perceptual_ceiling``: realism's limits also stop where an augmentation looks stronger
    than ``realism_severity_ceiling(realism)`` ImageNet-C severity units (realism 0.5: 2), so
    a mild realism stays mild where the model never fails (needs the analysis' perceptual
    strengths; geometric augmentations keep the model's limits; off by default until the
    retraining study has compared both). ``perceptual_strength``: False skips measuring the
    strengths at the end of a search (about 0.1 s per augmentation).

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
        predict_factory: Callable[[], Callable] | None = None,
        on_error: str = "raise",
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
        model_id: str | None = None,
        rotate_method: str = "largest_box",
        describe: Callable[[Any], str] | None = None,
        group_by: Callable[[Any], Any] | None = None,
        perceptual_ceiling: bool = False,
        perceptual_strength: bool = True,
    ):
        for name, value in (("my_predict", my_predict), ("diff_error", diff_error), ("describe", describe),
                            ("predict_factory", predict_factory), ("group_by", group_by)):
            if value is not None and not callable(value):
                raise AugmentError(f"{name} must be callable or None, got {type(value).__name__}")
        if predict_factory is not None and my_predict is not None:
            raise AugmentError("give my_predict or predict_factory (a callable returning predict), not both")
        names = [augmentations] if isinstance(augmentations, str) else list(augmentations)
        self.augmentations = [_check_augmentation_name(name, "augmentation") for name in names]
        if not self.augmentations or len(set(self.augmentations)) != len(self.augmentations):
            raise AugmentError(f"augmentations must name each catalogue augmentation at most once, and at least one; "
                               f"got {self.augmentations}")
        for name, value, allowed in (("on_error", on_error, ("raise", "skip")),
                                     ("predict_input", predict_input, ("auto", "array", "filename")),
                                     ("rotate_method", rotate_method, _ROTATE_METHODS)):
            if value not in allowed:
                raise AugmentError(f"{name} must be one of {allowed}, got {value!r}")
        if model_id is not None and not isinstance(model_id, str):
            raise AugmentError(f"model_id must be text or None, got {type(model_id).__name__}")
        label_format = _normal_label_format(label_format)  # checked before any long work
        self.my_predict, self.predict_factory, self.diff_error = my_predict, predict_factory, diff_error
        self.label_format, self.rotate_method, self.describe = label_format, rotate_method, describe
        for name, value in (("perceptual_ceiling", perceptual_ceiling), ("perceptual_strength", perceptual_strength)):
            if not isinstance(value, bool):
                raise AugmentError(f"{name} must be True or False, got {value!r}")
        self.group_by, self.perceptual_ceiling = group_by, bool(perceptual_ceiling)
        self.measure_strength = bool(perceptual_strength)
        self.seed = _check_int(seed, "seed", -2**63)
        self.batch_size = _check_int(batch_size, "batch_size", 1, allow_none=True)
        self.max_image_pixels = _check_int(max_image_pixels, "max_image_pixels", 1, allow_none=True)
        self.failure_threshold = _check_number(failure_threshold, "failure_threshold", 0.0, 1.0)
        if self.failure_threshold == 0.0:
            raise AugmentError("failure_threshold must be > 0, got 0 (every output would count as changed)")
        self.predict_input, self.on_error, self.model_id = predict_input, on_error, model_id
        self.checkpoint_seconds = _check_number(checkpoint_seconds, "checkpoint_seconds", 0.0)
        self.progress = bool(progress)
        self._model_token = _factory_token(predict_factory)  # names the model in each worker's cache
        self.realism_overrides: dict[str, float] = {}
        self.intensity_overrides: dict[str, _IntensityOverride] = {}
        self.weights: dict[str, float] = {name: 1.0 for name in self.augmentations}
        self.analysis: Analysis | None = None
        self.analysis_path: str | None = None
        self._searched: list[_Source] | None = None  # the last search's images, while its analysis is in use
        self.predict_calls = 0
        self.events: list | None = None

    @property
    def label_form(self) -> _LabelFormat:
        """The label_format decoded: its kind and what that kind needs (see labels.py)."""
        return _LabelFormat.of(self.label_format)

    @property
    def label_kind(self) -> str:
        """What a label (and, in the search, an output) is: "class", "bbox", "keypoints" or "mask"."""
        return self.label_form.kind

    def __repr__(self) -> str:
        return (f"ImageAugmenter(predict={getattr(self.my_predict, '__name__', self.my_predict)!r}, "
                f"augmentations={len(self.augmentations)}, seed={self.seed}, batch_size={self.batch_size})")

    # -- settings ---------------------------------------------------------------

    def set_augmentation_realism(self, augmentation_name: str, realism: float) -> None:
        """Override the global realism for one augmentation (<= 1; see synthesize_more)."""
        _check_augmentation_name(augmentation_name, "augmentation_name")
        self.realism_overrides[augmentation_name] = _check_number(realism, f"realism for {augmentation_name}",
                                                                  high=1.0)

    def set_augmentation_intensity(self, augmentations: str | Sequence[str] | None = None, multiplier: float = 1.0,
                                   min: float | None = None, max: float | None = None,  # noqa: A002 (ml-infinite-image-augment's names)
                                   only_shrink_max: bool = False) -> None:
        """Override the intensities synthesis draws (ml-infinite-image-augment's method): ``multiplier``
        scales the largest intensity the realism rule gives, ``min`` / ``max`` set the smallest /
        largest (``only_shrink_max``: ``max`` only where it is smaller), for ``augmentations``
        (one name or several; default: all of this augmenter's).

        >>> augmenter.set_augmentation_intensity("SafeRotate", max=0.2, only_shrink_max=True)  # doctest: +SKIP
        """
        names = self.augmentations if augmentations is None else (
            [augmentations] if isinstance(augmentations, str) else list(augmentations))
        for name in names:
            _check_augmentation_name(name, "augmentations")
            if name not in self.weights:
                raise AugmentError(f"augmentation {name!r} is not among this augmenter's {self.augmentations}")
        if _check_number(multiplier, "multiplier", 0.0, math.inf) == 0 or math.isinf(multiplier):
            raise AugmentError(f"multiplier must be a finite number above 0, got {multiplier!r}")
        low = None if min is None else _check_number(min, "min", 0.0, 1.0)
        high = None if max is None else _check_number(max, "max", 0.0, 1.0)
        if low is not None and high is not None and low > high:
            raise AugmentError(f"min {low} is above max {high}")
        for name in names:
            self.intensity_overrides[name] = _IntensityOverride(float(multiplier), low, high, bool(only_shrink_max))

    def set_augmentation_weight(self, augmentation_name: str, weight: float) -> None:
        """Relative odds of picking one augmentation in synthesis (default 1; 0 never picks it)."""
        _check_augmentation_name(augmentation_name, "augmentation_name")
        if augmentation_name not in self.weights:
            raise AugmentError(f"augmentation_name {augmentation_name!r} is not among this augmenter's "
                               f"augmentations {self.augmentations}")
        self.weights[augmentation_name] = _check_number(weight, f"weight for {augmentation_name}", 0.0, MAX_WEIGHT)

    def _model_spec(self, default_images: Sequence[_Source] | None = None) -> _ModelSpec:
        """The model as any process can rebuild it, and the diff_error that goes with it."""
        if self.my_predict is None and self.predict_factory is None:
            if default_images is None:
                raise AugmentError("my_predict is None and there are no training images to build the "
                                   "model-free matcher from: run the search first or give my_predict")
            matcher = TemplateMatcher([source.load() for source in default_images])
            return _ModelSpec(matcher, None, self._model_token, 256, "array", self.diff_error or matcher.diff_error,
                              self.on_error)
        return _ModelSpec(self.my_predict, self.predict_factory, self._model_token, self.batch_size,
                          self.predict_input, self.diff_error or default_diff_error, self.on_error)

    def _settings(self) -> _SearchSettings:
        return _SearchSettings(tuple(self.augmentations), self.seed, self.failure_threshold, self.label_format,
                               self.rotate_method, self.model_id, self.max_image_pixels, self.batch_size or 64,
                               self.checkpoint_seconds, self.progress, self.describe, self.group_by,
                               self.measure_strength)

    def _use(self, analysis: Analysis, path: str | None, sources: list[_Source] | None = None) -> None:
        self.analysis, self.analysis_path, self._searched = analysis, path, sources
        analysis.group_by = self.group_by

    # -- the search ---------------------------------------------------------------------

    def search_randomization_boundaries(
        self,
        training_img_filenames: Any,
        training_labels: Sequence | None = None,
        step_size_percent: float = 0.05,
        analytics_cache: str | os.PathLike | None = "analysis.json",
        *,
        strategy: str = "auto",
        grid_sample: int | float | None = None,
        num_workers: int | None = None,
        executor: concurrent.futures.Executor | None = None,
        images_per_shard: int | None = None,
        images_in_flight: int | None = None,
        images_per_chunk: int | None = None,
        rows_in_memory: bool | None = None,
    ) -> Analysis:
        """Measure, per augmentation and intensity, how often the model's output changes.

        ``training_img_filenames``: file paths or RGB arrays; ``training_labels`` (optional,
        1-to-1) adds accuracy against them. ``step_size_percent``: 0.05 or 5 (%).
        ``analytics_cache``: the analysis file, checkpointed and resumed (None: memory only).
        ``strategy``: "grid" (every intensity), "adaptive" (coarse walk and bisection, about
        a third of the calls), "guided" (bisection by where the images searched before
        failed, in blocks: about 3 calls per image and augmentation; an augmentation whose
        full-grid rows are mostly not monotone is measured on the full grid) or "auto"
        (default: grid below 2,000 image x augmentation pairs, guided from there on);
        ``grid_sample`` images, a share or a count, on the whole grid for the curves
        (default: 0.1 adaptive, 4 images or 2 % guided).
        ``num_workers``: render processes; ``executor``: any ``concurrent.futures.Executor``
        (Dask), images cut into ``images_per_shard`` shards; ``images_in_flight`` (formerly
        ``images_per_chunk``): images decoded at once. ``rows_in_memory``: False keeps the
        per-image rows in the analysis file's shards (read back when used), so that memory does
        not grow with them; None (default): so from 250,000 (image, augmentation) pairs.

        >>> augmenter = ImageAugmenter(lambda img: int(img.mean() > 127), augmentations=["Brighten"],
        ...                            progress=False)
        >>> analysis = augmenter.search_randomization_boundaries(
        ...     [np.full((16, 16, 3), 100, np.uint8)], step_size_percent=0.25, analytics_cache=None)
        >>> analysis.curves["Brighten"].first_failure_intensities
        [0.25]
        """
        request = _SearchRequest.checked(
            training_img_filenames, training_labels, step_size_percent, analytics_cache, strategy, grid_sample,
            self.seed, num_workers, executor, images_per_shard,
            images_in_flight if images_in_flight is not None else images_per_chunk, rows_in_memory,
            len(self.augmentations))
        run = _SearchRun(self._settings(), request, self._model_spec, self.events)
        try:
            return run.run(started=lambda analysis: self._use(analysis, request.path, request.sources))
        finally:
            self.predict_calls += run.predict_calls

    searchRandomizationBoundries = search_randomization_boundaries  # ml-infinite-image-augment's README spelling
    search_randomization_boundries = search_randomization_boundaries  # ml-infinite-image-augment's code spelling

    def load_analysis(self, path: str | os.PathLike = "analysis.json") -> Analysis:
        """Use an analysis file written earlier (for the report and synthesis).

        Its failure threshold is the one its curves were measured with, so the augmenter
        takes it (with a warning when this augmenter was given another).
        """
        analysis = load_analysis(path)
        threshold = analysis.settings["failure_threshold"]
        if threshold != self.failure_threshold:
            warnings.warn(f"{os.fspath(path)} was searched with failure_threshold {threshold}; using it instead of "
                          f"this augmenter's {self.failure_threshold}", stacklevel=2)
        self.failure_threshold = threshold
        self._use(analysis, os.fspath(path))
        return analysis

    def _require_analysis(self, what: str) -> Analysis:
        if self.analysis is None:
            if self.analysis_path and os.path.exists(self.analysis_path):
                return self.load_analysis(self.analysis_path)
            raise AugmentError(f"no analysis to {what} from: run search_randomization_boundaries first "
                               f"(or load_analysis(path))")
        return self.analysis

    # -- synthesis ------------------------------------------------------------------------

    def intensity_limits(self, realism: float = 0.5) -> dict[str, float]:
        """Per searched augmentation, the largest intensity synthesis draws at ``realism``
        (``set_augmentation_realism`` overrides take precedence)."""
        analysis = self._require_analysis("compute intensity limits")
        realism = _check_number(realism, "realism", high=1.0)
        if stale := [name for name, curve in analysis.curves.items()
                     if name in self.weights and curve.definition != CATALOGUE[name].definition]:
            warnings.warn(f"the analysis measured {', '.join(stale)} with another definition than the one "
                          f"registered now: search again for limits that fit it", stacklevel=3)
        return {name: self.intensity_overrides.get(name, _IntensityOverride()).largest(
                    self._realism_limit(curve, self.realism_overrides.get(name, realism)))
                for name, curve in analysis.curves.items() if name in self.weights}

    def _realism_limit(self, curve: AugmentationCurve, realism: float) -> float:
        """The realism rule's limit (model-based), under the perceptual ceiling when it is on."""
        limit = realism_max_intensity(realism, curve.onset_intensity, curve.failure_intensity)
        if (ceiling := self._ceiling(curve.name, realism)) is None:
            return limit
        if curve.perceptual_strength is None:
            raise AugmentError(f"perceptual_ceiling needs the analysis' perceptual strengths, and {curve.name} has "
                               f"none: search again with this augment.py (it measures them on a few of the images)")
        return min(limit, intensity_at_severity(curve.perceptual_strength, curve.intensities, ceiling))

    def _ceiling(self, name: str, realism: float) -> float | None:
        """The perceptual ceiling (severity units) of augmentation ``name`` at ``realism``; None: none
        applies (the ceiling is off, or ``name`` is geometric: a distance that compares pixels in place
        calls a 10 degree rotation or a small crop a severe change, so those keep the model's limits).
        A realism below -1 counts as -1."""
        if not self.perceptual_ceiling or CATALOGUE[name].geometric:
            return None
        return realism_severity_ceiling(max(-1.0, realism))

    def sampling_policy(self, realism: float = 0.5, min_random_augmentations: int = 3,
                        max_random_augmentations: int = 8) -> SamplingPolicy:
        """The policy synthesis draws from at ``realism``: limits from the analysis, this
        augmenter's weights, ``min/max_random_augmentations`` picks per image."""
        fewest = _check_int(min_random_augmentations, "min_random_augmentations", 1)
        if _check_int(max_random_augmentations, "max_random_augmentations", 1) < fewest:
            raise AugmentError(f"need min_random_augmentations <= max_random_augmentations, got {fewest} and "
                               f"{max_random_augmentations}")
        limits = self.intensity_limits(realism)
        ordered = {name: limits[name] for name in self.augmentations if name in limits}
        floors = {name: self.intensity_overrides[name].smallest(limit) for name, limit in ordered.items()
                  if name in self.intensity_overrides and self.intensity_overrides[name].low is not None}
        return SamplingPolicy(ordered, {name: self.weights[name] for name in ordered}, fewest,
                              max_random_augmentations, float(realism),
                              self._require_analysis("sample").settings.get("model_id"), floors,
                              self._largest_ceiling(realism, ordered) if self.perceptual_ceiling else None)

    def _largest_ceiling(self, realism: float, names: Iterable[str]) -> float:
        """The largest perceptual ceiling any of ``names`` is bounded by (its own realism override's;
        geometric augmentations keep the model's limits and are bounded by none)."""
        ceilings = [self._ceiling(name, self.realism_overrides.get(name, float(realism))) for name in names]
        return max([c for c in ceilings if c is not None] or [realism_severity_ceiling(max(-1.0, float(realism)))])

    def transform(self, realism: float = 0.5, min_random_augmentations: int = 3, max_random_augmentations: int = 8,
                  *, seed: int | None = None, p: float = 1.0) -> Any:
        """An online training transform drawing from :meth:`sampling_policy` (synthesis's
        draw, a fresh one every call); labels follow ``label_format``. Needs no model and no
        analysis at training time: ``.policy.save(path)`` ships the policy alone.

        >>> t = augmenter.transform(realism=0.5, seed=0)                              # doctest: +SKIP
        >>> A.Compose([t, A.Normalize()], bbox_params=A.BboxParams("coco"))          # doctest: +SKIP
        """
        policy = self._drawable_policy(realism, min_random_augmentations, max_random_augmentations)
        return _realism_transform_class()(policy, self.label_format, seed=seed, rotate_method=self.rotate_method,
                                          p=p)

    def _drawable_policy(self, realism: float, fewest: int, most: int) -> SamplingPolicy:
        policy = self.sampling_policy(realism, fewest, most)
        if not policy.eligible:
            missing = [name for name in self.augmentations if name not in self._require_analysis("sample").curves]
            raise AugmentError(f"nothing to draw: {missing or 'every augmentation'} "
                               f"{'not searched in the analysis' if missing else 'has weight 0'} (it has "
                               f"{sorted(self.analysis.curves)})")
        return policy

    def synthesize_more(
        self,
        organic_img_filenames: Any,
        organic_labels: Sequence | None = None,
        realism: float = 0.5,
        count: int | None = None,
        min_random_augmentations: int = 3,
        max_random_augmentations: int = 8,
        min_predicted_diff_error: float = 0.0,
        max_predicted_diff_error: float = 1.0,
        output_dir: str | os.PathLike = "generated",
        preview_html: str | None = "__preview.html",
        *,
        count_is_total: bool = False,
        max_attempts: int = 10,
        count_by: str | None = None,
        log_file: str | os.PathLike | None = "",
        image_namer: Callable | None = None,
    ) -> tuple[list[str], list]:
        """Write synthetic images (and labels) whose strength is set by ``realism``; returns the
        files and labels this call made (masks as ``*.mask.png`` paths).

        Sources are used in turn; each image gets ``min/max_random_augmentations`` picks from
        :meth:`sampling_policy` (realism 1: unchanged; 0.5: up to the onset, where 10 % of
        outputs changed; 0: up to the failure, 50 %; below 0: beyond it). With
        ``min/max_predicted_diff_error`` narrower than [0, 1], a candidate is kept only if the
        model's diff error to its source is in range (``max_attempts`` each). Each call adds
        ``count`` images (default: one per source) after those in ``output_dir``'s
        manifest; ``count_is_total=True`` tops the folder up to ``count`` (how an interrupted
        run is finished). ml-infinite-image-augment's options: ``count_by="in_dir"`` is ``count_is_total=True``
        (and returns the whole folder), ``"per_call"`` the default; ``log_file`` also writes the
        summary (``result["count"]``, ``result["generated"]``) as JSON there; ``image_namer`` is
        refused (file names are how a folder knows its own files).

        >>> files, labels = augmenter.synthesize_more(train_files, train_labels, realism=0.5,
        ...                                           count=100)                    # doctest: +SKIP
        """
        if image_namer is not None:
            raise AugmentError("image_namer is not supported: synthetic files are named synthetic-NNNNNN-<source>.png "
                               "so that resuming and cleaning up touch only this tool's files; the manifest (and "
                               "result['generated']) maps each to its source")
        if count_by not in (None, "per_call", "in_dir"):
            raise AugmentError(f"count_by must be 'per_call' or 'in_dir', got {count_by!r}")
        count_is_total = count_is_total or count_by == "in_dir"
        analysis = self._require_analysis("synthesize")
        sources = _sources(organic_img_filenames, "organic_img_filenames")
        labels = _check_labels(organic_labels, len(sources), "organic_labels")
        if self.label_form.positional and labels is None:
            raise AugmentError(f"label_format {self.label_format!r} needs organic_labels to transform")
        count = _check_int(len(sources) if count is None else count, "count", 0)
        policy = self.sampling_policy(realism, min_random_augmentations, max_random_augmentations)
        if not policy.eligible:
            raise AugmentError("no augmentation to synthesize with: none of this augmenter's augmentations with "
                               f"weight > 0 is in the analysis (it has {sorted(analysis.curves)})")
        window = _FilterWindow.checked(min_predicted_diff_error, max_predicted_diff_error, max_attempts)
        _check_readable(sources)
        job = _SynthesisJob(sources, labels, policy, _check_number(realism, "realism", high=1.0), self.seed,
                            self.label_format, self.rotate_method, window, self._model_spec, self.batch_size or 32,
                            self.progress)
        folder = _output_folder(output_dir, "output_dir")
        self._check_log_file(log_file, folder)
        try:
            with _SyntheticFolder(folder) as target:
                before = len(target.entries)
                files, labels = job.run(target, max(0, count - before) if count_is_total else count)
                if preview_html:
                    _write_preview(folder, os.path.basename(preview_html), target.entries, self.seed,
                                   self.label_format)
                entries = target.entries if count_by == "in_dir" else target.entries[before:]
        finally:
            self.predict_calls += job.predict_calls
        summary = _summary(folder, entries, self.label_kind)
        if count_by == "in_dir":
            files, labels = [g["synth_filename"] for g in summary["generated"]], [
                g["synth_label"] for g in summary["generated"]]
        if log_file:
            _write_atomic(log_file, json.dumps(_jsonable(summary), indent=1))
        return _Synthesized(files, labels, summary)

    @staticmethod
    def _check_log_file(log_file: Any, folder: str) -> None:
        """log_file must not replace the folder's manifest or one of its images."""
        if log_file and os.path.dirname(os.path.abspath(log_file)) == os.path.abspath(folder) and (
                os.path.basename(log_file) == "manifest.jsonl" or os.path.basename(log_file).startswith("synthetic-")):
            raise AugmentError(f"log_file {os.fspath(log_file)} would replace a file of the synthetic folder; "
                               f"write it elsewhere")

    def get_synthesized_summary(self, log_file: str | os.PathLike | None = "",
                                output_dir: str | os.PathLike = "generated") -> dict:
        """Every image synthesized into ``output_dir`` so far (ml-infinite-image-augment's summary, read from
        the folder's manifest; or from ``log_file`` where synthesize_more wrote one).

        >>> augmenter.get_synthesized_summary(output_dir="generated")["count"]          # doctest: +SKIP
        300
        """
        if log_file:
            try:
                with open(log_file, encoding="utf-8") as handle:
                    return json.load(handle)
            except (OSError, ValueError, RecursionError) as exc:
                raise AugmentError(f"cannot read log_file {os.fspath(log_file)}: {_json_failure(exc)}") from None
        folder = os.fspath(output_dir)
        if not os.path.isfile(os.path.join(folder, "manifest.jsonl")):
            raise AugmentError(f"{folder} has no manifest.jsonl: nothing was synthesized there")
        return _summary(folder, read_manifest(os.path.join(folder, "manifest.jsonl")), self.label_kind)

    synthesizeMore = synthesize_more  # ml-infinite-image-augment's README spelling

    # -- the report and evaluation ------------------------------------------------------

    def render_boundaries(
        self,
        html_dir: str | os.PathLike = "analytics",
        *,
        torch_model: Any = None,
        target_layers: Sequence[Any] | None = None,
        cam_method: str = "GradCAM",
        preprocess: Callable | None = None,
        images: Sequence | None = None,
        gallery_size: int = 12,
    ) -> str:
        """Render the analysis as an offline HTML report; returns the path of index.html.

        With ``torch_model`` and ``target_layers`` each sweep frame overlays a localization
        map from the ``grad-cam`` package (``cam_method``: GradCAM, GradCAM++, EigenCAM,
        ScoreCAM, LayerCAM, ...). ``images`` replaces the analysis' image sources: a search
        given arrays keeps copies of them beside its analysis file (up to 32 MiB), and this
        augmenter keeps its own search's, so they are needed only beyond that. The model is
        called only on the sweep frames.
        """
        analysis = self._require_analysis("render")
        if (torch_model is None) != (not target_layers):
            raise AugmentError("torch_model and target_layers go together: give both for Grad-CAM, or neither")
        if torch_model is not None:
            _cam_class(cam_method)  # an unknown method fails before any rendering
        # images given, or this augmenter's own search (arrays at full size), or what the analysis kept
        sources = (self._searched if images is None and self._searched is not None else
                   _report_sources(analysis, images))
        spec = self._model_spec() if self.my_predict is not None or self.predict_factory is not None else None
        html_dir = _output_folder(html_dir, "html_dir")
        return _ReportWriter(analysis, html_dir, sources, spec, torch_model, target_layers, cam_method, preprocess,
                             _check_int(gallery_size, "gallery_size", 0), self.describe).write()

    renderBoundries = render_boundaries  # ml-infinite-image-augment's README spelling
    render_boundries = render_boundaries  # ml-infinite-image-augment's code spelling

    def evaluate(self, img_filenames: Any, img_labels: Sequence) -> dict:
        """Run the model on images and compare its outputs with ``img_labels`` (see the README).

        Returns ml-infinite-image-augment's ``avg_diff_error``, ``output_differs_count`` and
        ``differing_output_errs``, plus ``accuracy``, ``count``, ``differing_outputs``,
        ``diff_errors``, ``by_augmentation`` (synthetic files) and ``skipped``.
        """
        sources = _sources(img_filenames, "img_filenames")
        labels = _check_labels(img_labels, len(sources), "img_labels")
        if labels is None:
            raise AugmentError("img_labels is required to evaluate")
        _check_readable(sources)
        spec = self._model_spec(sources)
        result, calls = _evaluate_images(sources, labels, spec, self.failure_threshold, self.label_kind,
                                         self.describe, self.batch_size or 64)
        self.predict_calls += calls
        return result
