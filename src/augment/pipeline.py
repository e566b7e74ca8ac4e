"""The search pipeline: render, predict and score one shard of (image, augmentation) pairs,
in this process, in render worker processes, or on an executor's workers."""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .catalogue import CATALOGUE, Augmentation, _apply_augmentation, _transform
from .custom import _adopt
from .helpers import AugmentError, _derive_seed, _image_digest, _owned_cache
from .images import PredictFailure, _checked_diff, _describe_output, _output_view, _Predictor, _Source
from .labels import _LabelFormat, _move_with_pixels, _rotated_box_range
from .probes import _needs_full_grid, _not_monotone, _start_probe


@dataclass
class _ImageResult:
    """What the search learns about one image, for some of its augmentations (a finished pair
    is handed on at once), before it joins the Analysis."""

    index: int
    output: str  # the model's output on the image, as a short text (see _describe_output)
    label_error: float | None
    diff_errors: dict[str, list[float | None]]
    label_errors: dict[str, list[float | None]] | None
    last_success_output: dict[str, str]
    first_failure_output: dict[str, str | None]
    error: str | None = None  # why the image was skipped (then there are no rows)
    output_view: Any = None  # positional outputs: what the report draws (see _output_view)
    last_success_view: dict[str, Any] = field(default_factory=dict)
    first_failure_view: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None  # of the pixels: compare pairs images by it

    @classmethod
    def skipped(cls, index: int, reason: str) -> _ImageResult:
        return cls(index=index, output="", label_error=None, diff_errors={}, label_errors=None,
                   last_success_output={}, first_failure_output={}, error=reason)


@dataclass
class _SearchJob:
    """One process's share of a search; picklable, so it can travel to executor workers."""

    sources: dict[int, _Source]
    todo: dict[int, list[str]]  # image index -> augmentations to search
    labels: dict[int, Any] | None
    full_grid: frozenset[int]  # images probed on the whole grid whatever the strategy
    strategy: str
    grid: list[float]
    failure_threshold: float
    seed: int
    batch_size: int
    images_in_flight: int
    max_pixels: int | None = None
    label_format: str | dict | None = None  # positional kinds move the reference with geometric augmentations
    rotate_method: str = "largest_box"
    describe: Callable[[Any], str] | None = None
    custom: tuple[Augmentation, ...] = ()  # registered augmentations it uses: workers adopt them
    # Guided strategy: images in blocks, searched one block after another; each block's probes learn
    # from the first failures (grid indices, None: never) of the blocks before it, the ones searched
    # now and the ones ``known`` from earlier runs. None: one block, no learning.
    blocks: list[list[int]] | None = None
    known: dict[int, dict[str, int | None]] = field(default_factory=dict)
    # per augmentation, [rows not monotone, rows] of the full-grid sample measured before (see _needs_full_grid)
    sample_rows: dict[str, list[int]] = field(default_factory=dict)
    # Unique per search: Dask treats equal task arguments as the same task and would hand back a
    # previous run's result, or its error, for a shard that is re-run.
    run: str = field(default_factory=lambda: uuid.uuid4().hex)

    @functools.cached_property
    def label_form(self) -> _LabelFormat:
        return _LabelFormat.of(self.label_format)

    def moves(self, name: str) -> bool:
        """Whether the reference output (and label) moves with the pixels under ``name``."""
        return self.label_form.positional and CATALOGUE[name].geometric


def _render(image: np.ndarray, name: str, intensities: Sequence[float], item_seed: int,
            custom: Sequence[Augmentation] = ()) -> list[np.ndarray]:
    """The augmented images one probe asks for (runs in a render worker or inline)."""
    _adopt(custom)
    return [_apply_augmentation(image, name, t, item_seed) for t in intensities]


def _render_moved(image: np.ndarray, name: str, intensities: Sequence[float], item_seed: int, job: _SearchJob,
                  targets: list, whats: list[str]) -> list[tuple[np.ndarray, list[list]]]:
    """Like _render (the same pixels), with the reference output and label moved alongside: per
    target, the references it is compared with (one; for boxes under a rotation, the range of boxes
    the rotated object's true box may be, so that no box convention decides the verdict)."""
    _adopt(job.custom)
    rendered = []
    for t in intensities:
        where = [f"{what} at {name} {t}" for what in whats]
        boxes = job.label_form.kind == "bbox"  # boxes compare with a range; other kinds move by rotate_method
        moved_image, moved = _move_with_pixels(image, [(name, t)], item_seed, job.label_form, targets, where,
                                               "largest_box" if boxes else job.rotate_method)
        if boxes and _rotates(name, t, image.shape[0], image.shape[1]):
            _, ellipse = _move_with_pixels(image, [(name, t)], item_seed, job.label_form, targets, where, "ellipse")
            rendered.append((moved_image, [_rotated_box_range(a, b) for a, b in zip(ellipse, moved)]))
        else:
            rendered.append((moved_image, [[target] for target in moved]))
    return rendered


def _rotates(name: str, intensity: float, height: int, width: int) -> bool:
    """Whether the transform of (name, intensity) rotates boxes (it has a rotate_method to choose)."""
    return hasattr(_transform(name, round(intensity, 6), height, width), "rotate_method")


class _InlineExecutor(concurrent.futures.Executor):
    """Runs each task at submit time: the pipeline without worker processes."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered by future.result(), as a pool would
            future.set_exception(exc)
        return future


_NOT_PREDICTED = object()  # an image's output before the model has seen it


class _Pair:
    """The probe of one (image, augmentation) and what it has measured so far."""

    def __init__(self, name: str, points: int, strategy: str, with_labels: bool, moves: bool,
                 prior: Sequence[float] | None = None):
        self.name, self.moves = name, moves
        self.done = False
        self.probe = _start_probe(strategy, points, prior)
        self.row: list[float | None] = [0.0] + [None] * points
        self.label_row: list[float | None] | None = [None] * (points + 1) if with_labels else None
        self.outputs: dict[int, Any] = {}
        self.moved: dict[int, list] = {}  # grid index -> [reference, label] moved with the pixels
        self.request: tuple[int, ...] = next(self.probe)
        self.waiting = set(self.request)
        self.first_failure: int | None = None


class _Image:
    """One image in flight: its pixels, its pairs and the model's output on it."""

    def __init__(self, index: int, source: _Source, image: np.ndarray, pairs: dict[str, _Pair], label: Any):
        self.index, self.source, self.image, self.pairs, self.label = index, source, image, pairs, label
        self.original: Any = _NOT_PREDICTED
        self.label_error: float | None = None
        self.remaining = len(pairs)
        self.digest = _image_digest(image)  # seeds the random draws (not the path: data moves)

    def result(self, names: Iterable[str], kind: str, describe: Callable | None) -> _ImageResult:
        """What the finished pairs ``names`` measured."""
        text = functools.partial(_describe_output, kind=kind, describe=describe)
        view = functools.partial(_output_view, kind=kind)
        result = _ImageResult(
            index=self.index, output=text(self.original), label_error=self.label_error,
            diff_errors={}, label_errors={} if self.label_error is not None else None,
            last_success_output={}, first_failure_output={}, output_view=view(self.original), digest=self.digest)
        for name in names:
            pair = self.pairs[name]
            result.diff_errors[name] = pair.row
            if result.label_errors is not None:
                pair.label_row[0] = self.label_error  # intensity 0 is the image itself
                result.label_errors[name] = pair.label_row
            first = pair.first_failure
            last = max(i for i, d in enumerate(pair.row) if d is not None and (first is None or i < first))
            success = self.original if last == 0 else pair.outputs[last]
            result.last_success_output[name], result.last_success_view[name] = text(success), view(success)
            failure = pair.outputs[first] if first is not None else None
            result.first_failure_output[name] = text(failure) if first is not None else None
            result.first_failure_view[name] = view(failure) if first is not None else None
        return result


class _SearchPipeline:
    """Searches one job in this process; see the section comment.

    ``run`` loops over five steps until every image is done: admit images (decode a few,
    queue each original for the model and each pair's first request), submit renders
    (while memory allows), predict what is ready (full batches), collect renders, and
    finish a pair once its requested intensities are predicted (score them against the
    reference, then ask the probe for more or hand the pair's result on).

    Hooks: ``on_result(result)`` receives each finished pair's ``_ImageResult`` and each
    skipped image's; ``on_pair(n)`` counts finished pairs; ``events``, when a list, records
    ("decode", index) and ("release", index) as images enter and leave memory.
    """

    byte_limit = 512 * 2**20  # rendered but unpredicted pixels, bounded by bytes as well as count

    def __init__(self, job: _SearchJob, predictor: _Predictor, diff_error: Callable,
                 renderer: concurrent.futures.Executor, on_result: Callable[[_ImageResult], None],
                 on_pair: Callable[[int], None] | None = None, events: list | None = None):
        self.job, self.predictor, self.diff_error, self.renderer = job, predictor, diff_error, renderer
        self.on_result, self.on_pair, self.events = on_result, on_pair, events
        self.kind = job.label_form.kind
        self.limit = 4 * job.batch_size  # images rendered or rendering, not yet predicted
        self.pending: collections.deque[tuple[int, list[str]]] = collections.deque()  # this block's, not decoded
        self.blocks = collections.deque(self._blocks())
        points = len(job.grid) - 1
        names = {name for names in job.todo.values() for name in names}
        self.priors = {name: np.zeros(points + 2) for name in names} if job.strategy == "guided" else {}
        self.learned: list[tuple[str, int | None]] = []  # first failures of this block, and of known images
        self.sample_rows = {name: list(job.sample_rows.get(name, (0, 0))) for name in self.priors}
        self.on_full_grid: set[str] = set()  # guided: augmentations whose sample rows were not monotone
        self.active: dict[int, _Image] = {}
        self.deferred: dict[int, list[str]] = {}  # pairs that move the reference: wait for the original
        self.wanted: collections.deque[tuple[int, str]] = collections.deque()  # (image, pair) to render next
        self.rendering: collections.deque[tuple[concurrent.futures.Future, int, str, tuple[int, ...]]] = \
            collections.deque()
        self.ready: collections.deque[tuple[int, str | None, int, np.ndarray]] = collections.deque()
        self.in_flight_images = self.in_flight_bytes = 0

    def _blocks(self) -> list[tuple[list[tuple[int, list[str]]], list[tuple[str, int | None]]]]:
        """Per block: its images still to search (with their augmentations) and its known first failures."""
        job = self.job
        if job.blocks is None:
            return [(list(job.todo.items()), [])]
        return [([(k, job.todo[k]) for k in block if k in job.todo],
                 [(name, first) for k in block for name, first in job.known.get(k, {}).items()])
                for block in job.blocks]

    def next_block(self) -> None:
        """Learn from the finished block (and its known images), then queue the next one."""
        points = len(self.job.grid) - 1
        for name, first in self.learned:
            if name in self.priors:
                self.priors[name][points + 1 if first is None else first] += 1
        items, known = self.blocks.popleft()
        self.learned = list(known)
        self.pending.extend(items)
        self.on_full_grid = {name for name, (bad, rows) in self.sample_rows.items() if _needs_full_grid(bad, rows)}

    def run(self) -> None:
        while True:
            while not self.pending and not self.active and self.blocks:
                self.next_block()
            self.admit_images()
            self.submit_renders()
            if len(self.ready) >= self.job.batch_size or (self.ready and not self.rendering):
                self.predict_ready()
            elif self.rendering:
                self.collect_render()
            elif not self.pending and not self.active:
                if not self.blocks:
                    return
                # every image of this block was skipped (unreadable, too large): on to the next block
            else:  # pragma: no cover - a bookkeeping bug, never a user error
                raise RuntimeError(f"search pipeline stalled with {len(self.active)} images in flight")

    # -- the steps ---------------------------------------------------------------------

    def admit_images(self) -> None:
        job, points = self.job, len(self.job.grid) - 1
        while self.pending and len(self.active) < job.images_in_flight and len(self.wanted) < self.limit:
            index, names = self.pending.popleft()
            try:
                image = job.sources[index].load(job.max_pixels)
            except AugmentError as exc:  # unreadable, empty, not an image, too large: skipped and recorded
                self.give_up(index, len(names), str(exc))
                continue
            strategy = "grid" if index in job.full_grid else job.strategy
            label = job.label_form.value(job.labels[index]) if job.labels is not None else None
            pairs = {name: _Pair(name, points, "grid" if name in self.on_full_grid else strategy,
                                 job.labels is not None, job.moves(name),
                                 self.priors[name].copy() if name in self.priors else None) for name in names}
            self.active[index] = _Image(index, job.sources[index], image, pairs, label)
            if self.events is not None:
                self.events.append(("decode", index))
            self.ready.append((index, None, 0, image))
            self._count(1, image.nbytes)
            self.wanted.extend((index, name) for name in names if not pairs[name].moves)
            self.deferred[index] = [name for name in names if pairs[name].moves]

    def submit_renders(self) -> None:
        while self.wanted and (self.in_flight_images == 0 or (
                self.in_flight_images < self.limit and self.in_flight_bytes < self.byte_limit)):
            index, name = self.wanted.popleft()
            if index not in self.active:
                continue
            state = self.active[index]
            pair, grid = state.pairs[name], self.job.grid
            intensities, item_seed = [grid[i] for i in pair.request], _derive_seed(self.job.seed, state.digest, name)
            if pair.moves:
                whats = [f"output of image {state.source.key} (label_format {self.job.label_format!r} is the "
                         f"model's output format too)", f"label of image {state.source.key}"]
                future = self.renderer.submit(_render_moved, state.image, name, intensities, item_seed, self.job,
                                              [state.original, state.label], whats)
            else:
                future = self.renderer.submit(_render, state.image, name, intensities, item_seed, self.job.custom)
            self.rendering.append((future, index, name, pair.request))
            self._count(len(pair.request), len(pair.request) * state.image.nbytes)

    def collect_render(self) -> None:
        future, index, name, request = self.rendering.popleft()
        try:
            rendered = future.result()
        except Exception as exc:  # the user's augmentation code: keep its type and traceback, name the image
            source = self.active[index].source.key if index in self.active else f"image {index}"
            exc.add_note(f"augment.py: while rendering {name} at intensities "
                         f"{', '.join(f'{self.job.grid[i]:g}' for i in request)} of image {source}")
            raise
        state = self.active.get(index)
        if self.job.moves(name):  # (array, moved reference) pairs, also for an image given up on meanwhile
            if state is not None:
                state.pairs[name].moved.update((point, moved) for point, (_, moved) in zip(request, rendered))
            rendered = [array for array, _ in rendered]
        self.ready.extend((index, name, point, array) for point, array in zip(request, rendered))

    def predict_ready(self) -> None:
        grid = self.job.grid
        items = [self.ready.popleft() for _ in range(min(self.job.batch_size, len(self.ready)))]
        self._count(-len(items), -sum(item[3].nbytes for item in items))
        items = [item for item in items if item[0] in self.active]  # not images given up on
        names = [f"image {self.active[i].source.key}" + (
            "" if name is None else f", augmentation {name}, intensity {grid[point]}") for i, name, point, _ in items]
        paths = [self.active[i].source.path if name is None else None for i, name, _, _ in items]
        outputs = self.predictor([item[3] for item in items], paths, names)
        for (index, name, point, _), output in zip(items, outputs):
            state = self.active.get(index)
            if state is None:
                continue
            if isinstance(output, PredictFailure):
                self.give_up(index, state.remaining, output.reason)
            elif name is None:
                self._original_predicted(state, output)
            else:
                pair = state.pairs[name]
                pair.outputs[point] = output
                pair.waiting.discard(point)
                if not pair.waiting and state.original is not _NOT_PREDICTED:
                    self.finish_pair(state, pair)

    def finish_pair(self, state: _Image, pair: _Pair) -> None:
        job = self.job
        for index in pair.request:
            where = f"image {state.source.key}, augmentation {pair.name}, intensity {job.grid[index]}"
            references, labels = pair.moved.pop(index) if pair.moves else ([state.original], [state.label])
            pair.row[index] = round(min(_checked_diff(self.diff_error, pair.outputs[index], reference, where)
                                        for reference in references), 4)
            if pair.label_row is not None:
                pair.label_row[index] = round(min(_checked_diff(self.diff_error, pair.outputs[index], label,
                                                                where + ", label") for label in labels), 4)
        try:
            pair.request = pair.probe.send({i: pair.row[i] >= job.failure_threshold for i in pair.request})
            pair.waiting = set(pair.request)
            self.wanted.append((state.index, pair.name))
            return
        except StopIteration as stop:
            pair.first_failure, pair.done = stop.value, True
            self.learned.append((pair.name, stop.value))
            if pair.name in self.sample_rows and state.index in job.full_grid:
                self.sample_rows[pair.name][0] += _not_monotone(pair.row, job.failure_threshold)
                self.sample_rows[pair.name][1] += 1
        state.remaining -= 1
        if self.on_pair is not None:
            self.on_pair(1)
        self.on_result(state.result([pair.name], self.kind, job.describe))
        pair.outputs.clear()  # the result keeps texts and views; the outputs themselves can go
        if state.remaining == 0:
            self._release(state.index)

    # -- bookkeeping -----------------------------------------------------------------------

    def _original_predicted(self, state: _Image, output: Any) -> None:
        state.original = output
        if self.job.labels is not None:
            state.label_error = _checked_diff(self.diff_error, output, state.label,
                                              f"image {state.source.key}, label")
        self.wanted.extend((state.index, name) for name in self.deferred.pop(state.index, []))
        for pair in list(state.pairs.values()):
            if not pair.done and not pair.waiting and not pair.moves:  # answered before the original was
                self.finish_pair(state, pair)

    def give_up(self, index: int, pairs: int, reason: str) -> None:
        self._release(index)
        self.on_result(_ImageResult.skipped(index, reason))
        if self.on_pair is not None:
            self.on_pair(pairs)

    def _release(self, index: int) -> None:
        self.deferred.pop(index, None)
        if self.active.pop(index, None) is not None and self.events is not None:
            self.events.append(("release", index))

    def _count(self, images: int, nbytes: int) -> None:
        self.in_flight_images += images
        self.in_flight_bytes += nbytes


# predict functions made by a predict_factory, one per factory in each process
_WORKER_MODELS: dict[str, Callable] = _owned_cache("pipeline: models made by a predict_factory", {})
_WORKER_MODELS_LOCK = threading.Lock()
_POOL_MIN_RENDERS = 20_000  # smaller searches render inline: starting workers would cost more


@dataclass
class _ModelSpec:
    """How any process gets the model: ``predict`` itself, or ``factory()`` called once per process."""

    predict: Callable | None
    factory: Callable | None
    token: str
    batch_size: int | None
    predict_input: str
    diff_error: Callable
    on_error: str = "raise"

    def predict_function(self) -> Callable:
        if self.predict is not None:
            return self.predict
        with _WORKER_MODELS_LOCK:
            if self.token not in _WORKER_MODELS:
                predict = self.factory()
                if not callable(predict):
                    raise AugmentError(f"predict_factory must return a predict function, got {type(predict).__name__}")
                _WORKER_MODELS[self.token] = predict
            return _WORKER_MODELS[self.token]

    def predictor(self) -> _Predictor:
        return _Predictor(self.predict_function(), self.batch_size, self.predict_input, self.on_error)


def _factory_token(factory: Callable | None) -> str:
    """The same factory (by its pickled bytes) shares one model per worker, across augmenters."""
    if factory is None:
        return uuid.uuid4().hex
    import pickle

    try:
        return hashlib.sha256(pickle.dumps(factory)).hexdigest()
    except Exception:  # not picklable by pickle (dask's cloudpickle may still ship it)
        return uuid.uuid4().hex


def _shards_in_flight(executor: concurrent.futures.Executor) -> int:
    """How many shards a search keeps submitted: two per worker thread the executor says it has
    (a Dask client's, a pool's), else 64."""
    try:
        client = getattr(executor, "_client", None)  # distributed's ClientExecutor
        threads = sum(client.nthreads().values()) if client is not None else executor._max_workers
        return max(4, 2 * int(threads))
    except Exception:  # another kind of executor
        return 64


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _exit_with(parent: int) -> None:
    """Block until process ``parent`` is gone, then end this one (a render worker's watchdog).

    A pool's workers otherwise outlive a parent killed by SIGKILL, holding their memory. Linux
    tells a pidfd's poller when the process exits; elsewhere the parent is polled."""
    try:
        import select

        select.select([os.pidfd_open(parent)], [], [])
    except (AttributeError, OSError):
        while os.getppid() != 1 and _process_alive(parent):
            time.sleep(0.5)
    os._exit(1)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _render_worker_start(parent: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # the workers are the parallelism
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="augment-watchdog").start()


def _render_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Worker processes for rendering; forkserver (clean of the model's threads) where there is one."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "albumentations"])
    else:
        context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_render_worker_start,
                                                  initargs=(os.getpid(),))


def _pickle_error(value: Any) -> Exception | None:
    """Why ``value`` cannot go to worker processes by pickle (None: it can)."""
    import pickle

    try:
        pickle.dumps(value)
    except Exception as exc:
        return exc
    return None


def _check_picklable(value: Any, what: str) -> None:
    if (error := _pickle_error(value)) is None:
        return
    try:
        import cloudpickle  # what dask uses: lambdas and closures travel too

        cloudpickle.dumps(value)
    except Exception:
        raise AugmentError(f"{what} cannot be sent to executor workers ({error}); use a module-level "
                           f"function, or predict_factory (see the README, 'Distributed searches')") from None
