"""The search: one request checked before any prediction, the run that walks images in shards and
checkpoints them into the analysis, and merging a shard's results."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .analysis import Analysis, _check_cache_path, _unwritable, load_analysis
from .catalogue import CATALOGUE
from .custom import _adopt, _custom_entries
from .files import _lock_for_file
from .helpers import AugmentError, _check_int, _derive_seed
from .images import _check_labels, _check_readable, _Source, _sources
from .perceptual import SEVERITY_CALIBRATION, perceptual_strength
from .pipeline import (
    _POOL_MIN_RENDERS,
    _check_picklable,
    _ImageResult,
    _InlineExecutor,
    _ModelSpec,
    _pickle_error,
    _render_pool,
    _SearchJob,
    _SearchPipeline,
    _shards_in_flight,
    _usable_cores,
)
from .probes import _check_step, _grid_sample, _not_monotone, _resolved_strategy, _SearchSettings
from .rows import (
    _COMPACT_AFTER_SEARCH,
    KEPT_IMAGE_BYTES,
    _KeptImages,
    _to_float32,
    _write_kept_images,
)


def _run_shard(job: _SearchJob, model: _ModelSpec) -> tuple[_PackedResults, int]:
    """One executor task: search a shard of images in this worker, the model loaded once per worker."""
    results: list[_ImageResult] = []
    _adopt(job.custom)
    with model.predictor() as predictor:
        _SearchPipeline(job, predictor, model.diff_error, _InlineExecutor(), results.append).run()
    return _PackedResults.pack(results, len(job.grid), job.failure_threshold), predictor.calls


@dataclass
class _PackedResults:
    """A shard's results as arrays, what a worker sends back (a few bytes per measured cell, not
    Python lists): per result its record fields, and per augmentation the images, their rows
    (float32, NaN not measured, each value on its side of the threshold: see _to_float32), label
    rows (``has_label``: which rows have one), output texts and views."""

    records: list[tuple]  # (index, output, label_error, error, output_view, digest)
    rows: dict[str, dict[str, Any]]

    @classmethod
    def pack(cls, results: Sequence[_ImageResult], width: int, threshold: float) -> _PackedResults:
        records, parts = [], {}
        for result in results:
            records.append((result.index, result.output, result.label_error, result.error, result.output_view,
                            result.digest))
            if result.error is not None:
                continue
            for name, row in result.diff_errors.items():
                part = parts.setdefault(name, {"images": [], "diff": [], "label": [], "has_label": [], "last": [],
                                               "first": [], "last_view": [], "first_view": []})
                labels = result.label_errors[name] if result.label_errors is not None else None
                part["images"].append(result.index)
                part["diff"].append(row)
                part["has_label"].append(labels is not None)
                part["label"].append(labels if labels is not None else [None] * width)
                part["last"].append(result.last_success_output[name])
                part["first"].append(result.first_failure_output[name])
                part["last_view"].append(result.last_success_view.get(name))
                part["first_view"].append(result.first_failure_view.get(name))
        for part in parts.values():
            part["images"] = np.array(part["images"], np.int64)
            part["has_label"] = np.array(part["has_label"], bool)
            for key in ("diff", "label"):
                part[key] = _to_float32(np.array(part[key], dtype=np.float64).reshape(-1, width), threshold)
        return cls(records, parts)

    def merge_into(self, analysis: Analysis) -> None:
        """What _merge_results does with the same results one by one, a column at a time."""
        for record in self.records:
            _merge_record(analysis, *record)
        for name, part in self.rows.items():
            curve, images = analysis.curves[name], part["images"]
            curve.diff_errors.put_many(images, part["diff"])
            if curve.label_errors is not None:
                curve.label_errors.put_many(images[part["has_label"]], part["label"][part["has_label"]])
            for column, key in ((curve.last_success_output, "last"), (curve.first_failure_output, "first"),
                                (curve.last_success_view, "last_view"), (curve.first_failure_view, "first_view")):
                if column is not None:
                    for k, value in zip(images.tolist(), part[key]):
                        column[k] = value


@dataclass
class _SearchRequest:
    """One search's checked arguments (see ImageAugmenter.search_randomization_boundaries)."""

    sources: list[_Source]
    labels: list | None
    step: float
    path: str | None
    strategy: str
    full_grid: frozenset[int]
    num_workers: int | None
    executor: concurrent.futures.Executor | None
    images_per_shard: int | None
    images_in_flight: int | None
    release_rows: bool = False  # rows stay in the analysis file's shards, not in memory (see _Column)
    auto: bool = False  # strategy="auto": a file searched before keeps the strategy it was searched with
    sample_given: bool = False  # grid_sample was given (not the strategy's default)

    def keep_strategy_of(self, analysis: Analysis) -> None:
        """strategy="auto" over an analysis that holds results: its strategy and full-grid sample
        (a search of a few augmentations more, or a subset, must not re-measure the rest, nor
        relabel full rows as a guided sample)."""
        stored = analysis.settings.get("strategy")
        if not self.auto or stored not in ("grid", "adaptive", "guided"):
            return
        if not any(curve.searched_count for curve in analysis.curves.values()):
            return
        if stored == self.strategy and self.sample_given:  # the caller's own sample stands
            return
        sample = analysis.settings.get("grid_sample") or []
        self.strategy = stored
        self.full_grid = frozenset(range(len(self.sources))) if stored == "grid" else frozenset(sample)

    @classmethod
    def checked(cls, images: Any, labels: Any, step_size_percent: Any, analytics_cache: Any, strategy: Any,
                grid_sample: Any, seed: int, num_workers: Any, executor: Any, images_per_shard: Any,
                images_in_flight: Any, rows_in_memory: Any = None, augmentations: int = 1) -> _SearchRequest:
        """Every argument checked, and every image file found, before any prediction."""
        sources = _sources(images, "training_img_filenames")
        labels = _check_labels(labels, len(sources), "training_labels")
        step = _check_step(step_size_percent)
        requested, strategy = strategy, _resolved_strategy(strategy, len(sources) * augmentations)
        full_grid = frozenset(range(len(sources))) if strategy == "grid" else _grid_sample(len(sources), grid_sample,
                                                                                           seed, strategy)
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise AugmentError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
        request = cls(sources, labels, step, _check_cache_path(analytics_cache), strategy, full_grid,
                      _check_int(num_workers, "num_workers", 0, allow_none=True), executor,
                      _check_int(images_per_shard, "images_per_shard", 1, allow_none=True),
                      _check_int(images_in_flight, "images_in_flight", 1, allow_none=True), auto=requested == "auto",
                      sample_given=grid_sample is not None)
        if rows_in_memory is not None and not isinstance(rows_in_memory, (bool, np.bool_)):
            raise AugmentError(f"rows_in_memory must be True, False or None (by size), got {rows_in_memory!r}")
        rows_in_memory = None if rows_in_memory is None else bool(rows_in_memory)
        if rows_in_memory is False and request.path is None:
            raise AugmentError("rows_in_memory=False keeps the rows in the analysis file's shards: it needs an "
                               "analytics_cache")
        request.release_rows = request.path is not None and (
            rows_in_memory is False or (rows_in_memory is None and len(sources) * augmentations >= _RELEASE_FROM))
        _check_readable(sources)
        return request


# A search of this many (image, augmentation) pairs or more keeps its rows in the analysis file's shards
# (about 4 bytes per pair stay in memory instead of ~90): rows_in_memory=None.
_RELEASE_FROM = 250_000
_PENDING_ROWS = 100_000  # a released search saves once this many rows wait for their shard (~30 MB)


_GUIDED_FIRST_BLOCK = 8  # images after the full-grid sample; each later block is twice the one before


def _guided_blocks(analysis: Analysis, names: Sequence[str], todo: dict[int, list[str]],
                   full_grid: frozenset[int]) -> tuple[list[list[int]], dict[int, dict[str, int | None]],
                                                       dict[str, list[int]]]:
    """The guided search's blocks over every image (the full-grid sample first, then 8, 16, 32, ...
    images in index order), the first failures already in the analysis, and per augmentation how
    many of the sample's rows already measured are not monotone, of how many.

    Blocks cover images searched before too, so a resumed search learns from exactly the images an
    uninterrupted one would have: the same probes, the same rows.
    """
    sample = sorted(full_grid)
    rest = [k for k in range(len(analysis.images)) if k not in full_grid]
    blocks, size = [sample], _GUIDED_FIRST_BLOCK
    while rest:
        blocks.append(rest[:size])
        rest, size = rest[size:], size * 2
    known: dict[int, dict[str, int | None]] = {}
    for name in names:
        curve = analysis.curves[name]
        indices = curve.diff_errors.first_indices(curve.failure_threshold)
        for k in np.flatnonzero(indices > -2).tolist():
            if name not in todo.get(k, ()):
                known.setdefault(k, {})[name] = None if indices[k] < 0 else int(indices[k])
    # the sample's rows measured before: whether each is monotone (see _needs_full_grid)
    sample_rows = {name: [0, 0] for name in names}
    for k in sample:
        for name in known.get(k, {}):
            curve = analysis.curves[name]
            sample_rows[name][0] += _not_monotone(curve.diff_errors[k], curve.failure_threshold)
            sample_rows[name][1] += 1
    return [block for block in blocks if block], known, sample_rows


class _SearchRun:
    """One search: resume or start the analysis under its file's lock, search what is missing
    (here, or in shards on an executor), checkpoint as results arrive, and say what was skipped.

    ``model_for(sources) -> _ModelSpec`` builds the model (the model-free matcher needs the
    images); ``started(analysis)`` is told the analysis before any prediction.
    """

    def __init__(self, settings: _SearchSettings, request: _SearchRequest,
                 model_for: Callable[[Sequence[_Source]], _ModelSpec], events: list | None = None):
        self.settings, self.request, self.model_for, self.events = settings, request, model_for, events
        self.predict_calls = 0

    def run(self, started: Callable[[Analysis], None]) -> Analysis:
        settings, request = self.settings, self.request
        sources, labels, path = request.sources, request.labels, request.path
        if path is not None and (problem := _unwritable(path)) is not None:
            return self._read_only(path, problem, started)
        with _lock_for_file(path) if path is not None else contextlib.nullcontext():
            analysis = Analysis.resume_or_start(path, settings.fingerprint(sources, labels, request.step), settings,
                                                sources, labels, request.step, request.release_rows)
            request.keep_strategy_of(analysis)
            for curve in analysis.curves.values():
                curve.failure_threshold, curve.strategy = settings.failure_threshold, request.strategy
            analysis.settings["strategy"], analysis.group_by = request.strategy, settings.group_by
            analysis.classes()  # a group_by that fails on a label fails now, before any prediction
            analysis.settings["grid_sample"] = None if request.strategy == "grid" else sorted(request.full_grid)
            started(analysis)
            todo = analysis.missing(settings.augmentations, request.full_grid)
            try:
                if todo:
                    self._search_missing(analysis, todo)
                elif path is not None and not os.path.exists(path):
                    analysis.save(path)
            finally:  # an interrupted search's report draws what it searched, too
                if path is not None:
                    _keep_images(analysis, sources, path)
            if _measure_strengths(analysis, sources, settings) and path is not None:
                analysis.checkpoint(path, release=request.release_rows)
        if skipped := analysis.skipped:
            listed = "; ".join(item["reason"] for item in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
            warnings.warn(f"{len(skipped)} of {len(sources)} images skipped ({listed}). They are listed in "
                          f"analysis.skipped and in the report; a re-run tries them again.", stacklevel=3)
            if len(skipped) == len(sources):
                raise AugmentError(f"every image was skipped, nothing was searched: {listed}")
        return analysis

    def _read_only(self, path: str, problem: str, started: Callable[[Analysis], None]) -> Analysis:
        """A cache in a folder this process cannot write (a read-only mount): used as it is when it
        holds the whole search, with no lock and nothing written; anything else is an error."""
        settings, request = self.settings, self.request
        cached = load_analysis(path)
        request.keep_strategy_of(cached)
        fingerprint = settings.fingerprint(request.sources, request.labels, request.step)
        changed = [name for name in settings.augmentations
                   if name not in cached.curves or cached.curves[name].definition != CATALOGUE[name].definition]
        reason = ("it was made from other images, labels or settings" if cached.fingerprint != fingerprint else
                  f"it lacks {', '.join(changed)}" if changed else None)
        if reason is None:  # an image skipped before (unreadable) is skipped again, as a writable run does
            todo = [k for k in cached.missing(settings.augmentations, request.full_grid) if not cached.images[k].error]
            reason = f"{len(todo)} images are still to search" if todo else None
        if reason is not None:
            raise AugmentError(f"cannot write the analysis file {path}: {problem}; and it cannot be used as it is: "
                               f"{reason}")
        cached.group_by = settings.group_by
        started(cached)
        return cached

    def _search_missing(self, analysis: Analysis, todo: dict[int, list[str]]) -> None:
        settings, request = self.settings, self.request
        batch = settings.batch_size
        job = _SearchJob(
            sources=dict(enumerate(request.sources)), todo=todo, full_grid=request.full_grid,
            labels=dict(enumerate(request.labels)) if request.labels is not None else None,
            strategy=request.strategy, grid=analysis.intensities, failure_threshold=settings.failure_threshold,
            seed=settings.seed, batch_size=batch, max_pixels=settings.max_image_pixels,
            label_format=settings.label_format, rotate_method=settings.rotate_method, describe=settings.describe,
            images_in_flight=request.images_in_flight or max(2, math.ceil(4 * batch / len(settings.augmentations))),
            custom=_custom_entries(settings.augmentations))
        if request.strategy == "guided":
            job.blocks, job.known, job.sample_rows = _guided_blocks(analysis, settings.augmentations, todo,
                                                                    request.full_grid)
        checkpoint = _Checkpointer(analysis, request.path, settings.checkpoint_seconds, request.release_rows)
        from tqdm.auto import tqdm

        try:
            with tqdm(total=sum(map(len, todo.values())), unit="pair", desc=f"search ({request.strategy})",
                      disable=not settings.progress, smoothing=0.1) as bar:
                if request.executor is None:
                    self._search_here(job, checkpoint, bar)
                else:
                    self._search_sharded(job, checkpoint, bar)
        except BaseException as exc:
            # Whatever ended the search (an error, Ctrl-C), finished pairs are kept; a save that
            # fails too (the disk is full) is said in a note, not as a second traceback.
            try:
                checkpoint.save()
            except OSError as save_error:
                if save_error is not exc and str(save_error) != str(exc):
                    exc.add_note(f"augment.py: the last checkpoint could not be saved either: {save_error}")
            raise
        checkpoint.save(final=True)

    def _search_here(self, job: _SearchJob, checkpoint: _Checkpointer, bar: Any) -> None:
        spec = self.model_for(self.request.sources)
        predictor, num_workers = spec.predictor(), self.request.num_workers
        workers = _usable_cores() if num_workers is None else num_workers
        renders = sum(map(len, job.todo.values())) * (len(job.grid) - 1)
        # By default workers start only where they pay: a large search, and cores to spare next
        # to the model's (on 2 cores the benchmark measured workers 1.4x slower than inline).
        pooled = workers > 1 and (num_workers is not None or (renders >= _POOL_MIN_RENDERS and workers >= 4))
        if pooled and _pickle_error(job.custom) is not None:
            warnings.warn(f"rendering in this process: a registered augmentation of {[e.name for e in job.custom]} "
                          f"cannot be sent to worker processes (define its build or function at module level)",
                          stacklevel=4)
            pooled = False
        renderer = _render_pool(workers) if pooled else _InlineExecutor()
        try:
            with predictor:
                _SearchPipeline(job, predictor, spec.diff_error, renderer, events=self.events, on_pair=bar.update,
                                on_result=lambda result: checkpoint.merge([result])).run()
        except concurrent.futures.process.BrokenProcessPool as exc:
            raise RuntimeError(
                f"the {workers} render worker processes stopped ({exc}). A script that starts a search "
                f"needs the `if __name__ == '__main__':` guard (workers re-import it); or pass "
                f"num_workers=0 to render in this process. Finished images are in the analysis file.") from exc
        finally:
            self.predict_calls += predictor.calls
            renderer.shutdown(wait=True, cancel_futures=True)

    def _search_sharded(self, job: _SearchJob, checkpoint: _Checkpointer, bar: Any) -> None:
        spec = self.model_for(self.request.sources)
        _check_picklable(spec.predict if spec.predict is not None else spec.factory,
                         "my_predict" if spec.factory is None else "predict_factory")
        _check_picklable(spec.diff_error, "diff_error")
        _check_picklable(job.custom, "a registered augmentation")
        indices = list(job.todo)
        size = self.request.images_per_shard or max(1, min(256, math.ceil(len(indices) / 16)))

        def parts() -> Iterator[tuple[list[int], _SearchJob]]:
            for start in range(0, len(indices), size):
                shard = indices[start:start + size]
                members = frozenset(shard)
                yield shard, dataclasses.replace(
                    job, sources={k: job.sources[k] for k in shard}, todo={k: job.todo[k] for k in shard},
                    labels={k: job.labels[k] for k in shard} if job.labels is not None else None,
                    full_grid=job.full_grid & members,
                    blocks=None if job.blocks is None else [[k for k in block if k in members] for block in job.blocks],
                    known={}, sample_rows={})  # a shard learns from its own images only (a resume cuts others)

        # Shards are submitted as earlier ones finish, a few per worker at a time: a task the
        # executor holds keeps its images' sources (and, for arrays, their pixels) in this process.
        waiting, futures = parts(), {}
        limit = _shards_in_flight(self.request.executor)
        error: BaseException | None = None
        try:
            while True:
                for shard, part in itertools.islice(waiting, max(0, limit - len(futures))):
                    futures[self.request.executor.submit(_run_shard, part, spec)] = shard
                if not futures:
                    break
                done, _ = concurrent.futures.wait(list(futures), timeout=1.0,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                done |= {future for future in futures if future.cancelled()}  # wait() misses an unnotified cancel
                for future in done:
                    shard = futures.pop(future)  # a merged shard's results are not kept alive by its future
                    try:
                        results, calls = future.result()
                    except concurrent.futures.CancelledError:  # not by this search: said, not lost
                        error = error or AugmentError(
                            f"the executor cancelled the shard of images {shard[0]}-{shard[-1]} ({len(shard)} "
                            f"images); the other shards are saved, and a re-run searches what is missing")
                        continue
                    except Exception as exc:  # a failed shard costs only itself: the others finish and
                        error = error or exc  # are saved, then the first error is raised
                        continue
                    self.predict_calls += calls
                    checkpoint.merge(results)  # packed: merged a column at a time
                    bar.update(sum(len(job.todo[k]) for k in shard))
                    del results
                done = future = None  # nothing of a merged shard stays alive while the next ones run
        except BaseException:  # Ctrl-C: do not wait for the shards still running
            for future in futures:
                future.cancel()
            raise
        if error is not None:
            if "No module named 'augment'" in f"{error} {error.__cause__} {error.__context__}":
                error.add_note("augment.py: every machine of the cluster needs augment.py importable, the Dask "
                               "scheduler too (it unpickles the task graph): the same requirements installed and "
                               "augment.py on PYTHONPATH (see the README, 'Large searches')")
            raise error


class _Checkpointer:
    """Merges finished images into the analysis and saves it now and then.

    Saves at most every ``seconds`` and never spend more than ~5 % of the time saving:
    a save that took s seconds defers the next one by at least 20 s. With ``release``, also
    once _PENDING_ROWS rows wait in memory for their shard (what bounds a large search's memory).
    """

    def __init__(self, analysis: Analysis, path: str | None, seconds: float, release: bool = False):
        self.analysis, self.path, self.seconds, self.release = analysis, path, seconds, release
        self.last, self.cost = time.monotonic(), 0.0

    def merge(self, results: Iterable[_ImageResult] | _PackedResults) -> None:
        if isinstance(results, _PackedResults):
            results.merge_into(self.analysis)
        else:
            _merge_results(self.analysis, results)
        if self.path is None:
            return
        waiting = self.release and self.analysis.rows_waiting()
        if time.monotonic() - self.last >= max(self.seconds, 20 * self.cost) or waiting >= _PENDING_ROWS:
            self.save()

    def save(self, final: bool = False) -> None:
        """Save the new rows; the end of a search leaves them in one shard when there are many."""
        if self.path is None:
            return
        started = time.monotonic()
        self.analysis.checkpoint(self.path, compact=final and self.analysis.shard_count() >= _COMPACT_AFTER_SEARCH,
                                 release=self.release)
        self.last = time.monotonic()
        self.cost = self.last - started


def _keep_images(analysis: Analysis, sources: Sequence[_Source], path: str) -> None:
    """For a search given arrays: copies of them beside the analysis file, so the report and the
    compare page draw them later without the arrays. The report's pictures first (each
    augmentation's exemplar, then the images that fail earliest), then in order, up to
    KEPT_IMAGE_BYTES; written only when one is missing. A failure is a warning: the analysis is saved."""
    arrays = {k for k, source in enumerate(sources) if source.array is not None and not analysis.images[k].error}
    if not arrays:
        return
    try:
        summaries = analysis.summaries()
        earliest = sorted(arrays, key=lambda k: (min((s.first_failure_intensities[k] or 2.0) for s in
                                                     summaries.values()) if summaries else 2.0, k))
        exemplars = [s.exemplar["image"] for s in summaries.values() if s.exemplar is not None]
        order, total = [], 0
        for k in dict.fromkeys([k for k in exemplars if k in arrays] + earliest):
            total += sources[k].array.nbytes
            if total > KEPT_IMAGE_BYTES:
                break
            order.append(k)
        keys = {k: analysis.images[k].digest or analysis.images[k].file for k in order}
        kept = _KeptImages(path)
        if all(key in kept for key in keys.values()):
            return
        _write_kept_images(path, {key: kept.get(key) if key in kept else sources[k].load() for k, key in keys.items()})
    except (OSError, AugmentError, ValueError) as exc:
        warnings.warn(f"augment.py: could not keep copies of the searched arrays beside {path} ({exc}); the report "
                      f"and compare need them given again (images=...)", stacklevel=4)


_STRENGTH_IMAGES = 4  # images a perceptual strength is measured on (the full-grid sample's first)


def _measure_strengths(analysis: Analysis, sources: Sequence[_Source], settings: _SearchSettings) -> bool:
    """Each curve's perceptual strength (ImageNet-C severity units per grid intensity), for curves
    that lack one or were measured on another calibration: on up to _STRENGTH_IMAGES searched images
    (the full-grid sample first), rendered with the search's own seeds. Returns whether any curve
    changed. A failure is a warning: the search's results stand without it."""
    if not settings.measure_strength:
        return False
    stale = analysis.settings.get("severity_calibration") != SEVERITY_CALIBRATION
    todo = [name for name, curve in analysis.curves.items()
            if name in CATALOGUE and (stale or curve.perceptual_strength is None)]
    usable = [k for k, record in enumerate(analysis.images) if not record.error and record.digest]
    if not todo or not usable:
        return False
    allowed = set(usable)
    sample = [k for k in analysis.settings.get("grid_sample") or [] if k in allowed][:_STRENGTH_IMAGES]
    chosen = sample + [k for k in usable[:2 * _STRENGTH_IMAGES] if k not in sample][:_STRENGTH_IMAGES - len(sample)]
    try:
        images = [sources[k].load(settings.max_image_pixels) for k in chosen]
    except (OSError, AugmentError) as exc:
        warnings.warn(f"augment.py: the perceptual strengths were not measured ({exc}); the report shows "
                      f"intensities only", stacklevel=4)
        return False
    failed = []
    for name in todo:
        curve = analysis.curves[name]
        seeds = [_derive_seed(settings.seed, analysis.images[k].digest, name) for k in chosen]
        try:
            curve.perceptual_strength = perceptual_strength(images, name, curve.intensities, seeds)
        except Exception as exc:  # a registered augmentation's own code, on a 96 px copy: the search stands
            curve.perceptual_strength = None
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    if failed:
        warnings.warn(f"augment.py: no perceptual strength for {'; '.join(failed)}; the report shows their "
                      f"intensities only", stacklevel=4)
    analysis.settings["severity_calibration"], analysis.settings["severity_images"] = SEVERITY_CALIBRATION, len(chosen)
    return True


def _merge_record(analysis: Analysis, index: int, output: str, label_error: float | None, error: str | None,
                  output_view: Any, digest: str | None) -> None:
    """An image's record from what the search learnt of it (a skipped image: only why)."""
    record = analysis.images[index]
    record.error = error
    if error is None:
        record.output, record.label_error, record.output_view = output, label_error, output_view
        record.digest = digest or record.digest


def _merge_results(analysis: Analysis, results: Iterable[_ImageResult]) -> None:
    for result in results:
        _merge_record(analysis, result.index, result.output, result.label_error, result.error, result.output_view,
                      result.digest)
        if result.error is not None:
            continue
        for name, row in result.diff_errors.items():
            curve = analysis.curves[name]
            curve.diff_errors[result.index] = row
            if curve.label_errors is not None and result.label_errors is not None:
                curve.label_errors[result.index] = result.label_errors[name]
            curve.last_success_output[result.index] = result.last_success_output[name]
            curve.first_failure_output[result.index] = result.first_failure_output[name]
            if curve.last_success_view is not None:
                curve.last_success_view[result.index] = result.last_success_view.get(name)
                curve.first_failure_view[result.index] = result.first_failure_view.get(name)
