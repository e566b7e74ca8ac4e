"""augment.py: find where an image model breaks, then synthesize data up to that edge.

Bring any vision model as a Python ``predict`` function and a set of training
images. augment.py sweeps 24 augmentations (brightness, hue, blur, rotation,
crops, noise, ...) over intensities from 0 to 1, measures at which intensity the
model's output changes, caches that in ``analysis.json``, renders an offline
HTML report, synthesizes data sets whose strength is set by one ``realism``
knob, and evaluates models on them.

Public API
----------
ImageAugmenter(my_predict=None, diff_error=None, augmentations=ALL_AUGMENTATIONS,
               label_format=None, *, seed=0, batch_size=None, predict_input="auto",
               failure_threshold=0.5, on_error="raise", predict_factory=None,
               max_image_pixels=MAX_IMAGE_PIXELS, model_id=None, rotate_method="largest_box",
               describe=None, group_by=None, perceptual_ceiling=False, ...)
    .search_randomization_boundaries(images, labels=None, step_size_percent=0.05,
                                     analytics_cache="analysis.json", *, strategy="auto",
                                     grid_sample=None, num_workers=None, executor=None,
                                     rows_in_memory=None)
    .render_boundaries(html_dir="analytics", ...)
    .synthesize_more(organic_img_filenames, organic_labels=None, realism=0.5, ...)
    .evaluate(img_filenames, img_labels)
    .intensity_limits(realism) / .sampling_policy(realism) -> SamplingPolicy (.save(path), .load(path))
    .transform(realism, seed=None, p=1.0) -> RealismTransform   online, for training pipelines
    .set_augmentation_realism(name, realism) / .set_augmentation_weight(name, weight)
    .load_analysis(path)
    .set_augmentation_intensity(names, multiplier, min, max) / .get_synthesized_summary(output_dir)
    (ml-infinite-image-augment's README spellings searchRandomizationBoundries, renderBoundries and
    synthesizeMore, and its code's search_randomization_boundries and render_boundries, are aliases)
RealismTransform(policy_or_path, label_format=None, seed=None)   t(image) or t(image=..., bboxes=...)
register_augmentation(name, build | function=..., family=..., ...) -> Augmentation   your own, beside the 24
augment_image(image, name, intensity, seed=0) -> (H, W, 3) uint8
augment_with_labels(image, steps, labels, label_format, seed=0) -> (image, labels moved)
augmentation_seed(image, name, seed=0)   the seed of one image's random draws
load_image(source) -> (H, W, 3) uint8
load_analysis(path) -> Analysis (.curves[name] -> AugmentationCurve, .summarize() -> CurveSummary)
read_manifest(path) -> [SyntheticImage]
outputs_equal(output, reference) / default_diff_error(output, reference)
format_summary(analysis), catalogue_markdown(), file_schema("analysis" | "manifest" | "policy")
gradcam_frames(...) -> [CamFrame] / write_gradcam_gif(...)   Grad-CAM over one sweep
compare({name: analysis or path}, html_dir=None) -> Comparison (.shifts -> [AugmentationShift], .format())
realism_max_intensity(realism, onset, failure), TemplateMatcher, AugmentError
perceptual_distance(original, augmented), distance_to_severity(distance) -> ImageNet-C severity units,
perceptual_strength(images, name, intensities, seeds), SEVERITY_DISTANCES   one scale for every augmentation
realism_severity_ceiling(realism) -> 3 - 2 x realism   ImageAugmenter(..., perceptual_ceiling=True) bounds realism by it
CATALOGUE (name -> Augmentation), ALL_AUGMENTATIONS, EXTENDED_AUGMENTATIONS (opt-in), COLOR_AUGMENTATIONS,
DISTORTION_AUGMENTATIONS, PIXEL_DROPOUT_AUGMENTATIONS, MAX_IMAGE_PIXELS
clear_caches() / cache_info(), CACHE_CEILING_BYTES   every cache this process keeps, and their bound
main(argv=None)                                 the command line (python augment.py -h)

Contents (one module of src/augment/ each, in this order; generated)
--------
helpers.py    Helpers used everywhere
files.py      Files
fastpaths.py  Fast pixel paths
catalogue.py  The augmentation catalogue
custom.py     Your own augmentations
perceptual.py One perceptual scale for every augmentation
labels.py     Labels that follow the pixels
images.py     Loading images and calling the model
probes.py     Where to ask the model
pipeline.py   The search pipeline
formats.py    The file formats
rows.py       Per-image rows
stats.py      Statistics of one augmentation's rows
analysis.py   The analysis file
search.py     The search
gradcam.py    Grad-CAM over one augmentation sweep (gradcam_frames, write_gradcam_gif) and captioned pictures
report.py     The report
compare.py    Comparing models
policy.py     Sampling policies
synthesis.py  Synthesis and evaluation
transform.py  The training transform
augmenter.py  ImageAugmenter
cli.py        The command line

Quickstart
----------
>>> from augment import ImageAugmenter
>>> def predict(images):                      # a list of (H, W, 3) uint8 arrays
...     return [int(img.mean() > 127) for img in images]
>>> augmenter = ImageAugmenter(predict, batch_size=64, seed=0)
>>> analysis = augmenter.search_randomization_boundaries(["a.png", "b.png"])  # doctest: +SKIP
>>> analysis.curves["Brighten"].intensity_at_share(0.5)                        # doctest: +SKIP
0.35
>>> augmenter.render_boundaries("analytics")                                  # doctest: +SKIP
>>> files, labels = augmenter.synthesize_more(["a.png", "b.png"], realism=0.5)  # doctest: +SKIP
>>> augmenter.evaluate(files, labels)["accuracy"]                             # doctest: +SKIP
"""

# Generated by tools/amalgamate.py from the modules in src/augment/, one banner per module: edit
# those and run `python tools/amalgamate.py` (CI checks that this file is what they make).
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import difflib
import functools
import glob
import hashlib
import importlib
import importlib.util
import itertools
import json
import math
import numbers
import os
import re
import shlex
import sys
import tempfile
import threading
import time
import types
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# Run as a script, this very module is `augment` (not a second copy of it under `__main__`): Dask
# and worker processes send functions and classes by module name, and a user's module (--predict,
# --augmentations-from) that does `import augment` gets the module running the command.
# A copy under another name (tool.py) is the module `tool` (its workers import it by that name),
# and `augment` too for the user's modules. Under a profiler or tracer (python -m cProfile
# augment.py ...), __main__ is the tool's own namespace: then this file is loaded by its name
# and that module runs the command.
_RUN_AS_SCRIPT = __name__ == "__main__"
if _RUN_AS_SCRIPT:
    import importlib.util

    _NAME = os.path.splitext(os.path.basename(__file__))[0]
    _NAME = _NAME if _NAME.isidentifier() else "augment"
    _SPEC = importlib.util.spec_from_file_location(_NAME, os.path.abspath(__file__))
    if vars(sys.modules[__name__]) is not globals():
        _module = sys.modules[_NAME] = importlib.util.module_from_spec(_SPEC)
        sys.modules.setdefault("augment", _module)
        _SPEC.loader.exec_module(_module)
        sys.exit(_module.main())
    sys.modules[_NAME] = sys.modules[__name__]
    sys.modules.setdefault("augment", sys.modules[__name__])
    __name__, __spec__ = _NAME, _SPEC


__version__ = "0.4.0"  # 0.4: perceptual strengths (severity units); strategy "auto"; faster Superpixels, elastic

__all__ = [
    "ALL_AUGMENTATIONS",
    "CACHE_CEILING_BYTES",
    "CATALOGUE",
    "COLOR_AUGMENTATIONS",
    "DISTORTION_AUGMENTATIONS",
    "EXTENDED_AUGMENTATIONS",
    "MAX_IMAGE_PIXELS",
    "PIXEL_DROPOUT_AUGMENTATIONS",
    "SEVERITY_DISTANCES",
    "Analysis",
    "AugmentError",
    "Augmentation",
    "AugmentationCurve",
    "AugmentationShift",
    "CamFrame",
    "Comparison",
    "CurveSummary",
    "ImageAugmenter",
    "ImageRecord",
    "RealismTransform",
    "SamplingPolicy",
    "SyntheticImage",
    "TemplateMatcher",
    "augment_image",
    "augment_with_labels",
    "augmentation_seed",
    "cache_info",
    "catalogue_markdown",
    "clear_caches",
    "compare",
    "default_diff_error",
    "distance_to_severity",
    "file_schema",
    "format_summary",
    "gradcam_frames",
    "load_analysis",
    "load_image",
    "main",
    "outputs_equal",
    "perceptual_distance",
    "perceptual_strength",
    "read_manifest",
    "realism_max_intensity",
    "realism_severity_ceiling",
    "register_augmentation",
    "write_gradcam_gif",
]


# Test hooks: the only private names tests/ may use (tests/test_layering.py checks), each for a
# white-box check of one module that no public call can make, or to inject a fault. Anything else
# private may change without notice.
_TEST_HOOKS = {
    # catalogue.py and fastpaths.py: fast paths checked pixel for pixel against albumentations itself
    "_transform": "the built albumentations transform of one (augmentation, intensity, size)",
    "_apply_augmentation": "the search's render path (lookup tables, seed-free skips)",
    "_fast_transform_classes": "the fast subclasses, to compare with their albumentations parents",
    "_POINTWISE": "augmentations rendered as lookup tables", "_SEED_FREE": "augmentations that draw nothing",
    "_superpixel_segments": "the cached SLIC segmentation", "_disk_kernel": "DefocusBlur's disk kernel",
    "_BoundedCache": "the array cache class (eviction, threads)",
    # custom.py: registered augmentations in worker threads and processes
    "_adopt": "what a worker does with a job's registered augmentations", "_thread_transform": "per-thread builds",
    # probes.py and search.py: probes against the full grid, shards in flight
    "_grid": "the intensity grid", "_guided_probe": "the guided probe", "_replay_probe": "a probe replayed on a row",
    "_shards_in_flight": "how many shards an executor gets at once",
    # rows.py: the column store and shard files
    "_Column": "a row column", "_ShardColumns": "columns read from shard files",
    "_to_float32": "verdict-preserving rounding",
    # report.py: what the page draws
    "_OUTPUT_COLOUR": "an output's colour", "_REFERENCE_COLOUR": "the reference's colour",
    "_view_mask": "a stored mask view as a mask", "_class_table": "the per-class table",
    # files.py and synthesis.py: fault injection (tests/models/killable.py kills at each write)
    "_write_atomic": "the one atomic writer", "_write_temporary": "synthesis's temporary files",
    "_temporary_prefix": "temporary file names", "_SyntheticFolder": "the locked output folder",
    "_lock_for_file": "the job lock of an analysis file",
}



def __getattr__(name: str) -> type:
    # PEP 562: RealismTransform is made on first use (it subclasses albumentations' BaseCompose)
    return _public_class(name, __name__)


###############################################################################
# src/augment/helpers.py
# Helpers used everywhere: errors, text and names, numbers, plain values of outputs and labels,
# digests and seeds, pixel conversions, and the public constants (augmentation names, format versions).
###############################################################################

# augment.py never contacts the network: albumentations' import-time update check (a request to
# PyPI, 2 s to time out offline, in every worker process) is off unless the user turned it on.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class AugmentError(ValueError):
    """A bad argument, file or value, named in the message (the CLI prints it as ``error: ...``).

    Errors raised by the user's own code (predict, diff_error, a factory) are never
    turned into this: they keep their type and traceback, with a note naming the image.

    >>> try:
    ...     augment_image(np.zeros((4, 4, 3), np.uint8), "Brightn", 0.5)
    ... except AugmentError as error:
    ...     print(str(error).split(" Valid")[0])
    unknown augmentation 'Brightn'. Did you mean 'Brighten'?
    """


def _truncate(text: Any, limit: int = 300) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: Any) -> Any:
    """jinja2 finalize: control characters (NUL, ...) in user text are shown as \\xNN, never written."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", value)
    return value


def _json_failure(exc: BaseException) -> str:
    """Why a JSON text could not be read, in words (a RecursionError says only "maximum recursion depth")."""
    if isinstance(exc, RecursionError):
        return "nested too deep to read"
    return str(exc)


def _natural_key(text: str) -> tuple:
    """Sort key that puts "2" before "10" (class names, file names)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def _safe_name(text: str, limit: int = 60) -> str:
    """A file-name-safe slug: letters, digits, '-', '_' and '.', no leading dot, bounded length."""
    slug = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in str(text))
    slug = slug.lstrip(".")[:limit]
    return slug or "_"


def _unique_file_name(text: str, limit: int = 60) -> str:
    """A file-name-safe name that is one text's only: the text itself when it is safe and short, else
    its slug cut short and a digest of the whole text (two names that differ only past the cut, or
    only in unsafe characters, would otherwise share a file: one picture shown for another)."""
    slug = _safe_name(text, limit)
    if slug == str(text):
        return slug
    return f"{_safe_name(text, limit - 13)}-{hashlib.sha256(str(text).encode()).hexdigest()[:12]}"


def _format_intensity(value: float | None) -> str:
    """An intensity in a table: two decimals, ">1" for never within the range."""
    return ">1" if value is None else f"{value:.2f}"


def _is_number(value: Any) -> bool:
    """A finite real number that is not a bool (JSON's numbers)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    """An int (Python or numpy) that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(value: Any, parameter: str, minimum: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        none = " or None" if allow_none else ""
        raise AugmentError(f"{parameter} must be an int >= {minimum}{none}, got {value!r}")
    return int(value)


def _check_number(value: Any, parameter: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A real number in [low, high] (not a bool, not a string: those hide mixed-up arguments)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or (
            not isinstance(value, numbers.Integral) and math.isnan(value)):  # (an int of 400 digits is no NaN)
        raise AugmentError(f"{parameter} must be a number, got {_truncate(repr(value), 80)}")
    if not low <= value <= high:
        allowed = f">= {low}" if high == math.inf else f"<= {high}" if low == -math.inf else f"in [{low}, {high}]"
        raise AugmentError(f"{parameter} must be {allowed}, got {_truncate(repr(value), 80)}")
    return float(value)


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise AugmentError(problem)


def _is_tensor(value: Any) -> bool:
    # Checked by module name so that `import augment` never imports torch.
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, torch tensors and tuples as Python numbers and lists, recursively.

    What labels and outputs become in JSON files and in what synthesis returns: an
    ``np.int64(5)`` class id stays the number 5, an array a nested list.

    >>> _plain({"boxes": np.array([[1, 2, 3, 4]]), "id": np.int64(5), "score": (np.float32(0.5),)})
    {'boxes': [[1, 2, 3, 4]], 'id': 5, 'score': [0.5]}
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if _is_tensor(value):
        return value.detach().cpu().numpy().tolist()
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(_plain(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    """``_plain(value)`` when JSON can hold it, else its string (an object JSON cannot encode)."""
    plain = _plain(value)
    try:
        json.dumps(plain)
        return plain
    except (TypeError, ValueError):
        return str(value)


def _as_comparable(value: Any) -> Any:
    """Tensors as arrays, numpy scalars as Python numbers; everything else as it is."""
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _float_tolerance(*arrays: np.ndarray) -> float:
    # A few units in the last place of the least precise float involved: noise of the
    # arithmetic, never a change of the model's answer.
    kinds = [a.dtype for a in arrays if a.dtype.kind == "f"]
    return max([1e-9] + [4 * float(np.finfo(kind).eps) for kind in kinds])


def _arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        if a.dtype.kind != "f" and b.dtype.kind != "f":
            return bool(np.array_equal(a, b))
        return bool(np.allclose(a, b, rtol=_float_tolerance(a, b), atol=1e-12, equal_nan=True))
    return all(outputs_equal(x, y) for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))


def outputs_equal(output: Any, reference: Any) -> bool:
    """Whether two model outputs (or an output and a label) say the same thing.

    Every element counts: arrays and tensors are compared whole (never through a
    truncated ``str``), lists and tuples item by item, dicts key by key whatever their
    order. Numbers compare by value within float noise (``0.1 + 0.2`` equals ``0.3``;
    float32 arrays within a few units in the last place), and a number equals its
    string (``7`` and ``"7"``, ml-infinite-image-augment's string rule). Other objects compare with
    ``==`` when their class defines it, else by ``str``.

    >>> outputs_equal({"boxes": np.zeros((2, 4)), "label": 3}, {"label": 3, "boxes": [[0] * 4] * 2})
    True
    >>> mask = np.zeros((40, 40), np.uint8); changed = mask.copy(); changed[20, 20] = 1
    >>> outputs_equal(mask, changed), outputs_equal(0.1 + 0.2, 0.3)
    (False, True)
    """
    a, b = _as_comparable(output), _as_comparable(reference)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, (np.ndarray, list, tuple)) and isinstance(b, (np.ndarray, list, tuple))):
            return False
        try:
            return _arrays_equal(np.asarray(a), np.asarray(b))
        except ValueError:  # a ragged list: compare item by item
            return len(a) == len(b) and all(outputs_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(outputs_equal(a[key], b[key]) for key in a))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(outputs_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number):
        if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
            return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if type(a).__eq__ is not object.__eq__:
        result = a == b
        if isinstance(result, (bool, np.bool_)):
            return bool(result)
    return str(a) == str(b)


def _digest_into(value: Any, sink: Any) -> None:
    value = _as_comparable(value)
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        sink.update(f"a{array.dtype.str}{array.shape}".encode())
        sink.update(array.tobytes() if array.dtype.kind != "O" else repr(array.tolist()).encode())
    elif isinstance(value, dict):
        sink.update(b"d%d" % len(value))
        for key in sorted(value, key=repr):  # the order of a dict's keys does not matter
            _digest_into(key, sink)
            _digest_into(value[key], sink)
    elif isinstance(value, (list, tuple)):
        sink.update(b"l%d" % len(value))
        for item in value:
            _digest_into(item, sink)
    elif isinstance(value, float):
        sink.update(f"f{value:.9g}".encode())  # float noise (0.1 + 0.2) is not a change
    else:
        sink.update(f"{type(value).__name__}:{value}".encode())


def _digest(value: Any) -> str:
    """A fingerprint of any label or output that sees every element of arrays and tensors."""
    sink = hashlib.blake2b(digest_size=16)
    _digest_into(value, sink)
    return sink.hexdigest()


def _image_digest(image: np.ndarray) -> str:
    """The pixels' fingerprint: where an image's random draws come from (not its file's path)."""
    sink = hashlib.blake2b(f"{image.shape}".encode(), digest_size=16)
    sink.update(np.ascontiguousarray(image).data)
    return sink.hexdigest()


def _derive_seed(*parts: Any) -> int:
    """A stable 32-bit seed from any parts: the same in every process and on every machine."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class _BoundedCache:
    """A small thread-safe LRU cache bounded by the bytes of its numpy values and by its entries
    (a search of many small images would otherwise fill it with entries used by one image only,
    whose Python overhead outweighs their bytes)."""

    def __init__(self, max_bytes: int, max_items: int = 16384):
        self.max_bytes, self.max_items, self.bytes, self.hits = max_bytes, max_items, 0, 0
        self._items: collections.OrderedDict[Any, tuple[Any, int]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
        value = make()
        size = sum(v.nbytes for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, np.ndarray))
        with self._lock:
            if key in self._items:  # another thread made it meanwhile: keep one, count it once
                return self._items[key][0]
            self._items[key] = (value, size)
            self.bytes += size
            while (self.bytes > self.max_bytes or len(self._items) > self.max_items) and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = self.hits = 0

    def info(self) -> dict[str, int | None]:
        with self._lock:
            return {"entries": len(self._items), "bytes": self.bytes, "max_entries": self.max_items,
                    "max_bytes": self.max_bytes, "hits": self.hits}


# -- classes made on first use ------------------------------------------------------------
# A class that subclasses an albumentations (or pydantic) class can only be made once that
# library is imported, and `import augment` does not import them (albumentations takes a second).
# Each such class is made by a factory decorated with @_made_on_first_use: made once, on its first
# call, and never again (objects made before would otherwise have another class). A public one is
# served by the package's __getattr__ (PEP 562) under its name, in the module `augment`, which is
# all pickle needs; editors and type checkers see it through a TYPE_CHECKING binding.

_PUBLIC_CLASSES: dict[str, Callable[[], type]] = {}  # public name -> the factory that makes it
# where they are served: the one file under the name it was imported as (augment, mylib.augment, a
# script's own name), or the package when this runs from src/augment/
_PACKAGE = __name__.removesuffix(".helpers")


def _made_on_first_use(public_name: str | None = None) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorate a factory of classes: made once, on first use; ``public_name``: served as augment.<name>."""

    def decorate(factory: Callable[[], Any]) -> Callable[[], Any]:
        @functools.cache
        @functools.wraps(factory)
        def made() -> Any:
            made_class = factory()
            if public_name is not None:  # where pickle looks for it: <the module users import>.<name>
                made_class.__module__, made_class.__qualname__ = _PACKAGE, public_name
            return made_class

        if public_name is not None:
            _PUBLIC_CLASSES[public_name] = made
        return made

    return decorate


def _public_class(name: str, module: str) -> type:
    """The body of the package's __getattr__: a public class made on first use, or AttributeError."""
    if name in _PUBLIC_CLASSES:
        return _PUBLIC_CLASSES[name]()
    raise AttributeError(f"module {module!r} has no attribute {name!r}")

# -- caches -------------------------------------------------------------------------------
# Every cache augment.py keeps is registered here by the module that owns it, under a name that
# says what it holds, with its bound (entries, and bytes where it holds arrays). clear_caches()
# empties them all; cache_info() says what each holds. The bounds set a render worker's memory
# ceiling: see CACHE_CEILING_BYTES. (Lazily made classes and pydantic models are not caches: they
# are made once and never cleared, or objects made before a clear would have other classes.)

_CACHES: dict[str, Any] = {}


def _owned_cache(name: str, cache: Any) -> Any:
    """Register ``cache`` (a _BoundedCache, a dict or a _ThreadLocalCache) under ``name``."""
    if name in _CACHES:
        raise AssertionError(f"two caches named {name!r}")
    _CACHES[name] = cache
    return cache


class _CachedFunction:
    """An lru_cache'd function with a declared bound on the bytes of one entry (None: not arrays)."""

    def __init__(self, function: Callable, maxsize: int, entry_bytes: int | None):
        self.function, self.maxsize, self.entry_bytes = function, maxsize, entry_bytes

    def clear(self) -> None:
        self.function.cache_clear()

    def info(self) -> dict[str, int | None]:
        cached = self.function.cache_info()
        known = self.entry_bytes is not None
        return {"entries": cached.currsize, "bytes": cached.currsize * self.entry_bytes if known else None,
                "max_entries": self.maxsize, "max_bytes": self.maxsize * self.entry_bytes if known else None,
                "hits": cached.hits}


def _cached(name: str, maxsize: int, entry_bytes: int | None = None) -> Callable[[Callable], Callable]:
    """functools.lru_cache(maxsize), registered as a cache (``entry_bytes``: at most per entry)."""

    def decorate(function: Callable) -> Callable:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _owned_cache(name, _CachedFunction(cached, maxsize, entry_bytes))
        return cached

    return decorate


class _PerThreadCache:
    """One value per thread (scratch arrays a thread reuses), every thread's emptied by clear()."""

    def __init__(self):
        self._values: dict[int, Any] = {}
        self._lock = threading.Lock()

    def get(self) -> Any:
        return self._values.get(threading.get_ident())

    def put(self, value: Any) -> None:
        with self._lock:
            alive = {thread.ident for thread in threading.enumerate()}
            for ident in [ident for ident in self._values if ident not in alive]:  # threads that ended
                del self._values[ident]
            self._values[threading.get_ident()] = value

    def clear(self) -> None:  # a render using its arrays keeps them until it ends
        with self._lock:
            self._values.clear()

    def info(self) -> dict[str, int | None]:
        with self._lock:
            values = list(self._values.values())
        arrays = [a for value in values for a in (value if isinstance(value, tuple) else (value,))
                  if isinstance(a, np.ndarray)]
        return {"entries": len(values), "bytes": sum(a.nbytes for a in arrays), "max_entries": None,
                "max_bytes": None}


def clear_caches() -> None:
    """Empty every cache augment.py keeps in this process (rendered segments, noise draws, built
    transforms, lookup tables, models made by a ``predict_factory``): frees memory in a notebook or
    a long-lived worker; nothing else changes, later calls just rebuild what they need.

    >>> clear_caches()
    >>> sum(entry["entries"] for entry in cache_info().values() if entry["max_bytes"])
    0
    """
    for cache in _CACHES.values():
        cache.clear()


def cache_info() -> dict[str, dict[str, int | None]]:
    """Per cache: ``entries``, ``bytes`` (None where they are not counted: no arrays, or arrays as
    large as the image, like the pixel grids), ``max_entries`` and ``max_bytes``, its bounds (None:
    one per thread or per model), and ``hits`` where counted. The sum of ``max_bytes`` is
    CACHE_CEILING_BYTES; the per-thread warp maps and the pixel grids come on top (see it).

    >>> info = cache_info()["fastpaths: superpixel segments per image"]
    >>> info["max_bytes"] == 256 * 2**20
    True
    """
    return {name: (cache.info() if hasattr(cache, "info") else
                   {"entries": len(cache), "bytes": None, "max_entries": None, "max_bytes": None})
            for name, cache in _CACHES.items()}


# The most bytes the array caches of one process hold: 3 x 256 MiB (superpixel segments, elastic
# fields, noise draws), 128 shot-noise tables of 1 MiB, 4,096 colour tables and the normal
# quantiles; plus, outside it, one pair of float32 warp maps per thread as large as the largest image
# rendered (2 x 4 bytes per pixel) and two pixel grids of that size. tests/test_catalogue.py checks it.
CACHE_CEILING_BYTES = 3 * 256 * 2**20 + 128 * 256 * 4096 + 4096 * 768 + 2**17


def _as_rgb(array: Any, what: str) -> np.ndarray:
    """Return ``array`` as (H, W, 3) uint8; grayscale is repeated, alpha dropped."""
    if not isinstance(array, np.ndarray):
        raise AugmentError(f"{what} must be a numpy array or a file path, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise AugmentError(f"{what} must be uint8 (H, W, 3) RGB, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise AugmentError(f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def _to_8_bits(array: np.ndarray, mode: str, path: str) -> np.ndarray:
    """16-bit, 32-bit and float images to uint8 by the range their values show.

    Integers: by 65535 when any value exceeds 255, else as they are. Floats: [0, 1] is
    scaled by 255 (the usual float convention; read as 0-255 it would be a black image),
    values up to 255 are kept and up to 65535 scaled as 16-bit; anything else is an error.
    """
    if not np.isfinite(array).all():
        raise AugmentError(f"cannot read image {path}: it holds NaN or infinite values")
    low, peak = float(array.min()), float(array.max())
    if mode == "F" and low >= 0.0 and peak <= 1.0:
        scale = 255.0
    elif low >= 0.0 and peak <= 255.0:
        scale = 1.0
    elif low >= 0.0 and peak <= 65535.0:
        scale = 255.0 / 65535.0
    else:
        raise AugmentError(f"cannot read image {path}: its values span [{low:g}, {peak:g}], not [0, 1], [0, 255] "
                           f"or [0, 65535]; convert it to 8-bit RGB")
    return (array * scale).round().clip(0, 255).astype(np.uint8)


COLOR_AUGMENTATIONS = [
    "Brighten", "Contrast", "Darken", "Decontrast", "Desaturate", "Dehue", "Hue",
    "LessBlue", "LessGreen", "LessRed", "MoreBlue", "MoreGreen", "MoreRed", "Saturate",
]
DISTORTION_AUGMENTATIONS = ["ElasticTransform", "GaussianBlur", "MotionBlur", "SafeRotate", "Sharpen"]
PIXEL_DROPOUT_AUGMENTATIONS = [
    "Downscale", "MultiplicitiveNoise", "PixelDropout", "RandomSizedCrop", "Superpixels",
]
ALL_AUGMENTATIONS = COLOR_AUGMENTATIONS + DISTORTION_AUGMENTATIONS + PIXEL_DROPOUT_AUGMENTATIONS
# Opt-in (ImageAugmenter(augmentations=ALL_AUGMENTATIONS + EXTENDED_AUGMENTATIONS)): flips, cutout,
# noises, zoom blur, JPEG and affine warps from corruption benchmarks and camera pipelines.
EXTENDED_AUGMENTATIONS = [
    "HorizontalFlip", "VerticalFlip", "Cutout", "GaussianNoise", "ShotNoise", "ImpulseNoise", "ZoomBlur", "DefocusBlur",
    "JPEG", "Translate", "Scale", "Shear", "Posterize", "Solarize",
]

# Bumped whenever an intensity mapping changes: cached analyses made with another
# mapping are then recomputed for that augmentation instead of silently reused.
_CATALOGUE_VERSION = 2  # 2: random draws seeded from the image's pixels, not its path
_POLICY_FORMAT, _POLICY_VERSION = "augment.py sampling policy", 1
_LEVELS = 100  # synthesis and the training transform draw intensities from 0..100 % of a limit in 1 % steps
_ANALYSIS_FORMAT = "augment.py analysis"
# 2: rows may hold null (adaptive), images an error; 3: views of positional outputs; 4: rows in shard
# files beside analysis.json (see "per-image rows" in The analysis file). Older files read as they are.
_ANALYSIS_VERSION = 4
_SINGLE_FILE_VERSION = 3  # Analysis.to_json(): the whole analysis in one document
_READABLE_VERSIONS = (1, 2, 3, 4)


###############################################################################
# src/augment/files.py
# Files: atomic writes (temporary file, fsync, replace), output folders that are never followed
# through a link, and the job lock that keeps two searches off one file.
###############################################################################

_TEMPORARY_PREFIX = ".augment-tmp-"


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for every thread, for a moment)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def _temporary_prefix(path: str) -> str:
    """Temporary files for ``path`` start with this (what a killed job leaves; see _remove_temporaries)."""
    return f"{_TEMPORARY_PREFIX}{os.path.basename(path)[:100]}~"


def _file_path(path: str | os.PathLike, what: str) -> str:
    """``path`` as a file augment.py may write: not empty or blank (an unset shell variable), not
    ending in a separator or a blank name (``runs/$UNSET``), not an existing folder; else an error
    naming ``what``, before anything is written (a lock or rows folder would land beside it)."""
    path = os.fspath(path)
    name = os.path.basename(path)
    if not path.strip() or not name.strip() or path.endswith((os.sep, "/")):
        raise AugmentError(f"{what} {path!r} names no file (empty, blank, or ending in a separator: an unset "
                           f"shell variable?); give a file name such as analysis.json")
    if os.path.isdir(path):
        raise AugmentError(f"{what} {path} is a folder; give a file name such as {os.path.join(path, 'analysis.json')}")
    return path


def _write_atomic(path: str | os.PathLike, content: bytes | str | Callable[[Any], None],
                  durable: bool = True) -> str:
    """Write ``path`` whole or not at all; ``content`` is bytes, text or ``write(binary_file)``.

    ``durable=False`` skips the fsync (report frames: a crash may lose them, never tear them).
    A failure (a full disk) leaves the previous file as it was and names ``path``.
    """
    path = _file_path(path, "the file")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
        raise
    return path


def _remove_temporaries(folder: str, prefix: str = _TEMPORARY_PREFIX) -> None:
    """Temporary files a killed job left in ``folder`` (only called while holding its lock)."""
    for name in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        with contextlib.suppress(OSError):
            os.unlink(name)


def _own_folder(path: str | os.PathLike) -> str:
    """A folder augment.py writes into: created if needed; a symlink planted there is replaced
    by a real folder (the link's target is never touched); an existing file is an error."""
    path = os.fspath(path)
    if os.path.islink(path):
        os.unlink(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise AugmentError(f"{path} is a file, not a folder: choose another path or move the file")
    os.makedirs(path, exist_ok=True)
    return path


def _output_folder(path: str | os.PathLike, parameter: str) -> str:
    """The user's output folder (a link the user made is followed); an existing file is an error."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise AugmentError(f"{parameter} {path} is an existing file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise AugmentError(f"cannot create {parameter} {path}: {exc.strerror}") from None
    return path


class _JobLock:
    """An advisory lock that one job holds on a cache file or output folder.

    A second job on the same file, in another process or this one, fails at once with an
    error naming the file and the holder's pid. POSIX record locks (``fcntl.lockf``) are
    released by the kernel when their holder dies, even by SIGKILL, so a killed job never
    leaves a stale lock; unlike ``flock`` they are not inherited by worker processes the job
    forks. Temporaries are cleaned only while holding it. (No lock where there is no fcntl.)
    """

    _held: set[str] = set()  # lock files held by this process
    _held_guard = threading.Lock()

    def __init__(self, lock_path: str, what: str):
        self.lock_path, self.what = os.path.abspath(lock_path), what
        self._fd: int | None = None

    def _busy(self, holder: str) -> AugmentError:
        return AugmentError(f"{self.what} is in use by another augment.py job (pid {holder}); wait for it to "
                            f"finish or stop it (lock file {self.lock_path})")

    def __enter__(self) -> _JobLock:
        try:
            import fcntl
        except ImportError:
            return self
        with self._held_guard:
            if self.lock_path in self._held:
                raise self._busy(str(os.getpid()))
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(self.lock_path, flags, 0o666)
            except OSError as exc:
                raise AugmentError(f"cannot lock {self.what}: {self.lock_path}: {exc.strerror}") from None
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise self._busy(holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._held.add(self.lock_path)
            self._fd = fd
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._fd is not None:
            with self._held_guard:
                os.close(self._fd)  # closing releases the lock; the file stays (removing it would race)
                self._held.discard(self.lock_path)
                self._fd = None


def _lock_for_file(path: str) -> _JobLock:
    folder, name = os.path.split(os.path.abspath(path))
    return _JobLock(os.path.join(folder, f".{name}.lock"), f"analysis file {path}")


def _lock_for_folder(folder: str) -> _JobLock:
    return _JobLock(os.path.join(folder, ".augment.lock"), f"folder {folder}")


###############################################################################
# src/augment/fastpaths.py
# Fast pixel paths: the catalogue's own subclasses of albumentations transforms that give the same
# pixels faster (cached superpixel segments and elastic fields, byte lookup tables, fixed-point noise),
# and the bounded caches they keep.
###############################################################################

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


###############################################################################
# src/augment/catalogue.py
# The augmentation catalogue: one entry per augmentation (how an intensity in [0, 1] becomes an
# albumentations transform), rendering one augmentation (augment_image) and the per-thread transform cache.
# Add a built-in augmentation here.
###############################################################################

@dataclass(frozen=True)
class Augmentation:
    """One catalogue entry: how an intensity in [0, 1] becomes an albumentations transform.

    ``family`` groups contradictory augmentations (Brighten and Darken, the blurs and
    Sharpen, ...) that synthesis never combines in one image; ``geometric`` marks the
    ones that move pixels, so labels with positions must move with them.

    >>> CATALOGUE["SafeRotate"].at_full_intensity, CATALOGUE["SafeRotate"].geometric
    ('rotation 90 degrees, frame kept, corners black', True)
    """

    name: str
    group: str
    transform: str
    at_full_intensity: str
    family: str
    geometric: bool
    build: Callable[[float, int, int], Any] = field(repr=False, compare=False)
    revision: str = ""  # a registered augmentation's code and behaviour digest (see register_augmentation)
    variant: str = ""  # a built-in whose pixels changed since its first release says how (a new definition)

    @property
    def definition(self) -> str:
        """A fingerprint of the mapping, stored with cached results."""
        text = f"{_CATALOGUE_VERSION}|{self.name}|{self.transform}|{self.at_full_intensity}"
        if self.variant:
            text += f"|{self.variant}"
        if self.revision:
            text += f"|{self.group}|{self.family}|{self.geometric}|{self.revision}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _albumentations():
    # Imported on first use so that `import augment` stays fast.
    import albumentations

    return albumentations


def _short_side(height: int, width: int) -> int:
    return min(height, width)


def _color_jitter(brightness=1.0, contrast=1.0, saturation=1.0):
    import albumentations as A

    return A.ColorJitter(
        brightness=(brightness, brightness), contrast=(contrast, contrast),
        saturation=(saturation, saturation), hue=(0, 0), p=1,
    )


def _brightness(delta: float):
    import albumentations as A

    return A.RandomBrightnessContrast(brightness_limit=(delta, delta), contrast_limit=(0, 0), p=1)


def _hue(shift_degrees: float):
    import albumentations as A

    # OpenCV stores hue in [0, 180) for uint8 images, so one unit is two degrees.
    units = shift_degrees / 2
    return A.HueSaturationValue(hue_shift_limit=(units, units), sat_shift_limit=(0, 0),
                                val_shift_limit=(0, 0), p=1)


def _rgb_shift(channel: int, delta: float):
    import albumentations as A

    shifts = [(0, 0), (0, 0), (0, 0)]
    shifts[channel] = (delta, delta)
    return A.RGBShift(r_shift_limit=shifts[0], g_shift_limit=shifts[1], b_shift_limit=shifts[2], p=1)


@_cached("catalogue: elastic displacement per size", maxsize=64, entry_bytes=0)
def _elastic_unit_displacement(height: int, width: int, sigma: float) -> float:
    """Mean |displacement| (px) of the elastic field at alpha=1 (see _elastic_unit_fields).

    The smoothed field's amplitude depends on sigma and the image size, so alpha is
    calibrated to make intensity 1 mean the same relative warp at every size: on average over
    8 draws (a field of sigma 6 % of the side has few independent bumps, so one draw's mean
    varies by about 10 %).
    """
    means = []
    for seed in range(8):
        state = json.dumps(np.random.default_rng(seed).bit_generator.state)
        dx, dy, _ = _elastic_unit_fields(height, width, sigma, False, "gaussian", state)
        means.append(float(np.hypot(dx, dy).mean()))  # at the field's own size: upsampling keeps the mean
    return float(np.mean(means)) or 1e-6


def _elastic(intensity: float, height: int, width: int):
    side = _short_side(height, width)
    sigma = max(1.0, 0.06 * side)
    alpha = intensity * 0.05 * side / _elastic_unit_displacement(height, width, sigma)
    return _fast_transform_classes()["ElasticTransform"](alpha=alpha, sigma=sigma, p=1)


def _gaussian_blur(intensity: float, height: int, width: int):
    import albumentations as A

    sigma = intensity * 0.08 * _short_side(height, width)
    if sigma <= 0.0:
        return None  # a zero sigma makes albumentations' kernel 0/0 (a black image)
    if sigma <= _BLUR_SIGMA_AT_WORK:
        return A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1)
    return _fast_transform_classes()["GaussianBlur"](blur_limit=0, sigma_limit=(sigma, sigma), p=1)


def _motion_blur(intensity: float, height: int, width: int):
    kernel = 1 + 2 * round(intensity * 0.15 * _short_side(height, width))
    if kernel < 3:
        return None  # a 1 px kernel is the identity
    return _fast_transform_classes()["MotionBlur"](blur_limit=(kernel, kernel), allow_shifted=False, p=1)


def _downscale(intensity: float, height: int, width: int):
    import albumentations as A
    import cv2

    side = _short_side(height, width)
    # Below 10 px the 0.1 scale would leave less than one pixel (OpenCV refuses an
    # empty size), so the scale stops at one pixel on the short side.
    scale = max(1.0 - 0.9 * intensity, 1.0 / side)
    if round(side * scale) >= side:
        return None
    # Area down / linear up: nearest-neighbour aliasing made the change jump around
    # between neighbouring scales.
    return A.Downscale(scale_range=(scale, scale), p=1, interpolation_pair={
        "downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR})


def _random_sized_crop(intensity: float, height: int, width: int):
    import albumentations as A

    # Crop windows of one seed are nested as the intensity grows (albumentations places
    # them at the same relative offset), so a sweep zooms steadily into one region.
    # albumentations floors the crop width (crop_height * width / height); on images
    # much taller than wide the crop stays at least one pixel wide (ceil is the closed
    # form; the loop corrects float rounding, e.g. 49 * (1 / 49) < 1).
    crop_height = max(1, round(height * (1.0 - 0.75 * intensity)), math.ceil(height / width))
    while int(crop_height * (width / height)) < 1:
        crop_height += 1
    if crop_height >= height:
        return None
    return A.RandomSizedCrop(min_max_height=(crop_height, crop_height), size=(height, width),
                             w2h_ratio=width / height, p=1)


def _superpixels(intensity: float, height: int, width: int):
    return _fast_transform_classes()["Superpixels"](p_replace=(intensity, intensity), n_segments=(100, 100),
                                                    max_size=None, p=1)


def _catalogue() -> dict[str, Augmentation]:
    entries = [
        # name, group, transform, at intensity 1, family, geometric, build(intensity, h, w)
        ("Brighten", "color", "RandomBrightnessContrast", "brightness +1.0 (+255: white)",
         "brightness", False, lambda i, h, w: _brightness(i)),
        ("Darken", "color", "RandomBrightnessContrast", "brightness -1.0 (-255: black)",
         "brightness", False, lambda i, h, w: _brightness(-i)),
        ("Contrast", "color", "ColorJitter", "contrast factor 4",
         "contrast", False, lambda i, h, w: _color_jitter(contrast=1 + 3 * i)),
        ("Decontrast", "color", "ColorJitter", "contrast factor 0 (flat mean gray)",
         "contrast", False, lambda i, h, w: _color_jitter(contrast=1 - i)),
        ("Saturate", "color", "ColorJitter", "saturation factor 4",
         "saturation", False, lambda i, h, w: _color_jitter(saturation=1 + 3 * i)),
        ("Desaturate", "color", "ColorJitter", "saturation factor 0 (grayscale)",
         "saturation", False, lambda i, h, w: _color_jitter(saturation=1 - i)),
        # Hue stops at 150 degrees: past that, hue rotations start to come back toward
        # the original colours and the image changes less, not more.
        ("Hue", "color", "HueSaturationValue", "hue +150 degrees",
         "hue", False, lambda i, h, w: _hue(150 * i)),
        ("Dehue", "color", "HueSaturationValue", "hue -150 degrees",
         "hue", False, lambda i, h, w: _hue(-150 * i)),
        ("MoreRed", "color", "RGBShift", "red channel +255", "red", False, lambda i, h, w: _rgb_shift(0, 255 * i)),
        ("LessRed", "color", "RGBShift", "red channel -255", "red", False, lambda i, h, w: _rgb_shift(0, -255 * i)),
        ("MoreGreen", "color", "RGBShift", "green channel +255",
         "green", False, lambda i, h, w: _rgb_shift(1, 255 * i)),
        ("LessGreen", "color", "RGBShift", "green channel -255",
         "green", False, lambda i, h, w: _rgb_shift(1, -255 * i)),
        ("MoreBlue", "color", "RGBShift", "blue channel +255", "blue", False, lambda i, h, w: _rgb_shift(2, 255 * i)),
        ("LessBlue", "color", "RGBShift", "blue channel -255", "blue", False, lambda i, h, w: _rgb_shift(2, -255 * i)),
        ("ElasticTransform", "distortion", "ElasticTransform",
         "mean displacement 5% of the short side (sigma 6%)", "elastic", True, _elastic),
        ("GaussianBlur", "distortion", "GaussianBlur", "sigma 8% of the short side",
         "blur", False, _gaussian_blur),
        ("MotionBlur", "distortion", "MotionBlur", "kernel 30% of the short side, random angle",
         "blur", False, _motion_blur),
        ("Sharpen", "distortion", "Sharpen", "alpha 1 (full sharpening kernel)",
         "blur", False, lambda i, h, w: _albumentations().Sharpen(alpha=(i, i), lightness=(1, 1), p=1)),
        # A fixed-frame rotation: albumentations' SafeRotate shrinks the image to fit,
        # most at 45 degrees, which makes the change non-monotone in the angle.
        ("SafeRotate", "distortion", "Rotate", "rotation 90 degrees, frame kept, corners black",
         "rotate", True, lambda i, h, w: _albumentations().Rotate(limit=(90 * i, 90 * i), p=1)),
        ("Downscale", "pixel_dropout", "Downscale", "resolution scale 0.1",
         "resolution", False, _downscale),
        ("MultiplicitiveNoise", "pixel_dropout", "MultiplicativeNoise", "per-pixel multiplier in [0, 2]",
         "noise", False,
         lambda i, h, w: _fast_transform_classes()["MultiplicitiveNoise"](multiplier=(1 - i, 1 + i), elementwise=True,
                                                                          p=1)),
        ("PixelDropout", "pixel_dropout", "PixelDropout", "every pixel dropped to black",
         "dropout", False, lambda i, h, w: _fast_transform_classes()["PixelDropout"](dropout_prob=i, p=1)),
        ("RandomSizedCrop", "pixel_dropout", "RandomSizedCrop", "crop of 25% of each side, stretched back",
         "crop", True, _random_sized_crop),
        ("Superpixels", "pixel_dropout", "Superpixels",
         "every one of 100 SLIC superpixels (scikit-image) replaced by its mean",
         "superpixels", False, _superpixels),  # SLIC cached per image: see CachedSuperpixels
    ]
    # Changed pixels since their first release (their cached searches are searched again): SLIC on a
    # 72 px copy, not 128 px, 5 iterations, not 10; the elastic field drawn where its sigma is 3 px, then upsampled.
    variants = {"Superpixels": "SLIC on 72 px, 5 iterations", "ElasticTransform": "field at sigma 3 px"}
    return {name: Augmentation(name, group, transform, full, family, geometric, build, variant=variants.get(name, ""))
            for name, group, transform, full, family, geometric, build in entries}


CATALOGUE: dict[str, Augmentation] = _catalogue()


# -- the extended catalogue (opt-in: EXTENDED_AUGMENTATIONS) ------------------------------
# Corruption-benchmark and camera-pipeline operations, each albumentations' own transform,
# under the catalogue's rules: identity at 0, a larger intensity never changes natural photos
# less on average, sizes as fractions of the short side. Weather (fog, snow, rain, frost), glass
# blur, perspective and nearest-neighbour pixelation are not here: see the README.

def _flip(horizontal: bool) -> Callable[[float, int, int], Any]:
    def build(intensity: float, height: int, width: int):
        # Two-valued: the image flips from intensity 0.5 on. The search finds whether the model
        # tolerates it (a step at 0.5 or never); synthesis flips when a draw reaches 0.5.
        A = _albumentations()
        return (A.HorizontalFlip(p=1) if horizontal else A.VerticalFlip(p=1)) if intensity >= 0.5 else None

    return build


def _cutout(intensity: float, height: int, width: int):
    side = round(0.2 * _short_side(height, width) * intensity)
    if side < 1:
        return None
    return _albumentations().CoarseDropout(num_holes_range=(8, 8), hole_height_range=(side, side),
                                           hole_width_range=(side, side), fill=0, p=1)


def _zoom_blur(intensity: float, height: int, width: int):
    # Ten zoomed copies averaged, the last at 1 + 0.27 t: albumentations takes them from
    # np.arange(1, max_factor, step), whose count a step of exactly a tenth leaves to float
    # rounding (10 or 11 copies, a dip in the change wherever it flips); 9.5 steps fit always 10.
    factor = 1.0 + 0.3 * intensity
    return _fast_transform_classes()["ZoomBlur"](max_factor=(factor, factor), step_factor=(0.3 * intensity / 9.5,) * 2,
                                                 p=1)


def _defocus(intensity: float, height: int, width: int):
    radius = intensity * 0.04 * _short_side(height, width)
    # Below half a pixel the rim weighs nothing: the identity.
    return _fast_transform_classes()["DefocusBlur"](disk_radius=radius, p=1) if radius > 0.5 else None


def _posterize(intensity: float, height: int, width: int):
    bits = 8 - round(7 * intensity)
    return _albumentations().Posterize(num_bits=(bits, bits), p=1) if bits < 8 else None


def _extended() -> dict[str, Augmentation]:
    A = _albumentations
    entries = [
        # name, transform, at intensity 1, family, geometric, build(intensity, h, w)
        ("HorizontalFlip", "HorizontalFlip", "mirrored left-right (from intensity 0.5 on)", "flip horizontal", True,
         _flip(True)),
        ("VerticalFlip", "VerticalFlip", "upside down (from intensity 0.5 on)", "flip vertical", True, _flip(False)),
        ("Cutout", "CoarseDropout", "8 black squares of 20% of the short side", "dropout", False, _cutout),
        ("GaussianNoise", "GaussNoise", "Gaussian noise, standard deviation 40% of the range", "noise", False,
         lambda i, h, w: _fast_transform_classes()["GaussianNoise"](std_range=(0.4 * i, 0.4 * i), p=1)),
        ("ShotNoise", "ShotNoise", "Poisson noise at scale 0.5 (few photons)", "noise", False,
         lambda i, h, w: _fast_transform_classes()["ShotNoise"](scale_range=(0.5 * i, 0.5 * i), p=1)),
        ("ImpulseNoise", "SaltAndPepper", "30% of pixels salt or pepper", "noise", False,
         lambda i, h, w: _fast_transform_classes()["ImpulseNoise"](amount=(0.3 * i, 0.3 * i), p=1)),
        ("ZoomBlur", "ZoomBlur", "ten zoomed copies up to 1.27x averaged", "blur", False, _zoom_blur),
        ("DefocusBlur", "Defocus", "a lens's disk blur, radius 4% of the short side", "blur", False, _defocus),
        ("JPEG", "ImageCompression", "JPEG quality 5 (100 just above 0)", "compression", False,
         lambda i, h, w: A().ImageCompression(quality_range=(round(100 - 95 * i),) * 2, p=1)),
        ("Translate", "Affine", "shifted by up to 25% of each side, borders black", "translate", True,
         lambda i, h, w: A().Affine(translate_percent={"x": (-0.25 * i, 0.25 * i), "y": (-0.25 * i, 0.25 * i)},
                                    p=1)),
        ("Scale", "Affine", "zoomed out to half size, borders black", "scale", True,
         lambda i, h, w: A().Affine(scale=(1 / (1 + i), 1 / (1 + i)), p=1)),
        ("Shear", "Affine", "sheared by up to 30 degrees on each axis", "shear", True,
         lambda i, h, w: A().Affine(shear={"x": (-30 * i, 30 * i), "y": (-30 * i, 30 * i)}, p=1)),
        ("Posterize", "Posterize", "1 bit per channel", "posterize", False, _posterize),
        ("Solarize", "Solarize", "every pixel inverted", "solarize", False,
         lambda i, h, w: A().Solarize(threshold_range=(1 - i, 1 - i), p=1)),
    ]
    # Their first release drew new noise at every intensity and summed ZoomBlur in floats: caches
    # of those searches are searched again (see _cached_draws, ByteZoomBlur).
    variants = {"GaussianNoise": "cached draws", "ShotNoise": "cached quantile draws",
                "ImpulseNoise": "nested draws", "ZoomBlur": "byte copies"}
    return {name: Augmentation(name, "extended", transform, full, family, geometric, build,
                               variant=variants.get(name, ""))
            for name, transform, full, family, geometric, build in entries}


CATALOGUE.update(_extended())


def _check_augmentation_name(name: Any, parameter: str = "augmentation") -> str:
    if not isinstance(name, str) or name not in CATALOGUE:
        close = difflib.get_close_matches(str(name), list(CATALOGUE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise AugmentError(f"unknown {parameter} {name!r}.{hint} Valid names: {', '.join(CATALOGUE)} (your own "
                           f"augmentations are known once registered: register_augmentation, or "
                           f"--augmentations-from on the command line)")
    return name


def _check_intensity(intensity: Any, name: str) -> float:
    if isinstance(intensity, bool) or not isinstance(intensity, numbers.Real):
        # float() would also take "0.5" or True, and hide a mixed-up argument.
        raise AugmentError(f"intensity for {name} must be a number in [0, 1], got {intensity!r}")
    value = float(intensity)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise AugmentError(f"intensity for {name} must be in [0, 1], got {intensity!r}")
    return value


def _transform(name: str, intensity: float, height: int, width: int, rotate_method: str = "largest_box"):
    # Building an albumentations transform validates its arguments (pydantic) and
    # costs far more than applying it to a small image, so transforms are reused: by one thread
    # each, since a render seeds its transform's generator, then draws from it (two threads
    # sharing one, as shards on a thread pool executor do, would draw each other's numbers).
    return _thread_transform(name, intensity, height, width, rotate_method, threading.get_ident())


@_cached("catalogue: built transforms per thread", maxsize=8192, entry_bytes=0)
def _thread_transform(name: str, intensity: float, height: int, width: int, rotate_method: str, thread: int):
    transform = CATALOGUE[name].build(intensity, height, width)
    if transform is not None and rotate_method != "largest_box" and hasattr(transform, "rotate_method"):
        transform.rotate_method = rotate_method  # how a rotated box is enclosed; pixels are the same
    return transform


def augment_image(image: np.ndarray, name: str, intensity: float, seed: int = 0) -> np.ndarray:
    """Apply one catalogue augmentation at ``intensity`` in [0, 1] to an RGB image.

    ``image`` is (H, W, 3) uint8; the result has the same shape and dtype. The same
    ``seed`` gives the same random draws (crop position, noise field, motion angle) at
    every intensity, so a sweep over intensities is one continuous change.

    >>> import numpy as np
    >>> out = augment_image(np.full((32, 32, 3), 100, np.uint8), "Brighten", 0.5)
    >>> int(out[0, 0, 0])
    227
    """
    _check_augmentation_name(name)
    return _apply_augmentation(_as_rgb(image, "image"), name, _check_intensity(intensity, name), seed)


def augmentation_seed(image: np.ndarray, name: str, seed: int = 0) -> int:
    """The seed of one image's random draws (crop position, noise, motion angle) for ``name``.

    Derived from the search ``seed``, the image's pixels and the augmentation, never from a
    file's path: the same images searched from another folder, by another path, or as
    arrays get the same draws and the same boundaries. ``augment_image(image, name, t,
    augmentation_seed(image, name, seed))`` is the image the search showed the model.

    >>> image = np.zeros((8, 8, 3), np.uint8)
    >>> augmentation_seed(image, "Brighten") == augmentation_seed(image.copy(), "Brighten")
    True
    """
    return _derive_seed(seed, _image_digest(image), name)


# Brighten, Darken and the six channel shifts map each channel's value on its own (RandomBrightnessContrast
# without contrast adds to every channel, RGBShift to one): their result is a 256-entry table per channel.
# Built-ins whose transform draws nothing at a fixed intensity (ColorJitter shuffles the order of its
# operations, but all but one are identities): the same pixels whatever the seed (tested), so no seeding.
_SEED_FREE = frozenset({
    "Contrast", "Decontrast", "Saturate", "Desaturate", "Hue", "Dehue", "GaussianBlur", "SafeRotate", "Sharpen",
    "Downscale", "HorizontalFlip", "VerticalFlip", "ZoomBlur", "DefocusBlur", "JPEG", "Scale", "Posterize", "Solarize",
})
_POINTWISE = frozenset({"Brighten", "Darken", "MoreRed", "LessRed", "MoreGreen", "LessGreen", "MoreBlue", "LessBlue"})


@_cached("catalogue: colour lookup tables", maxsize=4096, entry_bytes=768)
def _pointwise_table(name: str, intensity: float) -> np.ndarray:
    """The (256, 1, 3) table albumentations' own transform makes of every value of every channel."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    table = np.ascontiguousarray(_transform(name, intensity, 256, 1)(image=ramp)["image"])
    table.flags.writeable = False
    return table


def _apply_steps_to_image(image: np.ndarray, steps: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """``steps`` [(name, intensity)] applied in order to an (H, W, 3) uint8 image alone, each
    rendered as the search renders it with ``seed``: the pixels of ``A.Compose(transforms, seed=seed)``.

    A training transform pays for every step of every image, so consecutive pointwise colour steps
    (Brighten, Darken, the channel shifts) fold into one byte lookup table (a table of a table is exact).
    """
    import cv2

    table = None
    for name, intensity in steps:
        if name in _POINTWISE and round(intensity, 6) > 0.0:
            step = _pointwise_table(name, round(intensity, 6))[:, 0, :]  # (256, 3): value -> value, per channel
            table = step if table is None else np.take_along_axis(step, table.astype(np.intp), axis=0)
            continue
        if table is not None:
            image, table = cv2.LUT(image, np.ascontiguousarray(table[:, None, :])), None
        image = _apply_augmentation(image, name, intensity, seed)
    return image if table is None else cv2.LUT(image, np.ascontiguousarray(table[:, None, :]))


def _apply_augmentation(image: np.ndarray, name: str, intensity: float, seed: int) -> np.ndarray:
    """augment_image without the argument checks (the search's inner loop)."""
    intensity = round(intensity, 6)  # transforms are cached per rounded intensity; below 5e-7 is 0
    if intensity == 0.0:
        return image.copy()
    if name in _POINTWISE and image.ndim == 3 and image.shape[2] == 3:
        import cv2  # one lookup instead of albumentations' per-call machinery: the same pixels (tested)

        return cv2.LUT(image, _pointwise_table(name, intensity))
    transform = _transform(name, intensity, image.shape[0], image.shape[1])
    if transform is None:
        return image.copy()
    if name not in _SEED_FREE:  # seeding costs as much as a small image's colour change
        transform.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = np.ascontiguousarray(transform(image=image)["image"])
    if out.shape != image.shape:  # a registered build may resize only images larger than its probes
        raise AugmentError(f"augmentation {name} at intensity {intensity:g} returned an image of shape {out.shape} "
                           f"for one of {image.shape}: an augmentation must keep the image's size")
    return out


###############################################################################
# src/augment/custom.py
# Your own augmentations: register_augmentation, the probe that checks a definition, and the digest
# that tells a cached search whether the definition changed.
###############################################################################

_PROBE_INTENSITIES = (0.1, 0.25, 0.5, 0.75, 1.0)
# augment.py itself (its catalogue version covers it): built-in helpers do not make a new digest per release
_OWN_FILES = {os.path.abspath(__file__)}


def _probe_images() -> list[np.ndarray]:
    """A 48x64 scene (gradients, a disc, a bar, noise), the same scene at 168x224 (code may treat
    large images apart) and a 1x1 image: what registration tries, and what its digest records."""
    import cv2

    rng = np.random.default_rng(12345)
    ys, xs = np.mgrid[0:48, 0:64]
    scene = np.stack([xs * 4, ys * 5, 255 - xs * 2], axis=2).astype(np.float64)
    scene[(ys - 20) ** 2 + (xs - 40) ** 2 < 100] = (230, 40, 30)
    scene[30:38, 5:30] = (20, 20, 200)
    scene = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
    return [scene, cv2.resize(scene, (224, 168), interpolation=cv2.INTER_LINEAR), np.array([[[120, 80, 40]]], np.uint8)]


def _code_digest(value: Any) -> str:
    """What the source of a callable looks like to Python (bytecode, constants, names, bound values)."""
    parts: list[Any] = []

    def walk(obj: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        code = getattr(obj, "__code__", None)
        if isinstance(obj, functools.partial):
            walk(obj.func, depth + 1)
            parts.append(_stable(repr((obj.args, sorted(obj.keywords.items())))))
        elif code is not None:
            stack = [code]
            while stack:
                current = stack.pop()
                parts.append(current.co_code)
                parts.append(repr(current.co_names))
                for const in current.co_consts:
                    if isinstance(const, types.CodeType):
                        stack.append(const)
                    else:  # a set literal's order follows string hashing, which changes per process
                        parts.append(repr(sorted(map(repr, const))) if isinstance(const, frozenset) else repr(const))
            parts.append(repr(getattr(obj, "__defaults__", None)))
            for cell in getattr(obj, "__closure__", None) or ():
                with contextlib.suppress(ValueError):
                    walk(cell.cell_contents, depth + 1) if callable(cell.cell_contents) else parts.append(
                        _truncate(cell.cell_contents, 2000))
        elif callable(obj) and not isinstance(obj, (type, types.BuiltinFunctionType)):
            walk(type(obj).__call__, depth + 1)  # an instance with __call__: its method and its state
            parts.append(_stable(_truncate(repr(sorted(getattr(obj, "__dict__", {}).items())), 2000)))
        else:
            parts.append(_stable(_truncate(obj, 2000)))

    walk(value)
    parts.append(_module_source(value))
    return hashlib.sha256(b"|".join(p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()[:16]


def _stable(text: str) -> str:
    """``text`` without object addresses (``<... at 0x7f...>`` differs in every process)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _module_source(value: Any) -> bytes:
    """The source file of the module that defines ``value`` (b"" for a notebook's or the
    interpreter's): a constant or helper there that the code reads changes the digest too."""
    target = value.func if isinstance(value, functools.partial) else value
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py") or os.path.abspath(path) in _OWN_FILES:
        return b""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


@_made_on_first_use()
def _function_transform_class() -> type:
    A = _albumentations()

    class FunctionTransform(A.ImageOnlyTransform):
        """A registered ``function(image, intensity, rng)`` as an albumentations transform:
        ``rng`` comes from the transform's own seeded generator, so a seed repeats it."""

        def __init__(self, function: Callable, intensity: float, name: str):
            super().__init__(p=1.0)
            self.function, self.intensity, self.name = function, intensity, name

        def get_params(self) -> dict[str, Any]:
            return {"draw": int(self.random_generator.integers(2**63 - 1))}

        def apply(self, img: np.ndarray, draw: int = 0, **params: Any) -> np.ndarray:
            out = np.asarray(self.function(img.copy(), self.intensity, np.random.default_rng(draw)))  # never in place
            if out.shape != img.shape or out.dtype != np.uint8:
                raise AugmentError(f"augmentation {self.name} at intensity {self.intensity} returned an array of shape "
                                   f"{out.shape} and dtype {out.dtype} for an image of {img.shape} uint8")
            return out

    return FunctionTransform


def _build_function_transform(function: Callable, name: str, intensity: float, height: int, width: int) -> Any:
    return _function_transform_class()(function, intensity, name) if intensity > 0 else None


def register_augmentation(name: str, build: Callable[[float, int, int], Any] | None = None, *,
                          function: Callable[[np.ndarray, float, np.random.Generator], np.ndarray] | None = None,
                          family: str | None = None, group: str = "custom", geometric: bool = False,
                          at_full_intensity: str = "", version: str = "") -> Augmentation:
    """Add your own augmentation to CATALOGUE; returns its entry. Give one of:

    - ``build(intensity, height, width)``: an albumentations transform for that intensity and
      image size (``None`` or an identity at 0; sizes as fractions of the short side, like
      the catalogue's), geometric ones a DualTransform so labels move with the pixels;
    - ``function(image, intensity, rng)``: the (H, W, 3) uint8 image augmented, with ``rng``
      a seeded numpy Generator (pixels only: never geometric).

    ``family``: synthesis never combines two of one family (default: its own name);
    ``at_full_intensity`` says what intensity 1 means. Checked now on probe images (48x64,
    168x224 and 1x1): intensity 0 is the identity, every output is (H, W, 3) uint8; a name taken
    by a built-in is refused. Registering a name again replaces the entry; a changed definition
    (``version``, code, its module's source or what it does to the probes) re-searches that
    augmentation only.

    >>> def jpeg(intensity, height, width):                                # doctest: +SKIP
    ...     quality = round(100 - 95 * intensity)                          # 100 at 0, 5 at 1
    ...     return A.ImageCompression(quality_range=(quality, quality), p=1) if intensity else None
    >>> register_augmentation("CameraJPEG", jpeg, family="compression", group="digital")  # doctest: +SKIP
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,59}", name):
        raise AugmentError(f"an augmentation's name must be 1-60 letters, digits, '_', '.' or '-', starting with a "
                           f"letter; got {name!r}")
    if name.lower() in {known.lower() for known, entry in CATALOGUE.items() if not entry.revision}:
        raise AugmentError(f"augmentation {name!r} is (or reads as) a built-in or extended one: choose another name")
    if (build is None) == (function is None) or not callable(build or function):
        raise AugmentError(f"augmentation {name}: give build(intensity, height, width) -> albumentations transform, "
                           f"or function=(image, intensity, rng) -> image, one of them, callable")
    if function is not None and geometric:
        raise AugmentError(f"augmentation {name}: a function moves no labels, so it cannot be geometric; give "
                           f"build returning an albumentations DualTransform")
    for what, value in (("family", family), ("group", group), ("at_full_intensity", at_full_intensity),
                        ("version", version)):
        if value is not None and not isinstance(value, str):
            raise AugmentError(f"augmentation {name}: {what} must be text, got {type(value).__name__}")
    make = build if build is not None else functools.partial(_build_function_transform, function, name)
    described = _stable(f"function {getattr(function, '__qualname__', function)!s}" if function is not None
                        else f"build {getattr(build, '__qualname__', build)!s}")
    entry = Augmentation(name, group, described, at_full_intensity, family or name, bool(geometric), make)
    behaviour = _probe(entry, function)
    revision = hashlib.sha256(f"{version}|{_code_digest(build or function)}|{behaviour}".encode()).hexdigest()[:16]
    entry = dataclasses.replace(entry, revision=revision)
    _adopt([entry])
    return entry


def _probe(entry: Augmentation, function: Callable | None = None) -> str:
    """Check a new entry on the probe images; returns a digest of what it did to them."""
    import albumentations as A

    digest = hashlib.sha256()
    for image in _probe_images():
        height, width = image.shape[:2]
        for intensity in (0.0, *_PROBE_INTENSITIES):
            where = f"augmentation {entry.name} at intensity {intensity} on a {height}x{width} probe image"
            try:
                if function is not None and intensity == 0.0:  # never called at 0, but a reversed scale shows here
                    transform, out = None, np.asarray(function(image.copy(), 0.0, np.random.default_rng(7)))
                    if out.shape == image.shape and np.array_equal(out, image):
                        continue
                else:
                    transform, out = entry.build(intensity, height, width), image
                if entry.geometric and transform is not None and not isinstance(transform, A.DualTransform):
                    raise AugmentError(f"{where}: a geometric augmentation must build an albumentations "
                                       f"DualTransform (labels move with it), got {type(transform).__name__}")
                if not entry.geometric and isinstance(transform, A.DualTransform):
                    raise AugmentError(f"{where}: it builds {type(transform).__name__}, which moves labels too: "
                                       f"register it with geometric=True (the search then moves outputs with it)")
                if transform is not None and getattr(transform, "p", 1.0) < 1.0:
                    raise AugmentError(f"{where}: build a transform with p=1 (augment.py decides when to apply "
                                       f"it), got p={transform.p}")
                if transform is not None:
                    outs = []
                    for _ in range(2):  # the same seed must give the same pixels
                        transform.set_random_seed(7)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", UserWarning)
                            outs.append(np.asarray(transform(image=image.copy())["image"]))
                    out = outs[0]
                    if outs[0].shape == outs[1].shape and not np.array_equal(outs[0], outs[1]):
                        raise AugmentError(f"{where}: the same seed gave different pixels; draw randomness from "
                                           f"the rng argument (or albumentations' own), not np.random or random")
            except AugmentError:
                raise
            except Exception as exc:
                raise AugmentError(f"{where} raised {type(exc).__name__}: {exc}") from exc
            if out.shape != image.shape or out.dtype != np.uint8:
                raise AugmentError(f"{where} returned an array of shape {out.shape} and dtype {out.dtype}; it must "
                                   f"be {image.shape} uint8")
            if intensity == 0.0 and not np.array_equal(out, image):
                raise AugmentError(f"{where} changed the image: intensity 0 must be the identity (return None "
                                   f"from build, or the image unchanged)")
            digest.update(out.tobytes())
    return digest.hexdigest()[:16]


def _adopt(entries: Iterable[Augmentation]) -> None:
    """Put registered entries into this process's CATALOGUE (a worker gets them with its tasks)."""
    for entry in entries:
        if CATALOGUE.get(entry.name) != entry:
            CATALOGUE[entry.name] = entry
            _thread_transform.cache_clear()


def _custom_entries(names: Iterable[str]) -> tuple[Augmentation, ...]:
    """The registered entries among ``names`` (built-in and extended ones every process has)."""
    return tuple(CATALOGUE[name] for name in names if CATALOGUE[name].revision)


###############################################################################
# src/augment/perceptual.py
# One perceptual scale for every augmentation: how far an augmented image looks from its original,
# in ImageNet-C severity units, so that a boundary under Hue and one under blur can be compared, and
# realism can be bounded by what a person would call mild.
###############################################################################

# Every image is compared on a copy resampled to exactly this many px on its short side (area
# averaging down, bilinear up), so a severity does not depend on the image's resolution: an
# augmentation's sizes are fractions of the short side, and the strength of a search renders it
# on that copy. SSIM there and CIEDE2000 on a copy half that size cost about 1.4 ms per pair.
_WORK_SIDE = 96
_COLOUR_SIDE = 48
# CIEDE2000 of 100 is black against white, and 1 - SSIM of unrelated images is about 1: both terms
# run from 0 to about 1, so neither decides alone.
_COLOUR_SCALE = 100.0
_STRENGTH_POINTS = 11  # intensities 0, 0.1, ..., 1 are measured; a finer grid is interpolated
_LONGEST = 1024  # px: the long side of a copy at most (a very long, thin image stays thinner than 96 px)

# The calibration: the mean perceptual distance of ImageNet-C's 15 corruptions (imagecorruptions)
# at severities 1..5 on the reference photos, written by `python tools/calibrate_severity.py`
# (which says how closely each corruption's own severities come back). Severity s lies where the
# distance is SEVERITY_DISTANCES[s - 1]; between and beyond, linearly.
SEVERITY_CALIBRATION = "imagenet-c 15 corruptions, 6 reference photos at 224 px, 96 px copies, v2"
SEVERITY_DISTANCES = (0.2227, 0.3159, 0.4063, 0.487, 0.5589)


def _resampled(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` resized so that its short side is ``side`` px (the aspect ratio kept)."""
    import cv2

    height, width = image.shape[:2]
    scale = min(side / min(height, width), _LONGEST / max(height, width))  # a 1 x 4000 strip stays small
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """perceptual_distance of two working copies (short side _WORK_SIDE px)."""
    from skimage.color import deltaE_ciede2000, rgb2gray, rgb2lab
    from skimage.metrics import structural_similarity

    if np.array_equal(a, b):
        return 0.0
    side = min(a.shape[:2])
    if side >= 3:
        window = min(7, side if side % 2 else side - 1)  # SSIM's window must fit the copy and be odd
        structure = 1.0 - structural_similarity(rgb2gray(a), rgb2gray(b), data_range=1.0, win_size=window)
    else:  # a strip too thin for a window: the luminance difference alone
        structure = float(np.abs(rgb2gray(a) - rgb2gray(b)).mean())
    small_a, small_b = _resampled(a, _COLOUR_SIDE), _resampled(b, _COLOUR_SIDE)
    colour = float(deltaE_ciede2000(rgb2lab(small_a), rgb2lab(small_b)).mean()) / _COLOUR_SCALE
    return round(max(0.0, float(structure)) + colour, 6)


def _check_rgb(image: object, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise AugmentError(f"{what} must be an (H, W, 3) uint8 RGB array (load_image makes one), got {described}")


def perceptual_distance(original: np.ndarray, augmented: np.ndarray) -> float:
    """How different two (H, W, 3) uint8 images of one size look: 1 - SSIM of their luminance
    plus their mean CIEDE2000 colour difference / 100 (0: the same picture), both on copies
    resampled to 96 px on the short side (colour on a 48 px copy).

    >>> image = np.full((16, 16, 3), 120, np.uint8)
    >>> perceptual_distance(image, image)
    0.0
    """
    _check_rgb(original, "original")
    _check_rgb(augmented, "augmented")
    if original.shape != augmented.shape:
        raise AugmentError(f"perceptual_distance needs two images of one shape, got {original.shape} and "
                           f"{augmented.shape}")
    if np.array_equal(original, augmented):
        return 0.0
    return _distance(_resampled(original, _WORK_SIDE), _resampled(augmented, _WORK_SIDE))


def distance_to_severity(distance: float, distances: Sequence[float] = SEVERITY_DISTANCES) -> float:
    """A perceptual distance in ImageNet-C severity units: 0 at distance 0, s at the corruptions'
    mean distance at severity s, linear between the points and beyond the last two.

    >>> distance_to_severity(0.0), distance_to_severity(SEVERITY_DISTANCES[2])
    (0.0, 3.0)
    """
    distance = _check_number(distance, "distance", 0.0, 1e6)
    try:
        points = np.concatenate([[0.0], np.asarray(distances, dtype=float).reshape(-1)])
    except (TypeError, ValueError):
        raise AugmentError(f"distances must be numbers, got {distances!r}") from None
    if len(points) < 3 or not np.all(np.isfinite(points)) or np.any(np.diff(points) <= 0):
        raise AugmentError(f"distances must be two or more increasing positive distances (severities 1, 2, ...), "
                           f"got {list(distances)}")
    if distance <= points[-1]:
        return round(float(np.interp(distance, points, np.arange(len(points)))), 4)
    slope = 1.0 / (points[-1] - points[-2])
    return round(float(len(points) - 1 + (distance - points[-1]) * slope), 4)


def perceptual_strength(images: Sequence[np.ndarray], name: str, intensities: Sequence[float],
                        seeds: Sequence[int]) -> list[float]:
    """Per intensity, the severity of augmentation ``name`` on ``images``: each image's 96 px copy
    rendered with its seed (an augmentation's sizes are fractions of the short side, so the copy
    shows what the full image shows) and compared with the copy; the severity of the mean
    distance. Measured at 0, 0.1, ..., 1 (or at ``intensities`` when they are fewer) and
    interpolated between.

    0 at intensity 0, and never lower at a larger intensity (a random draw can make one intensity
    look closer than a smaller one; the strength keeps the largest so far, so that a ceiling in
    severity units is one intensity).

    >>> photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> strength = perceptual_strength([photo], "GaussianBlur", [0.0, 0.5, 1.0], seeds=[0])
    >>> strength[0], strength[1] <= strength[2]
    (0.0, True)
    """
    try:
        images, seeds, intensities = list(images), [int(seed) for seed in seeds], list(intensities)
    except TypeError as exc:
        raise AugmentError(f"perceptual_strength takes a sequence of images, of seeds and of intensities ({exc})") \
            from None
    if not images or len(seeds) != len(images) or not intensities:
        raise AugmentError(f"perceptual_strength needs one or more images, one seed per image and one or more "
                           f"intensities, got {len(images)} images, {len(seeds)} seeds and {len(intensities)} "
                           f"intensities")
    name = _check_augmentation_name(name)
    intensities = [_check_intensity(intensity, name) for intensity in intensities]
    for k, image in enumerate(images):
        _check_rgb(image, f"images[{k}]")
    copies = [_resampled(image, _WORK_SIDE) for image in images]
    measured = sorted(set(intensities)) if len(set(intensities)) <= _STRENGTH_POINTS else [
        k / (_STRENGTH_POINTS - 1) for k in range(_STRENGTH_POINTS)]
    strength, largest = [], 0.0
    for intensity in measured:
        if intensity > 0.0:
            mean = float(np.mean([_distance(copy, _apply_augmentation(copy, name, intensity, seed))
                                  for copy, seed in zip(copies, seeds)]))
            largest = max(largest, distance_to_severity(mean))
        strength.append(largest)
    return [round(float(value), 4) for value in np.interp(intensities, measured, strength)]


def intensity_at_severity(strength: Sequence[float], intensities: Sequence[float], ceiling: float) -> float:
    """The largest intensity whose strength stays at or below ``ceiling`` severity units,
    interpolated between grid points (the strength is non-decreasing).

    >>> intensity_at_severity([0.0, 1.0, 2.0, 4.0], [0.0, 0.25, 0.5, 1.0], 3.0)
    0.75
    """
    if ceiling <= 0.0 or strength[0] > ceiling:
        return 0.0
    for k in range(1, len(strength)):
        if strength[k] > ceiling:
            low, high = strength[k - 1], strength[k]
            share = (ceiling - low) / (high - low) if high > low else 0.0
            return round(intensities[k - 1] + share * (intensities[k] - intensities[k - 1]), 6)
    return float(intensities[-1])


def severity_at_intensity(strength: Sequence[float], intensities: Sequence[float], intensity: float) -> float:
    """The strength (severity units) at any intensity in [0, 1], interpolated on the grid."""
    return round(float(np.interp(intensity, intensities, strength)), 4)


def realism_severity_ceiling(realism: float) -> float:
    """The perceptual ceiling of ``realism``, in ImageNet-C severity units: 3 - 2 x realism, so
    realism 0.5 stays within severity 2 (mild), 0 within 3 (an average ImageNet-C corruption's
    middle severity) and -0.5 within 4; realism 1 draws nothing either way.

    >>> realism_severity_ceiling(0.5), realism_severity_ceiling(0), realism_severity_ceiling(-0.5)
    (2.0, 3.0, 4.0)
    """
    return round(3.0 - 2.0 * _check_number(realism, "realism", -1.0, 1.0), 6)


###############################################################################
# src/augment/labels.py
# Labels that follow the pixels: label formats (boxes, keypoints, masks, positional outputs),
# moving them with albumentations' targets (augment_with_labels).
###############################################################################

_BBOX_FORMATS = ("pascal_voc", "coco", "yolo", "albumentations")
_ROTATE_METHODS = ("largest_box", "ellipse")


def _label_kind(label_format: Any) -> str:
    """"class" (anything, passed through), "bbox", "keypoints", "mask", or "targets" (ml-infinite-image-augment's
    dict of albumentations Compose keyword arguments, each label a dict of targets)."""
    if label_format is None:
        return "class"
    if isinstance(label_format, dict):
        return "targets"
    if label_format in _BBOX_FORMATS:
        return "bbox"
    if label_format in ("xy", "keypoints"):
        return "keypoints"
    if label_format == "mask":
        return "mask"
    raise AugmentError(f"label_format must be None, one of {_BBOX_FORMATS}, 'keypoints' (x, y points), 'mask', or "
                       f"a dict of albumentations Compose arguments (bbox_params, keypoint_params); got "
                       f"{label_format!r}")


# -- ml-infinite-image-augment's label_format: albumentations Compose arguments -----------------------------
# label_format={"bbox_params": A.BboxParams(format="coco", label_fields=["labels"])} (and/or
# keypoint_params) is passed through to albumentations as ml-infinite-image-augment's README promised; each label
# is then a dict of targets, {"bboxes": [...], "labels": [...]}, and comes back in that form.

_TARGET_PARAMS = {"bbox_params": ("bboxes", "BboxParams"), "keypoint_params": ("keypoints", "KeypointParams")}


def _normal_label_format(label_format: Any) -> Any:
    """A label_format as augment.py keeps it: strings as given; ml-infinite-image-augment's dict checked and made
    plain (each params object as its keyword arguments: JSON for the analysis file, and what
    albumentations takes back)."""
    if not isinstance(label_format, dict):
        _label_kind(label_format)
        return label_format
    import inspect

    A = _albumentations()
    unknown = sorted(set(label_format) - set(_TARGET_PARAMS))
    if unknown or not label_format:
        raise AugmentError(f"a dict label_format takes albumentations Compose's {' and '.join(_TARGET_PARAMS)}, got "
                           f"{unknown or 'an empty dict'}")
    plain = {}
    for key, params in label_format.items():
        kind = getattr(A, _TARGET_PARAMS[key][1])
        try:
            params = kind(**params) if isinstance(params, dict) else params
        except (TypeError, ValueError) as exc:
            raise AugmentError(f"label_format {key}: {exc}") from None
        if not isinstance(params, kind):
            raise AugmentError(f"label_format {key} must be an A.{kind.__name__} or a dict of its arguments, got "
                               f"{type(params).__name__}")
        names = [n for n in inspect.signature(kind.__init__).parameters if n not in ("self", "args", "kwargs")]
        plain[key] = {n: _jsonable(getattr(params, n)) for n in names if hasattr(params, n)}
    from albumentations.core.keypoints_utils import keypoint_formats

    for key, known in (("bbox_params", _BBOX_FORMATS), ("keypoint_params", sorted(keypoint_formats))):
        if key in plain and plain[key].get("format") not in known:  # albumentations checks only when called
            raise AugmentError(f"label_format {key}: format must be one of {', '.join(known)}, got "
                               f"{plain[key].get('format')!r}")
    return plain


def _target_fields(label_format: dict) -> list[str]:
    """The keys a label may have: bboxes / keypoints and their label fields."""
    fields = []
    for key, params in label_format.items():
        fields += [_TARGET_PARAMS[key][0], *(params.get("label_fields") or [])]
    return fields


_VIEW_SIDE = 32  # masks are stored for drawing at most this many pixels on their long side


@dataclass(frozen=True)
class _LabelFormat:
    """A ``label_format`` decoded once: what a label (and a positional output) is, and what that kind
    needs. Made at the edge (ImageAugmenter, RealismTransform, an analysis's settings) and handed to
    everything that moves, reads, describes or stores labels, which asks it instead of decoding
    again. One subclass per kind overrides the steps that differ, as pytorch-grad-cam's CAMs
    override BaseCAM's; this base class is "class" labels (anything, passed through).

    spec: the label_format as augment.py keeps it (None, a box format, "keypoints", "mask", or the
    seed's dict of albumentations Compose arguments).
    """

    spec: Any = None
    kind = "class"
    width = 0  # coordinates per row: 4 for a box, 2 for a point
    field = None  # the albumentations target that carries such labels (a str)
    nouns = ("value", "values")

    @staticmethod
    def of(label_format: Any) -> _LabelFormat:
        """The one place a label_format is decoded (a _LabelFormat passes through)."""
        if isinstance(label_format, _LabelFormat):
            return label_format
        return _LABEL_KINDS[_label_kind(label_format)](label_format)

    @staticmethod
    def for_kind(kind: str) -> _LabelFormat:
        """The label format of a kind as stored in an analysis ("bbox", "mask", ...)."""
        return _LABEL_KINDS[kind]()

    @property
    def positional(self) -> bool:
        """Whether labels and outputs are positions that move with geometric augmentations."""
        return self.kind != "class"

    def value(self, label: Any) -> Any:
        """A label as diff_error sees it."""
        return label

    def stored_in_file(self, label: Any) -> bool:
        """Whether a label is kept in the analysis as itself (False: described instead)."""
        return True

    def describe(self, value: Any) -> str | None:
        """A short text for an output of this kind (None: the generic description)."""
        if isinstance(value, dict):  # {"label": "cat", "score": 0.93}: "cat (0.93)"
            for key in ("confidence", "score", "probability"):
                if _is_number(value.get(key)):
                    rest = {k: v for k, v in value.items() if k != key}
                    return _truncate(f"{rest.get('label', rest.get('class', rest))} ({float(value[key]):.2f})")
        return None

    def view(self, value: Any, side: int = _VIEW_SIDE) -> Any:
        """What the report draws of an output of this kind (None: nothing to draw)."""
        return None


class _RowLabels(_LabelFormat):
    """Boxes and points: rows whose first ``width`` values are coordinates, extra items riding along."""

    def describe(self, value: Any) -> str | None:
        rows = _plain(value)
        if not isinstance(rows, list):
            return None
        shown = "; ".join(" ".join(f"{v:.4g}" if _is_number(v) else str(v) for v in row) if isinstance(row, list)
                          else str(row) for row in rows[:2])
        return _truncate(f"{len(rows)} {self.nouns[len(rows) != 1]}" + (f": {shown}" if rows else "") +
                         ("; ..." if len(rows) > 2 else ""), 160)

    def view(self, value: Any, side: int = _VIEW_SIDE) -> Any:
        """Coordinates (one decimal) and a first extra item as text (a class name)."""
        rows, width = _plain(value), self.width
        if not isinstance(rows, list):
            return None
        return [[round(float(v), 1) for v in row[:width]] + ([_truncate(row[width], 24)] if len(row) > width else [])
                for row in rows if isinstance(row, list) and len(row) >= width
                and all(_is_number(v) for v in row[:width])]


class _BoxLabels(_RowLabels):
    kind, width, field, nouns = "bbox", 4, "bboxes", ("box", "boxes")


class _PointLabels(_RowLabels):
    kind, width, field, nouns = "keypoints", 2, "keypoints", ("point", "points")


class _MaskLabels(_LabelFormat):
    kind, field = "mask", "mask"

    def value(self, label: Any) -> Any:  # a mask label given as a path is the mask it names
        return _read_mask(label) if isinstance(label, (str, os.PathLike)) else label

    def stored_in_file(self, label: Any) -> bool:  # mask arrays are described; paths kept
        return label is None or isinstance(label, (str, os.PathLike))

    def describe(self, value: Any) -> str | None:
        if isinstance(value, np.ndarray) and value.ndim >= 2:
            share = np.count_nonzero(value) / max(1, value.size)
            return f"mask {value.shape[0]}x{value.shape[1]}, {share:.0%} foreground"
        return None

    def view(self, value: Any, side: int = _VIEW_SIDE) -> Any:
        """{"shape": [H, W], "small": [h, w], "runs": run lengths of the mask's nonzero pixels on an
        h x w copy, row by row, starting with a zero run}."""
        if not isinstance(value, np.ndarray) or value.ndim < 2:
            return None
        import cv2

        binary = (value.reshape(value.shape[0], value.shape[1], -1) != 0).any(axis=2).astype(np.uint8)
        scale = min(1.0, side / max(binary.shape))
        small = binary if scale == 1.0 else cv2.resize(
            binary, (max(1, round(binary.shape[1] * scale)), max(1, round(binary.shape[0] * scale))),
            interpolation=cv2.INTER_NEAREST)
        flat = small.ravel()
        edges = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        if flat[0]:
            runs = [0] + runs
        return {"shape": list(binary.shape), "small": list(small.shape), "runs": runs}


class _TargetLabels(_LabelFormat):
    """ml-infinite-image-augment's dict label_format: each label a dict of albumentations targets
    (described, not drawn)."""

    kind = "targets"

    def describe(self, value: Any) -> str | None:
        if not isinstance(value, dict):  # {"bboxes": [...], "labels": [...]}: "2 bboxes (cat, dog)"
            return None
        counted = [f"{len(v)} {k}" for k, v in value.items() if k in ("bboxes", "keypoints") and isinstance(v, list)]
        names = [str(x) for k, v in value.items() if k not in ("bboxes", "keypoints") and isinstance(v, list)
                 for x in v[:3]]
        return _truncate(", ".join(counted) + (f" ({', '.join(names)})" if names else ""), 160)


_LABEL_KINDS: dict[str, type[_LabelFormat]] = {
    "class": _LabelFormat, "bbox": _BoxLabels, "keypoints": _PointLabels, "mask": _MaskLabels, "targets": _TargetLabels}


def _move_targets(image: np.ndarray, transforms: list, seed: int, label_format: dict, targets: Sequence[Any],
                  whats: Sequence[str]) -> tuple[np.ndarray, list]:
    """_move_with_pixels for ml-infinite-image-augment's dict label_format: each target dict through A.Compose
    with the user's own arguments (the same seed: the same pixels every time)."""
    A = _albumentations()
    fields, moved, out_image = _target_fields(label_format), [], None
    for target, what in zip(targets, whats):
        if target is None:
            moved.append(None)
            continue
        if not isinstance(target, dict):
            raise AugmentError(f"{what} must be a dict of targets with keys among {fields} for this label_format, "
                               f"got {_truncate(target, 120)}")
        if unknown := sorted(set(target) - set(fields)):
            raise AugmentError(f"{what} has {unknown}, not among this label_format's targets {fields}: add them to "
                               f"label_fields so they follow their boxes or points (scores, ids, ...)")
        data = {key: _plain(value) for key, value in target.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                out = A.Compose(transforms, seed=seed, strict=False, **label_format)(image=image, **data)
            except (ValueError, TypeError, KeyError) as exc:
                raise AugmentError(f"{what} could not move with the image: {_truncate(exc, 200)} (its targets: "
                                   f"{sorted(data)}; this label_format's: {fields})") from None
        out_image = out["image"]
        moved.append({key: [[round(float(v), 3) for v in row] for row in _plain(out[key])]
                      if key in ("bboxes", "keypoints") else _plain(out[key]) for key in data})
    if out_image is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out_image = A.Compose(transforms, seed=seed, strict=False)(image=image)["image"]
    return np.ascontiguousarray(out_image), moved


class _Positional:
    """One label or output of a positional kind, parsed into coordinates and rebuilt after moving.

    Boxes and points are a list (or an (N, k) array) of rows whose first 4 (boxes) or 2
    (points) values are coordinates and whose extra items (class, score, name) ride along;
    a mask is an (H, W) or (H, W, C) array, or the path of a mask image. A moved value keeps
    the form it came in: a list of lists stays one, an array comes back an array of its dtype.
    """

    def __init__(self, value: Any, labels: _LabelFormat, what: str, shape: tuple[int, ...]):
        self.kind, self.what = labels.kind, what
        self.is_array = isinstance(_as_comparable(value), np.ndarray)
        if labels.kind == "mask":
            self.coords = _mask_array(value, what, shape)
            return
        width = labels.width
        rows = _plain(value) if value is not None else []
        if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) >= width
                                                 and all(_is_number(v) for v in row[:width]) for row in rows):
            noun = "boxes [x_min, y_min, x_max, y_max, ...]" if labels.kind == "bbox" else "points [x, y, ...]"
            raise AugmentError(f"{what} must be a list of {noun} for this label_format, got {_truncate(value, 120)}")
        self.dtype = np.asarray(_as_comparable(value)).dtype if self.is_array else None
        self.coords = np.array([row[:width] for row in rows], dtype=np.float32).reshape(-1, width)
        self.extras = [row[width:] for row in rows]

    def rebuild(self, coords: np.ndarray, kept: Sequence[int]) -> Any:
        if self.kind == "mask":
            return coords
        rows = [[round(float(v), 3) for v in row] + self.extras[k] for row, k in zip(coords, kept)]
        if self.is_array:
            width = coords.shape[1] + (len(self.extras[0]) if self.extras else 0)
            return np.array(rows, dtype=self.dtype if self.dtype.kind == "f" else np.float32).reshape(-1, width)
        return rows


def _mask_array(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """A mask label or output as an array the size of the image (a path is read as a mask image)."""
    if isinstance(value, (str, os.PathLike)):
        value = _read_mask(value)
    mask = np.asarray(_as_comparable(value))
    if mask.ndim not in (2, 3) or mask.shape[:2] != tuple(shape[:2]):
        raise AugmentError(f"{what} must be a mask of the image's size {tuple(shape[:2])}, got an array of shape "
                           f"{mask.shape}")
    return mask


def _read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask image file (``*.mask.png`` as synthesis writes them) as its (H, W) array."""
    from PIL import Image

    try:
        with Image.open(os.fspath(path)) as opened:
            return np.asarray(opened)
    except (OSError, ValueError) as exc:
        raise AugmentError(f"cannot read mask {os.fspath(path)}: {exc}") from None


def _movable_mask(mask: np.ndarray) -> tuple[np.ndarray, Any]:
    """OpenCV warps uint8, uint16, int16, int32 and floats: others travel as one of those."""
    if mask.dtype == bool:
        return mask.astype(np.uint8), bool
    if mask.dtype in (np.int64, np.uint32, np.int8):
        return mask.astype(np.int32), mask.dtype
    return mask, None


def _build_transforms(steps: Sequence[tuple[str, float]], height: int, width: int, rotate_method: str) -> list:
    return [t for name, intensity in steps if intensity > 0
            and (t := _transform(name, round(intensity, 6), height, width, rotate_method)) is not None]


def _move_with_pixels(image: np.ndarray, steps: Sequence[tuple[str, float]], seed: int, labels: _LabelFormat,
                      targets: Sequence[Any], whats: Sequence[str],
                      rotate_method: str = "largest_box") -> tuple[np.ndarray, list]:
    """Apply ``steps`` [(name, intensity)] to ``image``; each positional target moves with it.

    Returns the augmented (H, W, 3) uint8 image (the same pixels as without targets) and
    the targets moved, each in its own form; ``None`` targets stay ``None``. Boxes leaving
    the frame are clipped and dropped when nothing is left; points leaving it are kept,
    outside, in their order; masks are warped with nearest-neighbour sampling.
    """
    import albumentations as A

    transforms = _build_transforms(steps, image.shape[0], image.shape[1], rotate_method)
    present = [k for k, target in enumerate(targets) if target is not None]
    kind, label_format = labels.kind, labels.spec
    if kind == "targets" and present:
        return _move_targets(image, transforms, seed, label_format, targets, whats)
    if kind == "class" or not present:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = A.Compose(transforms, seed=seed, strict=False)(image=image)
        return np.ascontiguousarray(out["image"]), list(targets)
    parsed = {k: _Positional(targets[k], labels, whats[k], image.shape) for k in present}
    data: dict[str, Any] = {"image": image}
    params: dict[str, Any] = {}
    if kind == "mask":
        movable = {k: _movable_mask(parsed[k].coords) for k in present}
        data["masks"] = [movable[k][0] for k in present]
    else:
        # albumentations carries only hashable label fields: each row's (target, row) index
        # rides along and the extra items (class names, scores) are looked up afterwards.
        rows = [(k, r) for k in present for r in range(len(parsed[k].coords))]
        coords = np.concatenate([parsed[k].coords for k in present]) if rows else None
        field = labels.field
        data[field] = coords if coords is not None else np.zeros((0, labels.width), np.float32)
        data["row_index"] = list(range(len(rows)))
        if kind == "bbox":
            params["bbox_params"] = A.BboxParams(format=label_format, label_fields=["row_index"], clip=True,
                                                 min_visibility=0.0, filter_invalid_bboxes=True)
        else:
            params["keypoint_params"] = A.KeypointParams(format="xy", label_fields=["row_index"],
                                                         remove_invisible=False)
    with warnings.catch_warnings():  # "no transform to process bboxes" when no step is geometric, ...
        warnings.simplefilter("ignore", UserWarning)
        try:
            out = A.Compose(transforms, seed=seed, strict=False, **params)(**data)
        except (ValueError, TypeError) as exc:
            raise AugmentError(f"{', '.join(whats[k] for k in present)} could not move with the image "
                               f"(label_format {label_format!r}): {exc}") from None
    moved = list(targets)
    if kind == "mask":
        for k, mask in zip(present, out["masks"]):
            cast = movable[k][1]
            moved[k] = np.ascontiguousarray(mask).astype(cast) if cast is not None else np.ascontiguousarray(mask)
    else:
        for k, value in _regrouped(out[field], out["row_index"], rows, parsed, labels.width).items():
            moved[k] = value
    return np.ascontiguousarray(out["image"]), moved


def _regrouped(moved_rows: Any, row_index: Sequence, rows: list[tuple[int, int]], parsed: dict[int, _Positional],
               width: int) -> dict[int, Any]:
    """Rows albumentations kept (boxes it did not drop), back to their own targets, in their form."""
    grouped: dict[int, tuple[list, list]] = {k: ([], []) for k in parsed}
    for row, index in zip(moved_rows, row_index):
        k, r = rows[int(index)]
        grouped[k][0].append(np.asarray(row)[:width])
        grouped[k][1].append(r)
    return {k: parsed[k].rebuild(np.array(found, np.float32).reshape(-1, width), kept)
            for k, (found, kept) in grouped.items()}


_RANGE_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # boxes from the ellipse's (0) to the enclosing one (1)


def _rotated_box_range(ellipse: Any, enclosing: Any) -> list:
    """The boxes a rotated object's true box may be: from the box of the rotated inscribed ellipse
    (exact for a disc) to the box enclosing the rotated box (exact for a rectangle), in five steps.
    Both have the same centres, so blending the coordinates of any box format stays between them. A
    target whose two moves differ in rows (one convention pushed a box out of the frame) gives both."""
    if ellipse is None or enclosing is None:
        return [enclosing]
    first, second = _plain(ellipse), _plain(enclosing)
    if (not isinstance(first, list) or not isinstance(second, list) or len(first) != len(second)
            or not all(isinstance(a, list) and isinstance(b, list) and len(a) >= 4 and len(b) >= 4
                       and all(_is_number(v) for v in a[:4] + b[:4]) for a, b in zip(first, second))):
        return [ellipse, enclosing]
    form = np.asarray(enclosing) if isinstance(_as_comparable(enclosing), np.ndarray) else None
    blends = []
    for t in _RANGE_STEPS:
        rows = [[round((1 - t) * a + t * b, 3) for a, b in zip(ra[:4], rb[:4])] + rb[4:]
                for ra, rb in zip(first, second)]
        blends.append(rows if form is None else
                      np.array(rows, dtype=form.dtype if form.dtype.kind == "f" else np.float32).reshape(form.shape))
    return blends


def augment_with_labels(image: np.ndarray, steps: Sequence[tuple[str, float]], labels: Sequence[Any],
                        label_format: str | None, seed: int = 0,
                        rotate_method: str = "largest_box") -> tuple[np.ndarray, list]:
    """Apply ``steps`` [(augmentation, intensity), ...] in order; each label moves with the pixels.

    ``labels``: any number of labels of ``label_format`` (boxes, "keypoints", "mask"; None
    passes them through), each in its own form (see the README's "Labels follow the
    pixels"). The image is the same as without labels. Returns (image, moved labels).

    >>> image = np.zeros((40, 40, 3), np.uint8)
    >>> _, (boxes,) = augment_with_labels(image, [("RandomSizedCrop", 0.5)], [[[10, 10, 20, 20, "cat"]]],
    ...                                   "pascal_voc", seed=1)
    >>> boxes[0][-1], len(boxes[0])
    ('cat', 5)
    """
    for name, intensity in steps:
        _check_augmentation_name(name)
        _check_intensity(intensity, name)
    decoded = _LabelFormat.of(_normal_label_format(label_format))
    return _move_with_pixels(_as_rgb(image, "image"), list(steps), seed, decoded, list(labels),
                             [f"labels[{k}]" for k in range(len(labels))], rotate_method)


###############################################################################
# src/augment/images.py
# Loading images and calling the model: load_image, image sources, the predictor (batches, tensors,
# failures), output descriptions and views, diff errors (default_diff_error, TemplateMatcher).
###############################################################################

_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")  # PIL modes of more than 8 bits per value


def load_image(source: str | os.PathLike | np.ndarray) -> np.ndarray:
    """Read an image file (or take an array) as (H, W, 3) uint8 RGB.

    EXIF orientation is applied, grayscale and palette images become RGB, alpha is
    dropped, 16-bit and float images are scaled to 8 bits by their range. A file that
    cannot be read is an AugmentError naming it.

    >>> load_image(np.zeros((4, 6), np.uint8)).shape
    (4, 6, 3)
    """
    if isinstance(source, np.ndarray):
        return _as_rgb(source, "image array")
    from PIL import Image, ImageOps

    path = os.fspath(source)
    try:
        with Image.open(path) as opened:
            opened = ImageOps.exif_transpose(opened)
            if opened.mode in _WIDE_MODES:
                return _as_rgb(_to_8_bits(np.asarray(opened, dtype=np.float64), opened.mode, path), path)
            return _as_rgb(np.asarray(opened.convert("RGB")), path)
    except FileNotFoundError:
        raise AugmentError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise AugmentError(f"cannot read image {path}: {exc}") from None


MAX_IMAGE_PIXELS = 40_000_000  # larger files are skipped by the search (a 8000x8000 photo is 64 MP)


def _check_pixels(path: str, max_pixels: int) -> None:
    from PIL import Image

    try:
        with Image.open(path) as opened:
            width, height = opened.size
    except (OSError, SyntaxError, ValueError):
        return  # load_image names the problem
    if width * height > max_pixels:
        raise AugmentError(f"image {path} is {width}x{height} = {width * height:,} pixels, more than "
                           f"max_image_pixels={max_pixels:,}: resize it, or raise max_image_pixels")


@dataclass
class _Source:
    """One input image: where it comes from and how to load it."""

    key: str  # the file name as given, or "array-<index>" for in-memory images
    path: str | None
    array: np.ndarray | None = field(default=None, repr=False)

    def load(self, max_pixels: int | None = None) -> np.ndarray:
        if self.array is None and self.path is None:
            raise AugmentError(f"image {self.key} was given in memory and is not available now")
        if max_pixels is not None and self.path is not None and self.array is None:
            _check_pixels(self.path, max_pixels)  # from the header, before decoding
        return load_image(self.array if self.array is not None else self.path)

    def identity(self) -> str:
        """What the cache fingerprint sees: path, size and mtime, or the array's bytes."""
        if self.array is not None:
            return f"{self.key}:{self.array.shape}:{hashlib.sha256(self.array.tobytes()).hexdigest()[:16]}"
        stat = os.stat(self.path)
        return f"{self.path}:{stat.st_size}:{stat.st_mtime_ns}"


def _sources(images: Any, parameter: str) -> list[_Source]:
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise AugmentError(f"{parameter} is empty: give at least one image file or array")
    sources = []
    for index, image in enumerate(images):
        if isinstance(image, np.ndarray):
            sources.append(_Source(f"array-{index}", None, _as_rgb(image, f"{parameter}[{index}]")))
        elif isinstance(image, (str, os.PathLike)):
            sources.append(_Source(os.fspath(image), os.fspath(image)))
        else:
            raise AugmentError(f"{parameter}[{index}] must be a file path or an RGB uint8 array, "
                               f"got {type(image).__name__}")
    return sources


def _check_readable(sources: Sequence[_Source]) -> None:
    """Fail before any prediction if a file is missing (a wrong path, not a bad image)."""
    for source in sources:
        if source.path is not None and source.array is None and not os.path.isfile(source.path):
            if os.path.isdir(source.path):
                raise AugmentError(f"{source.path} is a folder, not an image file (on the command line, give a "
                                   f"pattern such as '{os.path.join(source.path, '*.png')}')")
            raise AugmentError(f"image file not found: {source.path}")


_MAX_NESTING = 100  # lists and dicts in a label; Python's recursion limit (1,000) is far above


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists, tuples and dicts in ``value`` nest deeper than ``limit`` (iterative: any depth)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _check_labels(labels: Any, count: int, parameter: str) -> list | None:
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) != count:
        raise AugmentError(f"{parameter} has {len(labels)} labels for {count} images; they must match 1-to-1")
    for k, label in enumerate(labels):  # a label is digested, stored and compared: it must fit in JSON
        if _nested_deeper_than(label, _MAX_NESTING):
            raise AugmentError(f"{parameter}[{k}] is nested more than {_MAX_NESTING} levels deep: too deep to store")
    return labels


class _Predictor:
    """Calls the user's predict on batches, whatever form it takes.

    ``batch_size=None``: predict takes one image; an int: predict takes a list of up to
    that many and returns a list as long. ``predict_input``: "array" ((H, W, 3) uint8
    RGB), "filename" (a path; augmented images go to a private temporary folder that is
    removed on exit, even when predict raises) or "auto" (try an array first, fall back
    to a file name if predict raises on it).
    """

    def __init__(self, predict: Callable, batch_size: int | None, predict_input: str, on_error: str = "raise"):
        self.predict = predict
        self.batch_size = batch_size
        self.predict_input = predict_input
        self.on_error = on_error
        self.calls = 0  # images sent to the model
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._written = 0

    def __enter__(self) -> _Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _path_for(self, array: np.ndarray, path: str | None) -> str:
        if path is not None:
            return os.path.abspath(path)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="augment-")
        from PIL import Image

        self._written += 1
        target = os.path.join(self._tmp.name, f"{self._written:09d}.png")
        Image.fromarray(array).save(target, compress_level=1)
        return target

    def _call(self, inputs: list) -> list:
        if self.batch_size is None:
            return [self.predict(item) for item in inputs]
        outputs = self.predict(inputs)
        try:
            outputs = list(outputs)
        except TypeError:
            raise AugmentError(f"batched predict must return a list, got {type(outputs).__name__}") from None
        if len(outputs) != len(inputs):
            raise AugmentError(f"batched predict returned {len(outputs)} outputs for {len(inputs)} images")
        return outputs

    def _call_in_mode(self, arrays: list[np.ndarray], paths: list[str | None], mode: str) -> list:
        if mode == "array":
            return self._call(arrays)
        return self._call([self._path_for(a, p) for a, p in zip(arrays, paths)])

    def _checked_call(self, arrays: list[np.ndarray], paths: list[str | None]) -> list:
        if self.predict_input == "auto":
            try:
                result = self._call_in_mode(arrays, paths, "array")
                self.predict_input = "array"
            except Exception as array_error:
                try:
                    result = self._call_in_mode(arrays, paths, "filename")
                except Exception:
                    raise array_error from None
                self.predict_input = "filename"
        else:
            result = self._call_in_mode(arrays, paths, self.predict_input)
        self.calls += len(arrays)
        for output in result:
            if (problem := _invalid_output(output)) is not None:
                raise AugmentError(f"predict {problem}")
        return result

    def __call__(self, arrays: list[np.ndarray], paths: list[str | None] | None = None,
                 names: list[str] | None = None) -> list:
        """Predict ``arrays`` ((H, W, 3) uint8); ``paths`` are their files where they have one.

        ``names`` say what each image is ("image a.png, augmentation Hue, intensity 0.3"):
        errors name them. With ``on_error="skip"`` a failing batch is retried image by image
        and each image that still fails gets a ``PredictFailure`` instead of an output.
        """
        paths = paths if paths is not None else [None] * len(arrays)
        names = names if names is not None else [f"image {k}" for k in range(len(arrays))]
        outputs: list = []
        step = self.batch_size or len(arrays) or 1
        for start in range(0, len(arrays), step):
            chunk, chunk_paths = arrays[start:start + step], paths[start:start + step]
            chunk_names = names[start:start + step]
            try:
                outputs.extend(self._checked_call(chunk, chunk_paths))
            except Exception as exc:
                if self.on_error == "raise" or len(chunk) == 1:
                    if self.on_error == "skip":
                        outputs.append(PredictFailure(chunk_names[0], exc))
                        continue
                    what = chunk_names[0] if len(chunk) == 1 else f"a batch of {len(chunk)} from {chunk_names[0]}"
                    exc.add_note(f"augment.py: predict failed on {what} (on_error='skip' records and goes on)")
                    raise
                for array, path, name in zip(chunk, chunk_paths, chunk_names):  # find the culprits
                    try:
                        outputs.extend(self._checked_call([array], [path]))
                    except Exception as single:
                        outputs.append(PredictFailure(name, single))
        if self.predict_input == "filename" and self._tmp is not None:
            for name in os.listdir(self._tmp.name):  # keep the folder small between batches
                os.unlink(os.path.join(self._tmp.name, name))
        return outputs


class PredictFailure:
    """What ``on_error="skip"`` puts in place of an output that predict could not give."""

    def __init__(self, where: str, error: BaseException):
        self.where = where
        self.reason = f"predict failed on {where}: {type(error).__name__}: {_truncate(error, 200)}"

    def __repr__(self) -> str:
        return f"PredictFailure({self.reason!r})"


def _invalid_output(output: Any, depth: int = 0) -> str | None:
    """Why an output cannot be compared (None, NaN), or None when it is fine."""
    if output is None:
        return "returned None (return an empty list for 'nothing found')"
    if isinstance(output, (float, np.floating)) and math.isnan(output):
        return "returned NaN"
    if isinstance(output, np.ndarray) and output.dtype.kind in "fc" and np.isnan(output).any():
        return "returned an array containing NaN"
    if depth < 2 and isinstance(output, (list, tuple)):
        return next((f"{problem} inside a list" for item in output
                     if (problem := _invalid_output(item, depth + 1)) is not None), None)
    return None


def _describe_output(output: Any, kind: str = "class", describe: Callable[[Any], str] | None = None) -> str:
    """An output as a short text for the analysis file and captions: never a whole array.

    ``describe(output) -> str`` (the user's) decides when given. Positional kinds count
    what was found ("2 boxes", "33 points", "mask 64x64, 12 % foreground"); arrays and
    tensors of more than 16 values show shape, dtype and a digest; anything else its str.
    """
    if output is None:
        return "None"
    if describe is not None:
        return _truncate(describe(output), 200)
    value = _as_comparable(output)
    described = _LabelFormat.for_kind(kind).describe(value)
    if described is not None:
        return described
    if isinstance(value, np.ndarray) and value.size > 16:
        return f"array {value.shape} {value.dtype} #{_digest(value)[:8]}"
    return _truncate(output)


def _output_view(output: Any, kind: str, side: int = _VIEW_SIDE) -> Any:
    """What the report draws of a positional output, small enough for the analysis file (see each
    kind's view in labels.py); None for class outputs, ml-infinite-image-augment's dict form and None."""
    return None if output is None else _LabelFormat.for_kind(kind).view(_as_comparable(output), side)


def _view_mask(view: dict) -> np.ndarray:
    """The (H, W) bool mask a stored mask view stands for (nearest-neighbour upscaled)."""
    import cv2

    values = np.repeat(np.arange(len(view["runs"])) % 2, view["runs"]).astype(np.uint8)
    small = values.reshape(view["small"])
    height, width = view["shape"]
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def default_diff_error(output: Any, reference: Any) -> float:
    """0 where the outputs are equal by :func:`outputs_equal` (every element of arrays, dicts in
    any key order, numbers within float noise, a number and its string), else 1.

    >>> default_diff_error([[24, 20, 52, 40]], np.array([[24, 20, 52, 40]])), default_diff_error(7, 8)
    (0.0, 1.0)
    """
    return 0.0 if outputs_equal(output, reference) else 1.0


def _checked_diff(diff_error: Callable, output: Any, reference: Any, where: str) -> float:
    value = diff_error(output, reference)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AugmentError(f"diff_error must return a number in [0, 1], got {value!r} ({where})") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise AugmentError(f"diff_error must return a number in [0, 1], got {value!r} ({where})")
    return number


class TemplateMatcher:
    """The model-free default predictor: which training image is this, and how similar?

    Each training image becomes a descriptor: its 24x24 grayscale intensities and
    gradient magnitudes, each zero-mean and unit-norm; a query is matched to the most similar
    one by cosine similarity. Outputs are ``(index, similarity)``; the matching
    :meth:`diff_error` is 1 when the best match is another image and otherwise grows
    as the similarity falls below 1. It needs no weights and runs offline.

    >>> images = [np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)]
    >>> images[1][4:12, 4:12] = 20
    >>> TemplateMatcher(images)([images[1]])[0][0]
    1
    """

    size = 24

    def __init__(self, images: Sequence[np.ndarray], min_similarity: float = 0.5):
        self.min_similarity = min_similarity
        self.descriptors = np.stack([self.describe(image) for image in images])

    @classmethod
    def describe(cls, image: np.ndarray) -> np.ndarray:
        import cv2

        gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32),
                          (2 * cls.size, 2 * cls.size), interpolation=cv2.INTER_AREA)
        # Intensities say what is where; gradient magnitudes say how sharp it is, so
        # blur and noise lower the similarity as well as moves and colour shifts do.
        edges = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        parts = []
        for channel in (gray, edges):
            small = cv2.resize(channel, (cls.size, cls.size), interpolation=cv2.INTER_AREA).ravel()
            small = small - small.mean()
            norm = np.linalg.norm(small)
            parts.append(small / norm if norm > 1e-6 else small)
        return np.concatenate(parts) / math.sqrt(2)

    def __call__(self, images: list[np.ndarray]) -> list[tuple[int, float]]:
        queries = np.stack([self.describe(image) for image in images])
        similarity = queries @ self.descriptors.T
        best = similarity.argmax(axis=1)
        return [(int(b), round(float(similarity[row, b]), 4)) for row, b in enumerate(best)]

    def diff_error(self, output: tuple[int, float], reference: tuple[int, float]) -> float:
        if output[0] != reference[0]:
            return 1.0
        drop = (1.0 - output[1]) / (1.0 - self.min_similarity)
        return float(min(1.0, max(0.0, drop)))


def _png_bytes(array: np.ndarray, compress_level: int = 6) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


###############################################################################
# src/augment/probes.py
# Where to ask the model: the intensity grid, the grid/adaptive/guided probes, and a search's settings.
# Below both the search and the analysis file, which share them.
###############################################################################

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


###############################################################################
# src/augment/pipeline.py
# The search pipeline: render, predict and score one shard of (image, augmentation) pairs,
# in this process, in render worker processes, or on an executor's workers.
###############################################################################

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


###############################################################################
# src/augment/formats.py
# The file formats: pydantic models of analysis.json, manifests and policy files (file_schema).
###############################################################################

@_made_on_first_use()
def _formats() -> Any:
    """The pydantic models of the files augment.py writes (a namespace: .AnalysisDocument,
    .AnalysisIndex, .ManifestLine, ...)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, model_validator

    SettingsEntry, ImageEntry, CurveEntry = _analysis_parts()

    class AnalysisDocument(BaseModel):
        """An analysis in one document (formats 1-3, and Analysis.to_json): settings, one record
        per image, per augmentation one row per image."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py analysis"]
        version: Literal[1, 2, 3]
        tool_version: str | None = None  # (format 4 files are AnalysisIndex)
        fingerprint: str
        settings: SettingsEntry
        images: list[ImageEntry]
        augmentations: dict[str, CurveEntry]

        @model_validator(mode="after")
        def rows_fit(self) -> AnalysisDocument:
            _check_rows(self)
            return self

    class Shard(BaseModel):
        model_config = ConfigDict(strict=True)
        file: str = Field(pattern=r"^rows-[0-9]{6,}\.npz$")
        bytes: int = Field(ge=0)
        images: int = Field(ge=0)
        uid: str  # also in the shard's meta: the file is the one listed, not another search's

    class Rows(BaseModel):
        model_config = ConfigDict(strict=True)
        folder: str
        shards: list[Shard]

    class Entry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        definition: str
        rows_since: str | None = None  # the first listed shard holding this augmentation's rows
        summary: dict | None = None  # derived; recomputed from the rows when it lacks a field
        perceptual_strength: list[float] | None = None  # severity units per intensity (since 0.4.0)

    class AnalysisIndex(BaseModel):
        """analysis.json, format 4: settings, per augmentation its definition and summary, and the
        shard files of per-image rows in the folder beside it."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py analysis"]
        version: Literal[4]
        tool_version: str | None = None
        fingerprint: str
        settings: SettingsEntry
        images: int = Field(ge=0)
        augmentations: dict[str, Entry]
        rows: Rows

    return types.SimpleNamespace(AnalysisDocument=AnalysisDocument, AnalysisIndex=AnalysisIndex, ImageEntry=ImageEntry,
                                 ManifestLine=_manifest_model(), Policy=_policy_model())


def _analysis_parts() -> tuple[type, type, type]:
    """The models inside analysis.json: its settings, an image record, one augmentation's rows."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    strict = ConfigDict(strict=True, allow_inf_nan=False)
    Row = list[float | None] | None  # one image's diff errors per intensity; null: not (yet) measured

    class SettingsEntry(BaseModel):
        """How the search was made (extra keys are kept: later versions may add some)."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")
        intensities: list[float] = Field(min_length=2)
        failure_threshold: float = Field(gt=0, le=1)
        step_size: float
        seed: int
        model_id: str | None = None
        label_format: str | dict | None = None
        moved_references: bool = False
        rotate_method: str = "largest_box"
        strategy: str = "grid"
        grid_sample: list[int] | None = None
        severity_calibration: str | None = None  # the perceptual scale its strengths are in (since 0.4.0)
        severity_images: int | None = Field(None, ge=1)  # images the strengths were measured on (since 0.4.0)

        @field_validator("intensities")
        @classmethod
        def increasing(cls, intensities: list[float]) -> list[float]:
            if intensities != sorted(intensities) or not 0 <= intensities[0] <= intensities[-1] <= 1:
                raise ValueError("intensities must increase within [0, 1]")
            return intensities

    class ImageEntry(BaseModel):
        model_config = strict
        file: str
        label: Any = None
        output: str | None = None
        label_error: float | None = None
        error: str | None = None
        output_view: Any = None
        digest: str | None = None

    class CurveEntry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")  # "summary" is derived
        definition: str
        diff_errors: list[Row]
        label_errors: list[Row] | None = None
        last_success_output: list[str | None]
        first_failure_output: list[str | None]
        last_success_view: list | None = None
        first_failure_view: list | None = None
        perceptual_strength: list[float] | None = None  # severity units per intensity (since 0.4.0)

    return SettingsEntry, ImageEntry, CurveEntry


def _check_rows(document: Any) -> None:
    """Every augmentation's rows: one per image, each as wide as the grid, values in [0, 1]."""
    count, width = len(document.images), len(document.settings.intensities)
    for name, curve in document.augmentations.items():
        _check_augmentation_name(name, "augmentation in the analysis")
        for field_name in ("diff_errors", "label_errors", "last_success_output", "first_failure_output",
                           "last_success_view", "first_failure_view"):
            values = getattr(curve, field_name)
            if values is not None and len(values) != count:
                raise ValueError(f"augmentations.{name}.{field_name} has {len(values)} entries for {count} images")
        for field_name in ("diff_errors", "label_errors"):
            for k, row in enumerate(getattr(curve, field_name) or []):
                if row is not None and (len(row) != width or any(v is not None and not 0 <= v <= 1 for v in row)):
                    raise ValueError(f"augmentations.{name}.{field_name}.{k} is not {width} values in [0, 1] or null")


def _manifest_model() -> type:
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    strict = ConfigDict(strict=True, allow_inf_nan=False)

    class Step(BaseModel):
        model_config = strict
        name: str
        intensity: float

    class ManifestLine(BaseModel):
        """One line of manifest.jsonl: a synthetic image, what it was made from and how."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        index: int = Field(ge=0)
        file: str
        label: Any = None
        source_file: str
        source_label: Any = None
        augmentations: list[Step]
        seed: int
        realism: float
        predicted_diff_error: float | None = None

        @model_validator(mode="after")
        def names_stay_in_the_folder(self) -> ManifestLine:
            names = [self.file] + ([self.label] if isinstance(self.label, str) and self.label.endswith(".mask.png")
                                   else [])
            for name in names:
                if name != os.path.basename(name) or not name.startswith("synthetic-") or "\\" in name \
                        or "\x00" in name:
                    raise ValueError(f"file {name!r} is not a synthetic image name in this folder")
            return self

    return ManifestLine


def _policy_model() -> type:
    """A policy file: per augmentation its family, largest intensity and weight (unknown keys
    in an entry are refused: a typo there would silently change what training draws)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class PolicyEntry(BaseModel):
        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
        name: str
        family: str
        min_intensity: float = Field(0.0, ge=0, le=1)
        max_intensity: float = Field(ge=0, le=1)
        weight: float = Field(ge=0)

    class Policy(BaseModel):
        """A sampling policy file: what a training transform draws from, without the analysis."""

        model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
        format: Literal["augment.py sampling policy"]
        version: int = Field(ge=1)
        catalogue_version: int = Field(ge=1)
        tool_version: str | None = None
        realism: float | None = None
        model_id: str | None = None
        severity_ceiling: float | None = Field(None, ge=0)  # since 0.4.0: limits bounded by perception
        min_augmentations: int = Field(ge=1)
        max_augmentations: int = Field(ge=1)
        augmentations: list[PolicyEntry] = Field(min_length=1)

    return Policy


def _validated(model: Any, data: Any, where: str) -> Any:
    """``data`` checked against a format; an AugmentError says where and which field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or "the document"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise AugmentError(f"{where} is damaged: {path}: {message}{more}") from None


def file_schema(kind: str = "analysis") -> dict:
    """The JSON Schema of ``analysis.json`` ("analysis"; its rows are in shard files, see the
    README), of one analysis as a single document ("analysis-document": Analysis.to_json and
    format 1-3 files), of a ``manifest.jsonl`` line ("manifest") or of a sampling policy file ("policy").

    >>> file_schema("manifest")["required"][:3]
    ['index', 'file', 'source_file']
    """
    models = {"analysis": _formats().AnalysisIndex, "analysis-document": _formats().AnalysisDocument,
              "manifest": _formats().ManifestLine, "policy": _formats().Policy}
    if kind not in models:
        raise AugmentError(f"kind must be one of {sorted(models)}, got {kind!r}")
    return models[kind].model_json_schema()


###############################################################################
# src/augment/rows.py
# Per-image rows: columns kept in memory or released to append-only shard files beside the analysis
# (format 4), their rounding, and reading and writing shards.
###############################################################################

def _to_float32(values: Any, threshold: float) -> np.ndarray:
    """``values`` (NaN: not measured) as float32, each on the same side of ``threshold`` as before."""
    wide = np.asarray(values, dtype=np.float64)
    narrow = wide.astype(np.float32)
    above = wide >= threshold
    crossed = (narrow >= np.float64(threshold)) != above
    if crossed.any():  # the neighbouring float32 on the right side is at most one step away
        narrow[crossed] = np.nextafter(narrow[crossed], np.where(above[crossed], np.inf, -np.inf).astype(np.float32))
    return narrow


@_cached("rows: shortest decimals of float32 values", maxsize=65536, entry_bytes=0)
def _short_float(value: float) -> float:
    return float(str(np.float32(value)))  # the shortest decimal that is this float32: 0.3, not 0.30000001


def _python_row(values: np.ndarray, threshold: float) -> list[float | None]:
    row = []
    for value in values.tolist():
        if value != value:
            row.append(None)
            continue
        short = _short_float(value)
        row.append(short if (short >= threshold) == (value >= threshold) else value)
    return row


def _assignments(k: Any, value: Any, size: int) -> list[tuple[int, Any]]:
    """``column[k] = value`` as (index, value) pairs: one index, or a slice and as many values."""
    if isinstance(k, slice):
        indices, values = range(*k.indices(size)), list(value)
        if len(values) != len(indices):
            raise ValueError(f"cannot assign {len(values)} values to a slice of {len(indices)} images")
        return list(zip(indices, values))
    return [(range(size)[k], value)]


class _Column(collections.abc.Sequence):
    """What _Rows and _Texts share: one value per image, indexed and assigned like a list, held as
    arrays made on first use (``load``: from the shard files). ``fresh`` is every image set since
    the analysis was last saved (one set for all of a curve's columns: see AugmentationCurve).

    A search's checkpoint *releases* the columns it saved (see AugmentationCurve._release): the
    arrays are dropped, since their rows are in the shards, and only what the summaries need stays
    (first failures, the full-grid rows, the exemplars' texts). Values set afterwards wait in
    ``_pending`` for the next save; anything else read loads the column from disk again."""

    def __init__(self, count: int, load: Callable[[], tuple] | None):
        self.size, self._load, self._data = count, load, None
        self.fresh: set[int] = set()
        self._pending: dict[int, Any] | None = None  # released: values set since, over the rows on disk

    @property
    def loaded(self) -> bool:
        return self._data is not None

    @property
    def released(self) -> bool:
        return self._data is None and self._pending is not None

    def waiting(self) -> int:
        """How many rows wait in memory for the next save (released columns only)."""
        return len(self._pending or ())

    def arrays(self) -> tuple:
        if self._data is None:
            self._data, self._load = self._adopt(self._load()), None
            for k, item in (self._pending or {}).items():
                self._put(k, item)
            self._pending = None
        return self._data

    def snapshot(self) -> tuple:
        """The arrays, without keeping them: a column not in memory reads them for this caller only."""
        return self._data if self._data is not None else self._reader()._data

    def read(self, k: int) -> Any:
        """``self[k]``, without keeping the column in memory when it is not (one image's row of an
        analysis too large to hold: the report's exemplar)."""
        if self._data is not None or (self.released and self._peek(k) is not _UNKNOWN):
            return self[k]
        return self._reader()._item(range(self.size)[k])

    def _reader(self) -> _Column:
        reader = self._unloaded()
        reader._data = reader._adopt(self._load())
        for k, item in (self._pending or {}).items():
            reader._put(k, item)
        return reader

    def _adopt(self, data: tuple) -> tuple:
        return data

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self.size))]
        k = range(self.size)[k]
        if self.released and (found := self._peek(k)) is not _UNKNOWN:
            return found
        self.arrays()
        return self._item(k)

    def __setitem__(self, k: Any, value: Any) -> None:
        for index, item in _assignments(k, value, self.size):
            if self.released:
                self._note(index, item)
            else:
                self.arrays()
                self._put(index, item)
            self.fresh.add(index)

    def copy(self) -> list:
        return list(self)

    def __add__(self, other: Any) -> list:
        return list(self) + list(other)

    __hash__ = None  # type: ignore[assignment]


_UNKNOWN = object()  # a released column's value that is only on disk


@dataclass
class _Kept:
    """What a released _Rows keeps: per image its first failing grid index (-1 never, -2 not
    searched) at ``threshold``, whether it has a row and a complete one, and the complete rows."""

    threshold: float
    first: np.ndarray  # int16
    present: np.ndarray
    complete: np.ndarray
    indices: np.ndarray  # images of the complete rows, ascending
    rows: np.ndarray  # (len(indices), grid) float32


def _first_index(values: np.ndarray, present: np.ndarray, threshold: float) -> np.ndarray:
    hit = values >= np.float64(threshold)
    return np.where(present, np.where(hit.any(axis=1), hit.argmax(axis=1), -1), -2)


def _empty_rows(count: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((count, width), np.nan, np.float32), np.zeros(count, bool)


class _Rows(_Column):
    """One augmentation's rows of diff (or label) errors for every image, as columns (see above):
    arrays() is (values (images, grid) float32 with NaN where not measured, present (images,) bool)."""

    def __init__(self, count: int, width: int, threshold: Callable[[], float], rows: Iterable | None = None,
                 load: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None):
        super().__init__(count, load)
        self.width, self._threshold = width, threshold
        self._kept: _Kept | None = None
        rows = list(rows or ())
        if load is None and not any(row is not None for row in rows):  # made on first use (not at all when released)
            self._load = functools.partial(_empty_rows, count, width)
        elif load is None:
            self._data = _empty_rows(count, width)
            for k, row in enumerate(rows):
                if row is not None:
                    self._put(k, row)

    def _unloaded(self) -> _Rows:
        return _Rows(self.size, self.width, self._threshold, load=self._load)

    def _item(self, k: int) -> list[float | None] | None:
        values, present = self._data
        return _python_row(values[k], self._threshold()) if present[k] else None

    def _row32(self, row: Sequence[float | None]) -> np.ndarray:
        if len(row) != self.width:
            raise ValueError(f"a row of {len(row)} values for a grid of {self.width}")
        return _to_float32([np.nan if v is None else v for v in row], self._threshold())

    def _put(self, k: int, row: Sequence[float | None] | None) -> None:
        values, present = self._data
        if row is None:
            values[k], present[k] = np.nan, False
            return
        values[k] = self._row32(row)
        present[k] = True

    def put_many(self, indices: np.ndarray, values: np.ndarray) -> None:
        """``self[k] = row`` for every k of ``indices`` and row of ``values`` ((m, grid), NaN: not measured)."""
        if values.shape != (len(indices), self.width):
            raise ValueError(f"{values.shape} rows for {len(indices)} images and a grid of {self.width}")
        values = _to_float32(values, self._threshold())
        if self.released:
            self._note_rows(indices, values)
        else:
            data, present = self.arrays()
            data[indices], present[indices] = values, True
        self.fresh.update(indices.tolist())

    def _note_rows(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Released: rows (float32) that wait for the next save, and what _Kept says of them."""
        kept = self._kept
        kept.first[indices] = _first_index(values, np.ones(len(indices), bool), kept.threshold)
        kept.present[indices], kept.complete[indices] = True, ~np.isnan(values).any(axis=1)
        self._pending.update(zip(indices.tolist(), values))

    def release(self, load: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
        """Drop the arrays (``load`` reads them from the shards that now hold every row); keep _Kept."""
        if self.released:
            indices, rows = self.complete_rows()
            self._kept = dataclasses.replace(self._kept, indices=indices, rows=rows)
        else:
            values, present = self.snapshot()
            threshold = self._threshold()
            complete = present & ~np.isnan(values).any(axis=1)
            indices = np.flatnonzero(complete)
            self._kept = _Kept(threshold, _first_index(values, present, threshold).astype(np.int16),
                               present.copy(), complete, indices, values[indices])
        self._data, self._load, self._pending = None, load, {}

    def arrays(self) -> tuple:
        data = super().arrays()
        self._kept = None
        return data

    def _note(self, k: int, row: Sequence[float | None] | None) -> None:
        kept = self._kept
        if row is None:
            self._pending[k] = None
            kept.first[k], kept.present[k], kept.complete[k] = -2, False, False
            return
        self._note_rows(np.array([k]), self._row32(row)[None])

    def _peek(self, k: int) -> Any:
        if k in self._pending:
            values = self._pending[k]
        elif not self._kept.present[k]:
            return None
        else:
            at = int(np.searchsorted(self._kept.indices, k))
            if at == len(self._kept.indices) or self._kept.indices[at] != k:
                return _UNKNOWN
            values = self._kept.rows[at]
        return None if values is None else _python_row(values, self._threshold())

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, _Rows):
            (a, pa), (b, pb) = self.arrays(), other.arrays()
            return a.shape == b.shape and np.array_equal(pa, pb) and np.array_equal(a[pa], b[pb], equal_nan=True)
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<rows of {self.size} images, {int(self.searched_mask().sum())} searched>"

    def first_indices(self, threshold: float) -> np.ndarray:
        """Per image, the first grid index at or above ``threshold``: -1 never, -2 not searched."""
        if self.released and threshold == self._kept.threshold:
            return self._kept.first.astype(np.int64)
        return _first_index(*self.arrays(), threshold)

    def searched_mask(self) -> np.ndarray:
        """Which images have a row."""
        return self._kept.present.copy() if self.released else self.arrays()[1]

    def complete(self) -> np.ndarray:
        """Which images were measured at every grid intensity."""
        if self.released:
            return self._kept.complete.copy()
        values, present = self.arrays()
        return present & ~np.isnan(values).any(axis=1)

    def complete_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The images measured at every grid intensity (ascending) and their rows, float32."""
        if not self.released:
            indices = np.flatnonzero(self.complete())
            return indices, self.arrays()[0][indices]
        kept, pending = self._kept, self._pending
        stays = ~np.isin(kept.indices, np.fromiter(pending, np.int64, len(pending)))
        new = sorted(k for k, values in pending.items() if values is not None and kept.complete[k])
        indices = np.concatenate([kept.indices[stays], np.array(new, np.int64)])
        added = np.array([pending[k] for k in new], np.float32).reshape(-1, self.width)
        rows = np.concatenate([kept.rows[stays], added])
        order = np.argsort(indices, kind="stable")
        return indices[order], rows[order]

    def rows_of(self, picked: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(values, present) of the images ``picked`` (None: every image, the columns themselves
        when in memory); a released column's pending rows without reading the disk."""
        if picked is not None and self.released and all(k in self._pending for k in picked.tolist()):
            rows = [self._pending[k] for k in picked.tolist()]
            values = np.full((len(picked), self.width), np.nan, np.float32)
            for i, row in enumerate(rows):
                if row is not None:
                    values[i] = row
            return values, np.array([row is not None for row in rows], bool)
        values, present = self.snapshot()
        return (values, present) if picked is None else (values[picked], present[picked])


class _Texts(_Column):
    """Per image one short text or None (an output): arrays() is (codes (images,) int32, -1 for
    None, the distinct texts). Released, it keeps the texts of the images it is told to."""

    def __init__(self, count: int, values: Iterable | None = None,
                 load: Callable[[], tuple[np.ndarray, list[str]]] | None = None):
        super().__init__(count, load)
        self._index: dict[str, int] = {}
        self._known: dict[int, str | None] = {}
        if load is None:
            self._data = np.full(count, -1, np.int32), []
            for k, text in enumerate(values or ()):
                if text is not None:
                    self._put(k, text)

    def _unloaded(self) -> _Texts:
        return _Texts(self.size, load=self._load)

    def _adopt(self, data: tuple) -> tuple:
        self._index = {text: code for code, text in enumerate(data[1])}
        return data

    def _item(self, k: int) -> str | None:
        codes, texts = self._data
        code = int(codes[k])
        return None if code < 0 else texts[code]

    def _put(self, k: int, text: str | None) -> None:
        codes, texts = self._data
        if text is None:
            codes[k] = -1
            return
        code = self._index.get(text)
        if code is None:
            code = self._index[text] = len(texts)
            texts.append(text)
        codes[k] = code

    def release(self, load: Callable[[], tuple[np.ndarray, list[str]]], keep: Iterable[int]) -> None:
        """Drop the arrays (``load`` reads them from the shards); keep the texts of images ``keep``."""
        if self.released:  # the texts it lacks are read from the shards ``load`` reads (the old ones may be gone)
            self._load = load
            known = {k: self.read(k) for k in keep}
        else:
            codes, texts = self.snapshot()
            known = {k: None if codes[k] < 0 else texts[codes[k]] for k in keep}
        self._data, self._load, self._pending, self._known, self._index = None, load, {}, known, {}

    def _note(self, k: int, text: str | None) -> None:
        self._pending[k] = text

    def _peek(self, k: int) -> Any:
        return self._pending[k] if k in self._pending else self._known.get(k, _UNKNOWN)

    def __eq__(self, other: Any) -> bool:
        return list(self) == list(other) if isinstance(other, (_Texts, list, tuple)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<texts of {self.size} images>"

    def subset(self, indices: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
        """The codes of ``indices`` (None: every image) renumbered into the texts they use (what a
        shard stores); a released column's pending texts without reading the disk."""
        if indices is not None and self.released and all(k in self._pending for k in indices.tolist()):
            used: dict[str, int] = {}
            out = np.array([-1 if (text := self._pending[k]) is None else used.setdefault(text, len(used))
                            for k in indices.tolist()], np.int32)
            return out, list(used)
        codes, texts = self.snapshot()
        picked = codes if indices is None else codes[indices]
        used_codes, renumbered = np.unique(picked[picked >= 0], return_inverse=True)
        out = np.full(len(picked), -1, np.int32)
        out[picked >= 0] = renumbered
        return out, [texts[code] for code in used_codes.tolist()]


class _Deferred(collections.abc.Sequence):
    """A tuple computed on first use (a stored summary's per-image first failures need the rows)."""

    def __init__(self, compute: Callable[[], Iterable]):
        self._compute, self._items = compute, None

    def _get(self) -> tuple:
        if self._items is None:
            self._items, self._compute = tuple(self._compute()), None
        return self._items

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, k: Any) -> Any:
        return self._get()[k]

    def __eq__(self, other: Any) -> bool:
        return self._get() == tuple(other) if isinstance(other, collections.abc.Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self) -> tuple:  # pickled as the tuple it stands for
        return tuple, (self._get(),)

    def __hash__(self) -> int:
        return hash(self._get())

    def __add__(self, other: Any) -> tuple:
        return self._get() + tuple(other)


# The rows on disk (analysis format 4): analysis.json holds the settings, per augmentation its
# definition and summary, and the list of shard files in the folder beside it (analysis.rows/
# for analysis.json). A shard is a NumPy .npz file of one checkpoint's new rows; a later shard's
# row for an image replaces an earlier one's. A checkpoint writes one new shard (temporary file,
# fsync, rename), then analysis.json listing it: a kill at any point leaves the last listed set
# whole, and a shard no analysis.json lists is removed by the next search. Members of a shard:
#   meta              JSON (uint8): {"format", "version", "grid", "augmentations": [{"name", "definition"}]}
#   images, records   image indices (int64) and their records, JSON lines (uint8)
#   a<i>.images       augmentation i's image indices (int64); a<i>.present: has a row (bool)
#   a<i>.diff         (m, grid) float32 diff errors, NaN where not measured; a<i>.label: label errors
#   a<i>.last, a<i>.first      output codes (int32, -1: none) into a<i>.last.texts / a<i>.first.texts (JSON)
#   a<i>.views        JSON: per row [last success view, first failure view] (positional outputs)
# Rows of an augmentation whose definition differs from analysis.json's are ignored.

_SHARD_FORMAT, _SHARD_VERSION = "augment.py rows", 1
_SHARD_NAME = re.compile(r"rows-(\d{6,})\.npz")
_MAX_SHARDS = 64  # a checkpoint that would list more rewrites the rows as one shard
_COMPACT_AFTER_SEARCH = 8  # a finished search with more shards than this leaves one


def _rows_folder(path: str) -> str:
    """Where the rows of the analysis file ``path`` live: analysis.json -> analysis.json.rows."""
    return path + ".rows"


# Copies of the images a search was given as arrays, so that the report and the compare page can
# draw them later without the arrays: the same pixels (the same random draws, box coordinates and
# captions as the search's), at most KEPT_IMAGE_BYTES of pixels per analysis (the report's pictures
# first), in <analysis>.rows/images.npz. Images beyond it get a placeholder saying how to give them.
KEPT_IMAGE_BYTES = 32 * 2**20
_KEPT_IMAGES = "images.npz"


class _KeptImages:
    """The copies kept beside the analysis file ``path``: the index is read at once, each image
    when asked for (a damaged or missing file keeps nothing)."""

    def __init__(self, path: str | None):
        self.file = os.path.join(_rows_folder(path), _KEPT_IMAGES) if path else ""
        self.index: dict[str, str] = {}
        if not self.file or not os.path.isfile(self.file):
            return
        try:
            with np.load(self.file) as stored:
                keys = json.loads(bytes(stored["keys"]).decode("utf-8"))
                self.index = {key: f"t{k}" for k, key in enumerate(keys) if f"t{k}" in stored.files}
        except Exception:  # noqa: BLE001 -- truncated, corrupt, foreign: nothing kept, the pages say so
            self.index = {}

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, key: str) -> np.ndarray | None:
        if key not in self.index:
            return None
        try:
            with np.load(self.file) as stored:
                return stored[self.index[key]]
        except Exception:  # noqa: BLE001 -- damaged since: a placeholder, never a failed page
            return None


def _write_kept_images(path: str, images: dict[str, np.ndarray]) -> None:
    """Replace the copies kept beside the analysis file ``path`` (atomically)."""
    members = {f"t{k}": image for k, image in enumerate(images.values())}
    members["keys"] = _blob(list(images))
    folder = _rows_folder(path)
    if not os.path.lexists(folder):
        os.makedirs(folder)  # an analysis of formats 1-3 has no rows folder yet
    _write_atomic(os.path.join(folder, _KEPT_IMAGES), lambda handle: np.savez_compressed(handle, **members))


def _blob(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, separators=(",", ":")).encode("utf-8"), dtype=np.uint8)


def _unblob(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode("utf-8"))


def _picked(of: np.ndarray, rows: np.ndarray, every: bool) -> np.ndarray:
    """Rows ``rows`` of a whole column (``every``; the column itself when that is all of it), or
    ``of`` as it is (already those rows)."""
    return of[rows] if every and len(rows) != len(of) else of


def _shard_members(analysis: Analysis, images: np.ndarray, rows: dict[str, np.ndarray],
                   every: bool) -> Iterator[tuple[str, np.ndarray]]:
    """The members of one shard: the records of ``images`` and, per augmentation, the rows of its
    images (``every``: all rows, one augmentation's columns in memory at a time)."""
    records = "\n".join(json.dumps(dataclasses.asdict(analysis.images[k]), separators=(",", ":"))
                        for k in images.tolist())
    yield "images", images.astype(np.int64)
    yield "records", np.frombuffer(records.encode("utf-8"), dtype=np.uint8)
    for i, (name, picked) in enumerate(rows.items()):
        curve, prefix = analysis.curves[name], f"a{i}."
        which = None if every else picked
        values, present = curve.diff_errors.rows_of(which)
        yield prefix + "images", picked.astype(np.int64)
        yield prefix + "present", _picked(of=present, rows=picked, every=every)
        yield prefix + "diff", _picked(of=values, rows=picked, every=every)
        del values, present
        if curve.label_errors is not None:
            label_values, label_present = curve.label_errors.rows_of(which)
            yield prefix + "label", _picked(of=label_values, rows=picked, every=every)
            yield prefix + "label.present", _picked(of=label_present, rows=picked, every=every)
            del label_values, label_present
        for key, texts in (("last", curve.last_success_output), ("first", curve.first_failure_output)):
            codes, used = texts.subset(picked)
            yield prefix + key, codes
            yield prefix + key + ".texts", _blob(used)
        if curve.last_success_view is not None:
            yield prefix + "views", _blob([[curve.last_success_view[k], curve.first_failure_view[k]]
                                           for k in picked.tolist()])


def _write_shard(handle: Any, analysis: Analysis, images: np.ndarray, rows: dict[str, np.ndarray],
                 every: bool) -> str:
    """Write one shard to ``handle``: a compressed .npz (what np.load reads) with fixed member dates,
    so the same rows give the same bytes. Its meta, written last, names it by a digest of all of it
    ("uid": what the index lists it by), which is returned."""
    meta = {"format": _SHARD_FORMAT, "version": _SHARD_VERSION, "grid": len(analysis.intensities),
            "augmentations": [{"name": name, "definition": analysis.curves[name].definition} for name in rows]}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        def member(key: str, array: np.ndarray) -> None:
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)

        for key, array in _shard_members(analysis, images, rows, every):
            digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # the bytes, not a copy
            member(key, array)
        uid = digest.hexdigest()[:32]
        member("meta", _blob({**meta, "uid": uid}))
    return uid


class _ShardError(AugmentError):
    pass


# What a damaged shard raises when read (an OSError such as EIO is not damage: it propagates as it is)
_SHARD_DAMAGE = (ValueError, KeyError, EOFError, IndexError, TypeError, RecursionError, zipfile.BadZipFile, zlib.error)


def _open_shard(path: str, count: int, width: int, uid: str | None = None) -> tuple[Any, dict]:
    """An open shard and its meta, checked; a damaged one, or not the one the index lists (``uid``),
    is an error naming it."""
    try:
        shard = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _ShardError(f"rows file {path} is missing: {_REPLACED}") from None
    except _SHARD_DAMAGE as exc:
        raise _ShardError(f"rows file {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    try:
        meta = _unblob(shard["meta"])
        images = shard["images"]
    except _SHARD_DAMAGE as exc:
        shard.close()
        raise _ShardError(f"rows file {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    if (not isinstance(meta, dict) or meta.get("format") != _SHARD_FORMAT or meta.get("grid") != width
            or images.ndim != 1 or (len(images) and (images.min() < 0 or images.max() >= count))):
        shard.close()
        raise _ShardError(f"rows file {path} does not belong to this analysis ({count} images, grid of {width})")
    if uid is not None and meta.get("uid") != uid:
        shard.close()
        raise _ShardError(f"rows file {path} is not the one its analysis file listed: {_REPLACED}")
    return shard, meta


_REPLACED = "another search rewrote the analysis since it was loaded; load it again"


class _ShardColumns:
    """Reads one augmentation's columns from the listed shards, one field at a time and as often as
    asked (what lazy and released _Rows and _Texts load)."""

    def __init__(self, paths: Sequence[tuple[str, str | None]], name: str, definition: str, count: int, width: int,
                 labels: bool, views: bool):
        self.paths, self.name, self.definition = list(paths), name, definition  # (shard, its uid) in order
        self.count, self.width, self.labels, self.views = count, width, labels, views

    def take(self, field_name: str) -> Any:
        """"diff" or "label": (values, present); "last" or "first": (codes, texts); "views"."""
        count, width = self.count, self.width
        if field_name in ("diff", "label"):
            values, present = np.full((count, width), np.nan, np.float32), np.zeros(count, bool)
        else:
            codes, index = np.full(count, -1, np.int32), {}
        views = [[None] * count, [None] * count]
        for path, uid in self.paths:
            shard, meta = _open_shard(path, count, width, uid)
            with shard:
                entries = [i for i, entry in enumerate(meta["augmentations"])
                           if entry.get("name") == self.name and entry.get("definition") == self.definition]
                for i in entries:
                    prefix = f"a{i}."
                    try:
                        picked, has = shard[prefix + "images"], shard[prefix + "present"]
                        if len(has) != len(picked) or (len(picked) and (picked.min() < 0 or picked.max() >= count)):
                            raise ValueError("rows do not fit the images")
                        if field_name == "diff":
                            rows = shard[prefix + "diff"]
                            if rows.shape != (len(picked), width):
                                raise ValueError("rows do not fit the grid or the images")
                            if np.any((rows < 0) | (rows > 1)):
                                raise ValueError("a diff error outside [0, 1]")
                            values[picked], present[picked] = rows, has
                        elif field_name == "label":
                            if prefix + "label" in shard.files:
                                values[picked] = shard[prefix + "label"]
                                present[picked] = shard[prefix + "label.present"]
                        elif field_name == "views":
                            if prefix + "views" in shard.files:
                                for k, (last, first) in zip(picked.tolist(), _unblob(shard[prefix + "views"])):
                                    views[0][k], views[1][k] = last, first
                        else:
                            local, used = shard[prefix + field_name], _unblob(shard[prefix + field_name + ".texts"])
                            if len(local) != len(picked) or (len(local) and not -1 <= local.min() <= local.max()
                                                              < len(used)):
                                raise ValueError(f"{field_name} output codes do not fit their texts")
                            mapping = np.array([index.setdefault(t, len(index)) for t in used] + [-1], dtype=np.int32)
                            codes[picked] = mapping[local]
                    except _SHARD_DAMAGE as exc:
                        raise _ShardError(f"rows file {path}: augmentation {self.name}: {exc}") from None
        if field_name in ("diff", "label"):
            return values, present
        return views if field_name == "views" else (codes, list(index))


###############################################################################
# src/augment/stats.py
# Statistics of one augmentation's rows: CurveSummary, bootstrap intervals of the thresholds,
# first failures and the exemplar.
###############################################################################

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


###############################################################################
# src/augment/analysis.py
# The analysis file: AugmentationCurve, ImageRecord and Analysis (load, save, resume, the cache
# policy), load_analysis.
###############################################################################

def _stored_label(label: Any, label_form: _LabelFormat) -> Any:
    """A label as the analysis file keeps it: as it is, except mask arrays (their path, or a text)."""
    if not label_form.stored_in_file(label):
        return _describe_output(label, label_form.kind)
    return os.fspath(label) if isinstance(label, os.PathLike) else _jsonable(label)


def _check_rows_folder(folder: str, what: str) -> None:
    """The rows folder is written and cleaned by augment.py: never through a symbolic link (its
    shards would land in, and old ones be deleted from, wherever the link points)."""
    if os.path.islink(folder):
        raise AugmentError(f"the rows folder of {what}, {folder}, is a symbolic link (to {os.readlink(folder)}); "
                           f"augment.py never writes or deletes through a link: replace it by a real folder "
                           f"(or remove it) and run again")


def _check_cache_path(analytics_cache: Any) -> str | None:
    """The analysis file's path, checked before any prediction: a folder, or a folder this
    process cannot write to, would otherwise lose a whole search at its first checkpoint."""
    if analytics_cache is None:
        return None
    path = _file_path(analytics_cache, "analytics_cache")  # not "", "runs/", a folder (or None: in memory only)
    rows = _rows_folder(os.path.abspath(path))
    _check_rows_folder(rows, f"analytics_cache {path}")
    if os.path.lexists(rows) and not os.path.isdir(rows):
        raise AugmentError(f"{rows} is not a folder, but the rows of analytics_cache {path} go there: move it away "
                           f"or choose another analytics_cache")
    problem = _unwritable(path)
    if problem is not None and not os.path.isfile(path):  # a complete cache can still be read: see _SearchRun
        raise AugmentError(f"cannot write the analysis file {path}: {problem}") from None
    return path


def _unwritable(path: str) -> str | None:
    """Why this process cannot write beside the analysis file ``path`` (None: it can)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"{exc.strerror} in {folder}"
    return None


def _stored_summary(block: Any, curve: AugmentationCurve) -> CurveSummary | None:
    """The summary a format 4 file stores (None when it lacks a field: then it is recomputed)."""
    try:
        return CurveSummary(
            intensities=tuple(curve.intensities), searched_images=int(block["searched_images"]),
            full_grid_images=int(block["full_grid_images"]), adaptive_agreement=block["adaptive_agreement"],
            first_failure_intensities=_Deferred(lambda: _first_failure_tuple(curve)),
            failed_share=tuple(block["failed_share"]), mean_diff_error=tuple(block["mean_diff_error"]),
            changed_share=tuple(block["changed_share"]),
            label_accuracy=None if block["label_accuracy"] is None else tuple(block["label_accuracy"]),
            exemplar=block["exemplar"],
            intervals={key: tuple(bounds) for key, bounds in block["confidence_intervals"].items()})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@dataclass
class AugmentationCurve:
    """Search results for one augmentation over the intensity grid.

    ``diff_errors[k]`` is image k's diff error at each grid intensity (None until that
    image is searched). :meth:`summarize` computes every statistic at once; the
    properties below are its fields, for one figure at a time.

    >>> curve = analysis.curves["Brighten"]                                  # doctest: +SKIP
    >>> curve.intensity_at_share(0.5), curve.safe_intensity, curve.onset_intensity  # doctest: +SKIP
    (0.35, 0.1, 0.2)
    """

    name: str
    intensities: list[float]
    failure_threshold: float
    definition: str
    diff_errors: list[list[float] | None]
    label_errors: list[list[float] | None] | None = None
    last_success_output: list[str | None] = field(default_factory=list)
    first_failure_output: list[str | None] = field(default_factory=list)
    # Positional outputs (label_format): per image, what the report draws (see _output_view).
    last_success_view: list | None = None
    first_failure_view: list | None = None
    # The search's strategy (from the analysis' settings): a guided search's agreement replays its probe
    strategy: str = field(default="grid", repr=False, compare=False)
    # A loaded analysis' summary from its file, used until the rows are read (then recomputed)
    stored_summary: CurveSummary | None = field(default=None, repr=False, compare=False)
    # How strong the augmentation looks at each intensity, in ImageNet-C severity units (see
    # perceptual_strength), measured on a few of the searched images; None: not measured
    perceptual_strength: list[float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Lists (from a version 1-3 file, or built by hand) become columns (see _Rows)
        count, width = len(self.diff_errors), len(self.intensities)
        if not isinstance(self.diff_errors, _Rows):
            self.diff_errors = _Rows(count, width, self._threshold, self.diff_errors)
        if self.label_errors is not None and not isinstance(self.label_errors, _Rows):
            self.label_errors = _Rows(count, width, self._threshold, self.label_errors)
        for name in ("last_success_output", "first_failure_output"):  # one per image, None until searched
            if not isinstance(values := getattr(self, name), _Texts):
                setattr(self, name, _Texts(count, values))
        self._link_columns()
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if not self.__dict__.get("_ready"):
            return
        if name in _CURVE_COLUMNS:  # a whole column replaced: made a column, and every row saved again
            object.__setattr__(self, "_ready", False)
            self.__post_init__()
            self.diff_errors.fresh.update(range(len(self.diff_errors)))
        if name in _CURVE_COLUMNS or name in ("failure_threshold", "definition"):
            object.__setattr__(self, "stored_summary", None)

    def _link_columns(self) -> None:
        """One set of changed images for all the curve's columns: a save writes each such image's row whole."""
        for column in (self.label_errors, self.last_success_output, self.first_failure_output):
            if column is not None:
                column.fresh = self.diff_errors.fresh

    def _threshold(self) -> float:
        return self.failure_threshold

    def _release(self, columns: _ShardColumns, drop: bool = True) -> None:
        """Point the columns at ``columns``, which reads them from the shards that now hold every row,
        and (``drop``, or already released) drop them from memory. What the summary needs stays:
        first failures and full-grid rows (see _Kept) and the outputs of the lowest image at each
        first failure, the exemplar among them. A column in memory and not ``drop`` stays as it is.
        Positional views are Python objects held whole: such a curve stays in memory."""
        if self.last_success_view is not None:
            return
        fields = [("diff", self.diff_errors), ("label", self.label_errors), ("last", self.last_success_output),
                  ("first", self.first_failure_output)]
        keep = None
        for field_name, column in fields:
            if column is None:
                continue
            load = functools.partial(columns.take, field_name)
            if not (drop or column.released):
                if not column.loaded:
                    column._load = load
                continue
            if isinstance(column, _Rows):
                column.release(load)
                continue
            if keep is None:  # the lowest image of each first failure
                first = self.diff_errors.first_indices(self.failure_threshold)
                _, lowest = np.unique(first, return_index=True)
                keep = lowest[first[lowest] > -2].tolist()
            column.release(load, keep)

    @classmethod
    def _from_shards(cls, name: str, block: dict, settings: dict, columns: _ShardColumns) -> AugmentationCurve:
        """A curve whose rows stay in the shards until first used; its summary comes from ``block``."""
        grid, count = settings["intensities"], columns.count
        curve = cls(name=name, intensities=grid, failure_threshold=settings["failure_threshold"],
                    definition=block["definition"], diff_errors=[], strategy=settings.get("strategy", "grid"))
        columns_of = {"diff_errors": _Rows(count, len(grid), curve._threshold,
                                           load=functools.partial(columns.take, "diff"))}
        if columns.labels:
            columns_of["label_errors"] = _Rows(count, len(grid), curve._threshold,
                                               load=functools.partial(columns.take, "label"))
        columns_of["last_success_output"] = _Texts(count, load=functools.partial(columns.take, "last"))
        columns_of["first_failure_output"] = _Texts(count, load=functools.partial(columns.take, "first"))
        if columns.views:  # Python objects, read at once
            columns_of["last_success_view"], columns_of["first_failure_view"] = columns.take("views")
        for key, column in columns_of.items():  # assembled, not assigned: nothing changed since the file
            object.__setattr__(curve, key, column)
        curve._link_columns()
        object.__setattr__(curve, "stored_summary", _stored_summary(block.get("summary"), curve))
        object.__setattr__(curve, "perceptual_strength", block.get("perceptual_strength"))
        return curve

    def __repr__(self) -> str:
        summary = self.summarize()
        return (f"AugmentationCurve({self.name!r}, images={summary.searched_images}, "
                f"at_10%={summary.intensity_at_10}, at_50%={summary.intensity_at_50}, "
                f"at_90%={summary.intensity_at_90})")

    def summarize(self) -> CurveSummary:
        if self.stored_summary is not None:
            if not self._any_column_read():
                return self.stored_summary
            self.stored_summary = None
        return _summarize(self)

    def _any_column_read(self) -> bool:
        return any(column.loaded for column in (self.diff_errors, self.label_errors, self.last_success_output,
                                                self.first_failure_output) if column is not None)

    @property
    def group(self) -> str:
        return CATALOGUE[self.name].group

    @property
    def searched(self) -> list[int]:
        return np.flatnonzero(self.diff_errors.searched_mask()).tolist()

    @property
    def searched_count(self) -> int:
        if self.stored_summary is not None and not self._any_column_read():
            return self.stored_summary.searched_images
        return int(self.diff_errors.searched_mask().sum())

    @property
    def full_grid_count(self) -> int:
        """Images measured at every grid intensity (all of them, unless the search was adaptive)."""
        return self.summarize().full_grid_images

    @property
    def adaptive_agreement(self) -> float | None:
        """Share of the full-grid images whose first failure the adaptive probe would find too."""
        return self.summarize().adaptive_agreement

    @property
    def mean_diff_error(self) -> list[float]:
        return list(self.summarize().mean_diff_error)

    @property
    def changed_share(self) -> list[float]:
        return list(self.summarize().changed_share)

    @property
    def label_accuracy(self) -> list[float] | None:
        accuracy = self.summarize().label_accuracy
        return None if accuracy is None else list(accuracy)

    @property
    def first_failure_intensities(self) -> list[float | None]:
        return list(self.summarize().first_failure_intensities)

    def failed_share_curve(self) -> list[float]:
        return list(self.summarize().failed_share)

    def intensity_at_share(self, share: float) -> float | None:
        return self.summarize().intensity_at_share(share)

    @property
    def safe_intensity(self) -> float:
        """The largest intensity by which at most 2 % of images changed (also callable with a share)."""
        return _Intensity(self.summarize().safe_intensity, self)

    @property
    def onset_intensity(self) -> float:
        return self.summarize().onset_intensity

    @property
    def failure_intensity(self) -> float:
        return self.summarize().failure_intensity

    def exemplar(self) -> dict | None:
        return self.summarize().exemplar

    def severity_at(self, intensity: float | None) -> float | None:
        """The augmentation's perceptual strength at ``intensity``, in ImageNet-C severity units
        (None: no strength measured, or ``intensity`` is None, "never").

        >>> curve.severity_at(curve.intensity_at_share(0.5))                   # doctest: +SKIP
        1.8
        """
        if self.perceptual_strength is None or intensity is None:
            return None
        return severity_at_intensity(self.perceptual_strength, self.intensities, intensity)

    def summary(self) -> dict:
        return self.summarize().to_json(self.group)

    def to_json(self, summary: CurveSummary | None = None) -> dict:
        summary = summary or self.summarize()
        return {
            "definition": self.definition,
            "summary": summary.to_json(self.group),
            "first_failure_intensity": list(summary.first_failure_intensities),
            "diff_errors": list(self.diff_errors),
            "label_errors": list(self.label_errors) if self.label_errors is not None else None,
            "last_success_output": list(self.last_success_output),
            "first_failure_output": list(self.first_failure_output),
            **({"last_success_view": self.last_success_view, "first_failure_view": self.first_failure_view}
               if self.last_success_view is not None else {}),
            **({"perceptual_strength": self.perceptual_strength} if self.perceptual_strength is not None else {}),
        }


_CURVE_COLUMNS = frozenset({"diff_errors", "label_errors", "last_success_output", "first_failure_output",
                            "last_success_view", "first_failure_view"})


def _check_strength(strength: list[float] | None, intensities: Sequence[float], name: str, where: str) -> None:
    """A stored perceptual strength is one non-negative, non-decreasing value per intensity."""
    if strength is None:
        return
    if len(strength) != len(intensities) or strength[0] != 0 or any(value < 0 for value in strength) or any(
            b < a for a, b in zip(strength, strength[1:])):
        raise AugmentError(f"{where}: {name}'s perceptual_strength must be {len(intensities)} non-negative, "
                           f"non-decreasing severities from 0 (one per intensity), got {strength[:8]}"
                           + ("..." if len(strength) > 8 else ""))


def _or_two(intensity: float | None) -> float:
    return 2.0 if intensity is None else intensity  # "never" sorts after every intensity


def _empty_curve(name: str, grid: list[float], count: int, with_labels: bool, views: bool,
                 threshold: float = 0.0) -> AugmentationCurve:
    return AugmentationCurve(
        name=name, intensities=grid, failure_threshold=threshold, definition=CATALOGUE[name].definition,
        diff_errors=[None] * count, label_errors=[None] * count if with_labels else None,
        last_success_output=[None] * count, first_failure_output=[None] * count,
        last_success_view=[None] * count if views else None, first_failure_view=[None] * count if views else None)


@dataclass
class ImageRecord:
    """One searched image: its file (or array key), label and the model's original output.

    >>> [(record.file, record.output) for record in analysis.images][:1]    # doctest: +SKIP
    [('runs/digits/train/digit-0003.png', '7')]
    """

    file: str
    label: Any = None
    output: str | None = None
    label_error: float | None = None
    error: str | None = None  # why the search skipped it (unreadable, too large, predict failed)
    output_view: Any = None  # positional outputs: what the report draws
    digest: str | None = None  # of its pixels (absent in files from before compare): pairs images in compare

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_changed", True)  # since the analysis was last saved (see Analysis.save)

    @property
    def changed(self) -> bool:
        return self.__dict__.get("_changed", True)

    def saved(self) -> None:
        object.__setattr__(self, "_changed", False)


@dataclass
class Analysis:
    """The result of a boundary search; what ``analysis.json`` holds.

    >>> analysis = load_analysis("analysis.json")                 # doctest: +SKIP
    >>> analysis.curves["SafeRotate"].intensity_at_share(0.5)     # doctest: +SKIP
    0.25
    """

    fingerprint: str
    settings: dict
    images: list[ImageRecord]
    curves: dict[str, AugmentationCurve]
    # group_by(label) -> str: the classes of by_class(); by default a classification label itself
    group_by: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)
    # where its rows were last saved: {"path", "shards", "since", "columns"} (see save)
    _store: dict | None = field(default=None, init=False, repr=False, compare=False)
    # per file (real path) this object loaded or saved: the shards it listed then (None: an older
    # format); a save over a file that lists others since would drop another search's work
    _seen: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        done = sum(1 for c in self.curves.values() if c.searched_count == len(self.images))
        return (f"Analysis(images={len(self.images)}, augmentations={len(self.curves)}, "
                f"complete={done}/{len(self.curves)}, step={self.settings.get('step_size')})")

    @property
    def intensities(self) -> list[float]:
        return self.settings["intensities"]

    @property
    def complete(self) -> bool:
        """Every image searched for every augmentation, or skipped with a reason."""
        skipped = len(self.skipped)
        return all(c.searched_count + skipped >= len(self.images) for c in self.curves.values())

    @property
    def skipped(self) -> list[dict]:
        """The images the search skipped: {"file", "reason"} (a re-run tries them again)."""
        return [{"file": record.file, "reason": record.error} for record in self.images if record.error]

    def summaries(self) -> dict[str, CurveSummary]:
        """Every augmentation's summary, computed once, most fragile (lowest 50 % intensity) first."""
        summaries = {name: curve.summarize() for name, curve in self.curves.items()}
        return dict(sorted(summaries.items(), key=lambda item: (
            _or_two(item[1].intensity_at_50), _or_two(item[1].intensity_at_10), item[0])))

    def summary_rows(self) -> list[dict]:
        """One row per augmentation, most fragile (lowest 50 % intensity) first."""
        summaries = self.summaries()
        breakdown = self.by_class(summaries)
        return [{"augmentation": name, **summary.to_json(self.curves[name].group),
                 **({"by_class": breakdown[name]} if name in breakdown else {})}
                for name, summary in summaries.items()]

    def classes(self) -> dict[str, list[int]]:
        """Class -> the indices of its images: ``group_by(label)``, or a classification label itself
        (empty without labels, or for positional labels without a group_by)."""
        positional = _LabelFormat.of(self.settings.get("label_format")).positional
        groups: dict[str, list[int]] = {}
        for k, record in enumerate(self.images):
            if record.error or record.label is None or (self.group_by is None and positional):
                continue
            try:
                key = record.label if self.group_by is None else self.group_by(record.label)
            except Exception as exc:
                raise AugmentError(f"group_by failed on {record.file} (label {_truncate(record.label, 80)}): "
                                   f"{type(exc).__name__}: {exc}") from exc
            groups.setdefault(str(key), []).append(k)
        return dict(sorted(groups.items(), key=lambda item: _natural_key(item[0])))

    def by_class(self, summaries: dict[str, CurveSummary] | None = None) -> dict[str, dict[str, dict]]:
        """Per augmentation and class: its images, the 50 % intensity of that class alone, and
        its mean first failure (never changed counted as 1 + step, so it ranks last).

        >>> analysis.by_class()["SafeRotate"]["7"]               # doctest: +SKIP
        {'images': 31, 'intensity_at_50': 0.3, 'mean_first_failure': 0.354}
        """
        groups = self.classes()
        if not groups:
            return {}
        summaries = summaries or self.summaries()
        never = 1.0 + float(self.settings["step_size"])
        members = {key: np.array(indices, dtype=np.int64) for key, indices in groups.items()}
        breakdown = {}
        for name in summaries:
            indices, at = _first_failures(self.curves[name])
            values = np.where(indices == -1, never, at)
            cells = {}
            for key, group in members.items():
                firsts = values[group[indices[group] > -2]]
                if len(firsts):
                    failed = (firsts[:, None] <= np.asarray(self.intensities) + 1e-9).mean(axis=0)
                    at_50 = next((t for t, share in zip(self.intensities, failed) if share >= 0.5 - 1e-9), None)
                    cells[key] = {"images": len(firsts), "intensity_at_50": at_50,
                                  "mean_first_failure": round(float(firsts.mean()), 4)}
            breakdown[name] = cells
        return breakdown

    def _summary_blocks(self) -> tuple[dict[str, CurveSummary], dict[str, dict]]:
        """Per augmentation, its summary and its summary block (with the per-class breakdown)."""
        summaries = {name: curve.summarize() for name, curve in self.curves.items()}
        try:
            breakdown = self.by_class(summaries)
        except AugmentError as exc:  # the results are saved whatever a group_by does
            warnings.warn(f"{exc}; saved without the per-class breakdown", stacklevel=3)
            breakdown = {}
        blocks = {name: summary.to_json(self.curves[name].group) for name, summary in summaries.items()}
        for name, cells in breakdown.items():
            blocks[name]["by_class"] = cells
        return summaries, blocks

    def to_json(self) -> dict:
        """The whole analysis as one JSON document, rows included (the single-file layout of
        format 3, which load_analysis reads too; :meth:`save` writes format 4: rows in shards)."""
        summaries, blocks = self._summary_blocks()
        augmentations = {name: {**curve.to_json(summaries[name]), "summary": blocks[name]}
                         for name, curve in self.curves.items()}
        return {
            "format": _ANALYSIS_FORMAT,
            "version": _SINGLE_FILE_VERSION,
            "tool_version": __version__,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "images": [dataclasses.asdict(record) for record in self.images],
            "augmentations": augmentations,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "analysis") -> Analysis:
        """An analysis from its JSON document; an AugmentError names ``where`` and the field."""
        if not isinstance(data, dict) or data.get("format") != _ANALYSIS_FORMAT:
            raise AugmentError(f"{where} is not an augment.py analysis file")
        if data.get("version") == _ANALYSIS_VERSION:
            raise AugmentError(f"{where} is a format {_ANALYSIS_VERSION} index whose rows are in files beside it: "
                               f"read it with load_analysis(path)")
        if data.get("version") not in _READABLE_VERSIONS:
            raise AugmentError(f"{where} has analysis format version {data.get('version')!r}; this augment.py "
                               f"{__version__} reads versions {_READABLE_VERSIONS}. Re-run the search "
                               f"(the old file is kept as a backup).")
        document = _validated(_formats().AnalysisDocument, data, where)
        settings = {**data["settings"], **document.settings.model_dump(exclude_unset=True)}
        intensities, threshold = document.settings.intensities, document.settings.failure_threshold
        images = [ImageRecord(**record.model_dump()) for record in document.images]
        for name, curve in document.augmentations.items():
            _check_strength(curve.perceptual_strength, intensities, name, where)
        curves = {name: AugmentationCurve(name=name, intensities=intensities, failure_threshold=threshold,
                                          strategy=settings.get("strategy", "grid"), **curve.model_dump())
                  for name, curve in document.augmentations.items()}
        return cls(fingerprint=document.fingerprint, settings=settings, images=images, curves=curves)

    @classmethod
    def resume_or_start(cls, path: str | None, fingerprint: str, settings: _SearchSettings,
                        sources: Sequence[_Source], labels: list | None, step: float,
                        release: bool = False) -> Analysis:
        """The cache policy: resume ``path`` when it matches ``fingerprint``, else start afresh.

        A matching file is reused; augmentations it lacks, or whose catalogue definition
        changed, start empty. A file that does not match, or cannot be read, is kept as a
        ``.bak-<time>`` backup, with a warning saying why. Temporaries a killed job left next
        to ``path`` are removed (the caller holds the file's lock, so no live job owns them).
        """
        grid, views = _grid(step), settings.label_form.positional
        if path is not None:
            _remove_temporaries(os.path.dirname(os.path.abspath(path)), _temporary_prefix(path))
            _remove_temporaries(_rows_folder(os.path.abspath(path)))
        if path is not None and os.path.exists(path):
            try:
                cached = load_analysis(path)
                # every row is read now (released: one augmentation at a time, then freed), so that a
                # damaged rows file is found while the file can still be set aside
                if release and cached._store is not None:
                    cached._release_rows()
                else:
                    cached.load_rows()
                if cached._store is not None and cached._store["path"] == os.path.abspath(path):
                    # a killed checkpoint's shard, never listed (a linked file's rows are not this job's)
                    _remove_shards(_rows_folder(cached._store["path"]), {e["file"] for e in cached._store["shards"]})
                reason = None if cached.fingerprint == fingerprint else (
                    "its images, labels, step size, seed, failure threshold, model_id or label_format differ from "
                    "this search")
                if reason and views and not cached.settings.get("moved_references"):
                    reason = (f"it compared positional outputs where they were, not moved with geometric "
                              f"augmentations (label_format {settings.label_format!r}); searching again")
            except ValueError as exc:
                cached, reason = None, str(exc)
            if reason is None:
                added = [name for name in settings.augmentations if name not in cached.curves
                         or cached.curves[name].definition != CATALOGUE[name].definition]
                for name in added:
                    cached.curves[name] = _empty_curve(name, grid, len(sources), labels is not None, views,
                                                       settings.failure_threshold)
                if release and cached._store is not None:
                    cached._release_rows(names=added)  # their shards hold no row of them
                return cached
            backup = _backup(path)
            warnings.warn(f"not reusing {path}: {reason}. It was kept as {backup}; starting a fresh search.",
                          stacklevel=4)
        images = [ImageRecord(file=source.key, label=_stored_label(label, settings.label_form))
                  for source, label in zip(sources, labels if labels is not None else [None] * len(sources))]
        recorded = {"step_size": step, "intensities": grid, "seed": settings.seed,
                    "failure_threshold": settings.failure_threshold, "strategy": "grid",
                    "labels": labels is not None, "model_id": settings.model_id,
                    "label_format": settings.label_format, "moved_references": views,
                    "rotate_method": settings.rotate_method}
        curves = {name: _empty_curve(name, grid, len(sources), labels is not None, views, settings.failure_threshold)
                  for name in settings.augmentations}
        analysis = cls(fingerprint=fingerprint, settings=recorded, images=images, curves=curves)
        if release:  # its empty columns are never made whole in memory
            analysis._release_rows()
        return analysis

    def missing(self, names: Sequence[str], full_grid: frozenset[int]) -> dict[int, list[str]]:
        """Per image, the augmentations still to search (a full-grid image needs every intensity)."""
        sample = np.array(sorted(full_grid), dtype=np.int64)
        wanted = np.zeros((len(self.images), len(names)), bool)
        for j, name in enumerate(names):
            rows = self.curves[name].diff_errors
            wanted[:, j] = ~rows.searched_mask()
            wanted[sample, j] |= ~rows.complete()[sample]
        shared: dict[bytes, list[str]] = {}  # one list per distinct set: a million images need few
        return {int(k): shared.setdefault(wanted[k].tobytes(), [names[j] for j in np.flatnonzero(wanted[k])])
                for k in np.flatnonzero(wanted.any(axis=1))}

    def load_rows(self) -> None:
        """Read every row now (a loaded file reads an augmentation's rows when first used)."""
        for curve in self.curves.values():
            curve.diff_errors.arrays()
            for column in (curve.label_errors, curve.last_success_output, curve.first_failure_output):
                if column is not None:
                    column.arrays()

    def save(self, path: str | os.PathLike, compact: bool = False) -> None:
        """Write ``path`` (format 4) and its rows: what changed since the last save to ``path`` goes
        to one new shard file beside it (all rows when saving elsewhere, with ``compact``, or when
        another save rewrote ``path`` since), then ``path`` is replaced listing it; each file is
        written atomically (temporary file, fsync, rename). Holds the file's lock: a search using
        ``path`` makes this an error naming it. Assign changed values (``record.label = [1, 2, 3]``)
        rather than changing them in place: an in-place change is not seen as one."""
        path = os.path.abspath(_file_path(path, "the analysis file"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        previous = self.path
        with _lock_for_file(path):
            self._save(path, compact)
            kept = os.path.join(_rows_folder(previous), _KEPT_IMAGES) if previous else ""
            if previous != path and os.path.isfile(kept):  # the copies of searched arrays go along
                with open(kept, "rb") as handle:
                    _write_atomic(os.path.join(_rows_folder(path), _KEPT_IMAGES), handle.read())

    # -- the storage API a search's checkpoints use (they hold the file's lock) --------------

    def checkpoint(self, path: str, compact: bool = False, release: bool = False) -> None:
        """Save by a caller holding the file's lock: appends a shard of what changed, or rewrites
        the rows as one shard with ``compact``; ``release``: and frees the rows from memory."""
        self._save(path, compact, release)

    @property
    def path(self) -> str | None:
        """The file this analysis was loaded from or last saved to (None: never saved)."""
        return self._store["path"] if self._store is not None and self._store["path"] else None

    def shard_count(self) -> int:
        """How many shard files the file this analysis was last saved to or loaded from lists."""
        return len(self._store["shards"]) if self._store is not None else 0

    def rows_waiting(self) -> int:
        """Rows set since the last save in released columns (kept in memory until the next save)."""
        return sum(curve.diff_errors.waiting() for curve in self.curves.values())

    def _save(self, path: str, compact: bool = False, release: bool = False) -> None:
        """save, by a caller holding the file's lock (a search's checkpoints; ``release``: and free
        the rows from memory, see _release_rows)."""
        path = os.path.abspath(path)
        folder = _rows_folder(path)
        _check_rows_folder(folder, f"analysis file {path}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        store = self._store
        on_disk, real = _listed_shards(path), os.path.realpath(path)
        if on_disk is not None and real in self._seen and on_disk != self._seen[real]:
            raise AugmentError(_changed_on_disk(self, path, on_disk, self._seen[real]))
        append = (not compact and store is not None and store["path"] == path and len(store["shards"]) < _MAX_SHARDS
                  and on_disk == store["shards"])
        name = f"rows-{_next_shard_number(folder):06d}.npz"
        if append:  # what changed, and every row of a curve these shards do not hold (added or replaced)
            images = np.array([k for k, record in enumerate(self.images) if record.changed], dtype=np.int64)
            rows, since = {}, dict(store["since"])
            for key, curve in self.curves.items():
                if store["columns"].get(key) is curve.diff_errors and store["definitions"].get(key) == curve.definition:
                    if curve.diff_errors.fresh:
                        rows[key] = np.array(sorted(curve.diff_errors.fresh), dtype=np.int64)
                else:
                    rows[key], since[key] = np.flatnonzero(curve.diff_errors.searched_mask()), name
            shards = list(store["shards"])
        else:
            images = np.arange(len(self.images), dtype=np.int64)
            rows = {key: np.flatnonzero(curve.diff_errors.searched_mask()) for key, curve in self.curves.items()}
            since, shards = dict.fromkeys(self.curves, name), []
        if len(images) or rows or not shards:
            os.makedirs(folder, exist_ok=True)
            uid: list[str] = []
            written = _write_atomic(os.path.join(folder, name), lambda handle: uid.append(
                _write_shard(handle, self, images, rows, every=not append)))
            shards.append({"file": name, "bytes": os.path.getsize(written), "images": len(images), "uid": uid[0]})
        listed = {entry["file"] for entry in shards}
        since = {key: since.get(key) if since.get(key) in listed else shards[0]["file"] for key in self.curves}
        _, blocks = self._summary_blocks()
        index = {
            "format": _ANALYSIS_FORMAT, "version": _ANALYSIS_VERSION, "tool_version": __version__,
            "fingerprint": self.fingerprint, "settings": self.settings, "images": len(self.images),
            "augmentations": {key: {"definition": curve.definition, "rows_since": since[key], "summary": blocks[key],
                                    **({"perceptual_strength": curve.perceptual_strength}
                                       if curve.perceptual_strength is not None else {})}
                              for key, curve in self.curves.items()},
            "rows": {"folder": os.path.basename(folder), "shards": shards},
        }
        _write_atomic(path, json.dumps(index, separators=(",", ":")))
        if not append:  # the shards the file listed before (only ours: rows-NNNNNN.npz) are replaced
            _remove_shards(folder, keep=listed)
        for k in images.tolist():
            self.images[k].saved()
        for curve in self.curves.values():
            curve.diff_errors.fresh.clear()
        self._seen[os.path.realpath(path)] = shards  # the file written (a link to a file is replaced by one)
        self._store = {"path": path, "shards": shards, "since": since,
                       "columns": {key: curve.diff_errors for key, curve in self.curves.items()},
                       "definitions": {key: curve.definition for key, curve in self.curves.items()}}
        self._release_rows(drop=release)  # columns read from the shards read these ones now

    def _release_rows(self, drop: bool = True, names: Iterable[str] | None = None) -> None:
        """Point every curve's columns (or those of ``names``) at the shards the last save listed and
        (``drop``) free its rows from memory: a search releases them at each checkpoint, so that its
        memory does not grow with its rows (see AugmentationCurve._release)."""
        store = self._store or {"path": "", "shards": [], "since": {}}  # not saved yet: empty (resume_or_start)
        listed = [(os.path.join(_rows_folder(store["path"]), entry["file"]), entry["uid"]) for entry in store["shards"]]
        files = [entry["file"] for entry in store["shards"]]
        for key in self.curves if names is None else names:
            curve, since = self.curves[key], store["since"].get(key)
            columns = _ShardColumns(listed[files.index(since) if since in files else 0:], key, curve.definition,
                                    len(self.images), len(self.intensities), curve.label_errors is not None, False)
            curve._release(columns, drop)

    @classmethod
    def _from_index(cls, data: dict, path: str) -> Analysis:
        """A format 4 file: settings and summaries now; each augmentation's rows from the shards on first use."""
        where = f"analysis file {path}"
        document = _validated(_formats().AnalysisIndex, data, where)
        settings = {**data["settings"], **document.settings.model_dump(exclude_unset=True)}
        count, width = document.images, len(document.settings.intensities)
        real = os.path.realpath(path)  # a link to an analysis file: its rows are beside the file
        folder = _rows_folder(real)
        listed = [entry.model_dump() for entry in document.rows.shards]
        recorded = os.path.join(os.path.dirname(real), document.rows.folder)
        if (listed and not os.path.isdir(folder) and os.path.basename(folder) != document.rows.folder
                and os.path.isdir(recorded)):
            # renamed (analysis.json -> baseline.json) without its rows folder: say how to bring it along
            raise AugmentError(
                f"{where} keeps its rows in a folder named {document.rows.folder} (the name it was saved with), "
                f"but an analysis file's rows go in <its name>.rows, here {os.path.basename(folder)}, which is "
                f"missing. Move them along: mv {shlex.quote(recorded)} {shlex.quote(folder)} (or cp -r if the file "
                f"it was saved as still uses them)")
        paths = []
        for entry in listed:
            shard = os.path.join(folder, entry["file"])
            size = os.path.getsize(shard) if os.path.isfile(shard) else None
            if size != entry["bytes"]:
                raise AugmentError(f"{where} lists rows file {shard}, which is " + (
                    "missing" if size is None else f"{size} bytes, not {entry['bytes']}") + " (an analysis file and "
                    f"its rows folder {os.path.basename(folder)} are moved and copied together)")
            paths.append((shard, entry["uid"]))
        records: list[ImageRecord | None] = [None] * count
        image_model = _formats().ImageEntry
        for shard_path, uid in paths:
            shard, _ = _open_shard(shard_path, count, width, uid)
            with shard:
                try:
                    indices, text = shard["images"], shard["records"].tobytes().decode("utf-8")
                    lines = text.split("\n") if text else []
                    if len(lines) != len(indices):
                        raise ValueError(f"{len(lines)} records for {len(indices)} images")
                    for k, line in zip(indices.tolist(), lines):
                        records[k] = ImageRecord(**_validated(image_model, json.loads(line),
                                                              f"rows file {shard_path}, image {k}").model_dump())
                except _SHARD_DAMAGE as exc:
                    raise AugmentError(f"rows file {shard_path}: {exc}") from None
        if (lost := [k for k, record in enumerate(records) if record is None]):
            raise AugmentError(f"{where}: its rows folder {folder} has no record of image {lost[0]} "
                               f"({len(lost)} images missing)")
        for record in records:
            record.saved()
        views = _LabelFormat.of(settings.get("label_format")).positional
        files = [entry["file"] for entry in listed]
        curves, since = {}, {}
        for key, entry in document.augmentations.items():
            _check_augmentation_name(key, "augmentation in the analysis")
            since[key] = entry.rows_since if entry.rows_since in files else files[0] if files else None
            first = files.index(since[key]) if since[key] is not None else 0
            columns = _ShardColumns(paths[first:], key, entry.definition, count, width, bool(settings.get("labels")),
                                    views)
            _check_strength(entry.perceptual_strength, settings["intensities"], key, real)
            curves[key] = AugmentationCurve._from_shards(key, data["augmentations"][key], settings, columns)
        analysis = cls(fingerprint=document.fingerprint, settings=settings, images=records, curves=curves)
        analysis._seen[real] = data["rows"]["shards"]  # as the file has them (what a save compares)
        analysis._store = {"path": real, "shards": listed, "since": since,
                           "columns": {key: curve.diff_errors for key, curve in curves.items()},
                           "definitions": {key: curve.definition for key, curve in curves.items()}}
        return analysis


def _changed_on_disk(analysis: Analysis, path: str, on_disk: list[dict], known: list[dict] | None) -> str:
    """Why saving ``analysis`` over ``path`` would drop work: what another search wrote there since."""
    try:
        with open(path, encoding="utf-8") as handle:
            theirs = json.load(handle).get("augmentations", {})
    except (OSError, ValueError, AttributeError):
        theirs = {}
    added = sorted(set(theirs) - set(analysis.curves))
    if added:
        what = f"it added {', '.join(added)}"
    elif known is None:
        what = "it wrote the file in the current format"
    else:
        what = (f"it lists {len(on_disk)} rows files where this analysis knew {len(known)}" if len(on_disk) !=
                len(known) else "its rows files were rewritten")
    return (f"analysis file {path} changed on disk since this analysis read or wrote it (another search wrote "
            f"it: {what}): saving would drop that work. Load it again (load_analysis) and redo your change, or "
            f"save to another file")


def _listed_shards(path: str) -> list[dict] | None:
    """The shards the analysis file at ``path`` lists now (None: none, or not a format 4 file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)["rows"]["shards"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _next_shard_number(folder: str) -> int:
    try:
        taken = [int(m.group(1)) for entry in os.listdir(folder) if (m := _SHARD_NAME.fullmatch(entry))]
    except FileNotFoundError:
        taken = []
    return max(taken, default=0) + 1


def _remove_shards(folder: str, keep: set[str]) -> None:
    """Shard files in ``folder`` that no analysis file lists (a killed checkpoint's, or replaced ones)."""
    if os.path.islink(folder):
        return  # never deletes through a link (see _check_rows_folder)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder):
            if _SHARD_NAME.fullmatch(entry) and entry not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, entry))


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def load_analysis(path: str | os.PathLike = "analysis.json") -> Analysis:
    """Read an analysis file; a missing, truncated or foreign file is an AugmentError naming it.

    >>> load_analysis("runs/digits/analysis.json").curves["Brighten"].failure_intensity  # doctest: +SKIP
    0.25
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise AugmentError(f"{path} is a folder, not an analysis file (such as {os.path.join(path, 'analysis.json')})")
    if not os.path.exists(path):
        raise AugmentError(f"no analysis file at {path}: run the search first "
                           f"(search_randomization_boundaries or `python augment.py search`)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a 5,000-digit number, nested too deep
        with open(path, "rb") as handle:
            if handle.read(8).startswith(_IMAGE_MAGIC):
                raise AugmentError(f"{path} is an image, not an analysis file (an analysis is the .json file a "
                                   f"search writes, such as analysis.json)") from None
        raise AugmentError(f"analysis file {path} is truncated or corrupt ({_json_failure(exc)}); a search with it "
                           f"as its cache keeps it as a .bak file and starts afresh") from None
    if isinstance(data, dict) and data.get("format") == _ANALYSIS_FORMAT and data.get("version") == 4:
        return Analysis._from_index(data, path)
    analysis = Analysis.from_json(data, where=f"analysis file {path}")
    analysis._seen[os.path.realpath(path)] = None  # an older format: a save over a format 4 file since refuses
    return analysis


def _backup(path: str) -> str:
    """Move ``path`` (and its rows folder) aside as ``path.bak-<time>`` (and its rows folder)."""
    backup = f"{path}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
    counter = 1
    while os.path.exists(backup) or os.path.exists(_rows_folder(backup)):
        backup = f"{path}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{counter}"
        counter += 1
    if os.path.isdir(_rows_folder(path)):
        os.replace(_rows_folder(path), _rows_folder(backup))
    os.replace(path, backup)
    return backup


###############################################################################
# src/augment/search.py
# The search: one request checked before any prediction, the run that walks images in shards and
# checkpoints them into the analysis, and merging a shard's results.
###############################################################################

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


###############################################################################
# src/augment/gradcam.py
# Grad-CAM over one augmentation sweep (gradcam_frames, write_gradcam_gif) and captioned pictures.
###############################################################################

_CAM_METHODS = {
    "gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "gradcamplusplus": "GradCAMPlusPlus",
    "eigencam": "EigenCAM", "scorecam": "ScoreCAM", "layercam": "LayerCAM", "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM", "ablationcam": "AblationCAM", "eigengradcam": "EigenGradCAM",
}


def _cam_class(method: str):
    import pytorch_grad_cam

    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in _CAM_METHODS:
        raise AugmentError(f"unknown cam_method {method!r}; choose one of {sorted(set(_CAM_METHODS.values()))}")
    return getattr(pytorch_grad_cam, _CAM_METHODS[key])


def _default_preprocess(images: Sequence[np.ndarray]):
    """(H, W, 3) uint8 images to a float (N, 3, H, W) tensor in [0, 1]."""
    import torch

    batch = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


@dataclass
class CamFrame:
    """One step of an augmentation sweep seen through the model.

    ``image`` is the augmented (H, W, 3) uint8 image, ``heatmap`` the (H, W) float
    localization map in [0, 1] (None without a torch model), ``overlay`` the heatmap
    blended on the image, ``predicted`` the model's top class and ``confidence`` its
    softmax probability.

    >>> [(f.intensity, f.predicted) for f in gradcam_frames(image, "Hue", cnn, [cnn.features[6]])][:2]  # doctest: +SKIP
    [(0.0, 7), (0.05, 7)]
    """

    intensity: float
    image: np.ndarray = field(repr=False)
    heatmap: np.ndarray | None = field(default=None, repr=False)
    overlay: np.ndarray | None = field(default=None, repr=False)
    predicted: int | None = None
    confidence: float | None = None


def gradcam_frames(
    image: np.ndarray | str,
    augmentation: str,
    model: Any,
    target_layers: Sequence[Any],
    *,
    intensities: Sequence[float] | None = None,
    method: str = "GradCAM",
    preprocess: Callable | None = None,
    seed: int = 0,
) -> list[CamFrame]:
    """Grad-CAM (or another grad-cam method) at every step of one augmentation sweep.

    All frames go through the model in one batch. ``preprocess(list of (H, W, 3) uint8)
    -> (N, C, H, W) tensor`` defaults to scaling to [0, 1]. The target class of each
    frame is the model's own top class on that frame.

    >>> frames = gradcam_frames("digit.png", "SafeRotate", cnn, [cnn.features[6]])  # doctest: +SKIP
    >>> [round(f.confidence, 2) for f in frames][:3]                                 # doctest: +SKIP
    [0.99, 0.98, 0.95]
    """
    import torch
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _check_augmentation_name(augmentation)
    source = load_image(image)
    grid = list(intensities) if intensities is not None else _grid(0.05)
    augmented = [augment_image(source, augmentation, t, seed) for t in grid]
    preprocess = preprocess or _default_preprocess
    batch = preprocess(augmented)
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(batch), dim=1).cpu().numpy()
    predicted = probabilities.argmax(axis=1)
    with _cam_class(method)(model=model, target_layers=list(target_layers)) as cam:
        heatmaps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(int(k)) for k in predicted])
    frames = []
    for t, img, heat, k in zip(grid, augmented, heatmaps, predicted):
        overlay = show_cam_on_image(img.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=0.6)
        frames.append(CamFrame(t, img, heat, overlay, int(k), float(probabilities[len(frames), k])))
    return frames


def write_gradcam_gif(path: str | os.PathLike, image: np.ndarray | str, augmentation: str, model: Any,
                      target_layers: Sequence[Any], *, duration: float = 0.15, **options: Any) -> str:
    """Write the Grad-CAM sweep of one image and augmentation as a captioned GIF (imageio).

    >>> write_gradcam_gif("rotate.gif", "digit.png", "SafeRotate", cnn, [cnn.features[6]])  # doctest: +SKIP
    'rotate.gif'
    """
    frames = gradcam_frames(image, augmentation, model, target_layers, **options)
    pictures = [_captioned(f.overlay, f"{augmentation} {f.intensity:.2f}: {f.predicted} ({f.confidence:.2f})")
                for f in frames]
    return _write_gif(path, pictures, duration)


def _write_gif(path: str | os.PathLike, pictures: Sequence[np.ndarray], duration: float,
               durable: bool = True) -> str:
    import imageio.v3 as iio

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    encoded = iio.imwrite("<bytes>", np.stack(pictures), extension=".gif", duration=int(duration * 1000), loop=0)
    return _write_atomic(path, encoded, durable=durable)


def _display_size(image: np.ndarray, short_side: int = 144, long_cap: int = 288) -> np.ndarray:
    """Scale for the page: small images up (nearest, pixels stay crisp), large ones down."""
    import cv2

    height, width = image.shape[:2]
    scale = max(short_side / min(height, width), 1.0) if min(height, width) < short_side else 1.0
    scale = min(scale, long_cap / max(height, width)) if max(height, width) * scale > long_cap else scale
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)


def _captioned(image: np.ndarray, caption: str) -> np.ndarray:
    """The image (scaled for display) over a white strip with an ASCII caption."""
    import cv2

    picture = _display_size(image)
    strip = np.full((22, picture.shape[1], 3), 255, np.uint8)
    text = caption.encode("ascii", "replace").decode()
    scale = 0.4
    while cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > picture.shape[1] - 4 and len(text) > 4:
        text = text[:-2]
    cv2.putText(strip, text, (2, 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([picture, strip])


###############################################################################
# src/augment/report.py
# The report: the offline HTML page of an analysis (curves, thresholds, failure examples, sliders).
# Add a report section here.
###############################################################################

def _save_png(path: str, image: np.ndarray) -> None:
    # Frames are replaceable: whole or absent after a crash (atomic), not fsynced one by one.
    _write_atomic(path, _png_bytes(image, compress_level=3), durable=False)


def _svg_plot(intensities: Sequence[float], series: Sequence[tuple[str, str, Sequence[float]]],
              marks: Sequence[tuple[str, float | None]] = (), width: int = 360, height: int = 200,
              compact: bool = False, legend_below: bool = False) -> str:
    """A line plot as inline SVG: x = intensity in [0, 1], y = share or error in [0, 1].

    ``compact`` draws only the box, the lines and the marks (for the summary table);
    ``legend_below`` puts the legend under the plot (many series), making the SVG taller.
    """
    from markupsafe import escape

    left, right, top, bottom = (2, 2, 2, 2) if compact else (42, 10, 10, 34)
    below = 13 * len(series) + 4 if legend_below and not compact else 0
    height += below
    plot_w, plot_h = width - left - right, height - top - bottom - below

    def x(value: float) -> float:
        return left + value * plot_w

    def y(value: float) -> float:
        return top + (1 - value) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="plot">']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{x(0)}" x2="{x(1)}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        if compact:
            continue
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:g}</text>')
        parts.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 13}" text-anchor="middle" '
                     f'font-size="10">{tick:g}</text>')
    if not compact:
        parts.append(f'<text x="{left + plot_w / 2}" y="{height - below - 3}" text-anchor="middle" font-size="11">'
                     f'augmentation intensity</text>')
        parts.append(f'<text x="10" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
                     f'transform="rotate(-90 10 {top + plot_h / 2})">share of images</text>')
    for label, value in marks:
        if value is not None:
            parts.append(f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="{top}" y2="{top + plot_h}" '
                         f'stroke="#999" stroke-dasharray="3,3"><title>{label}: {value:g}</title></line>')
    for index, (label, color, values, *style) in enumerate(series):
        # style: (dash, own intensities), for curves of searches on other grids (compare)
        if not values:
            continue
        dash = f' stroke-dasharray="{style[0]}"' if style and style[0] else ""
        xs = style[1] if len(style) > 1 else intensities
        label = escape(str(label))  # model names in compare are the user's text
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(xs, values))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{points}">'
                     f'<title>{label}</title></polyline>')
        if not compact:
            row = top + 4 + 13 * index + (plot_h + bottom if below else 0)
            parts.append(f'<rect x="{left + 6}" y="{row}" width="10" height="3" fill="{color}"/>'
                         f'<text x="{left + 20}" y="{row + 5}" font-size="10">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _severity_ranking(analysis: Analysis, summaries: dict[str, CurveSummary]) -> list[dict]:
    """Per augmentation with a perceptual strength: the severity at which half the images changed
    output ("breaks"), or, where they never did, the severity at intensity 1 it survives; most
    fragile first, then the survivors, the strongest survived first."""
    entries = []
    for name, summary in summaries.items():
        curve = analysis.curves[name]
        if curve.perceptual_strength is None:
            continue
        breaks = curve.severity_at(summary.intensity_at_50)
        entries.append({"name": name, "breaks": breaks, "survives": curve.perceptual_strength[-1]})
    return sorted(entries, key=lambda e: (e["breaks"] is None, e["breaks"] if e["breaks"] is not None
                                          else -e["survives"], e["name"]))


def _format_severity(curve: AugmentationCurve, intensity: float | None) -> str | None:
    """An intensity of the summary in severity units ("beyond X" for never: X at intensity 1)."""
    if curve.perceptual_strength is None:
        return None
    if intensity is None:
        return f"> {curve.perceptual_strength[-1]:.1f}"
    return f"{curve.severity_at(intensity):.1f}"


def _severity_example(entries: Sequence[dict]) -> str | None:
    """One sentence that reads the chart: the most fragile augmentation and the strongest survivor."""
    broken = [e for e in entries if e["breaks"] is not None]
    survived = [e for e in entries if e["breaks"] is None]
    parts = []
    if broken:
        parts.append(f"the model breaks at severity {broken[0]['breaks']:.1f} under {broken[0]['name']}")
    if survived:
        strongest = max(survived, key=lambda e: e["survives"])
        parts.append(f"survives severity {strongest['survives']:.1f} under {strongest['name']}")
    return ("Here: " + " and ".join(parts) + ".") if parts else None


def _severity_chart(entries: Sequence[dict], width: int = 640, row_height: int = 18) -> str:
    """A horizontal bar per augmentation on one axis of ImageNet-C severity units: filled to where
    the model breaks, outlined to what it survives where it never breaks."""
    left, right, top = 150, 110, 22
    axis = max([5.0] + [e["survives"] if e["breaks"] is None else e["breaks"] for e in entries])
    plot_w, height = width - left - right, top + row_height * len(entries) + 24

    def x(value: float) -> float:
        return left + min(value, axis) / axis * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="plot" id="severity-chart">']
    every = max(1, math.ceil(axis / 12))  # at most about a dozen ticks, however strong the strongest
    for tick in range(0, int(axis) + 1, every):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 20}" stroke="#ddd"/>'
                     f'<text x="{x(tick):.1f}" y="{top - 8}" text-anchor="middle" font-size="10">{tick}</text>')
    for k, entry in enumerate(entries):
        y = top + k * row_height
        mark = " \u2020" if CATALOGUE[entry["name"]].geometric else ""  # a pixel distance reads geometry high
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" font-size="11">{entry["name"]}{mark}</text>')
        if entry["breaks"] is not None:
            parts.append(f'<rect class="breaks" x="{left}" y="{y + 3}" width="{x(entry["breaks"]) - left:.1f}" '
                         f'height="{row_height - 6}" fill="#d62728"><title>{entry["name"]}: half the outputs changed '
                         f'at severity {entry["breaks"]:.1f}</title></rect>'
                         f'<text x="{x(entry["breaks"]) + 4:.1f}" y="{y + 12}" font-size="10">breaks at '
                         f'{entry["breaks"]:.1f}</text>')
        else:
            parts.append(f'<rect class="survives" x="{left}" y="{y + 3}" width="{x(entry["survives"]) - left:.1f}" '
                         f'height="{row_height - 6}" fill="none" stroke="#2ca02c" stroke-width="1.5"><title>'
                         f'{entry["name"]}: fewer than half the outputs changed up to intensity 1, severity '
                         f'{entry["survives"]:.1f}</title></rect><text x="{x(entry["survives"]) + 4:.1f}" '
                         f'y="{y + 12}" font-size="10">survives {entry["survives"]:.1f}</text>')
    if axis > 5:  # beyond ImageNet-C's strongest severity the scale is extrapolated: shaded
        parts.append(f'<rect x="{x(5):.1f}" y="{top - 4}" width="{x(axis) - x(5):.1f}" height="{height - top - 16}" '
                     f'fill="#000" fill-opacity="0.04"><title>beyond severity 5: extrapolated</title></rect>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" font-size="11">'
                 f'ImageNet-C severity units (perceptual strength; shaded: beyond 5, extrapolated)</text></svg>')
    return "".join(parts)


_REPORT_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>augment.py report: where the model breaks</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 16px; color: #222; }
h1 { margin-bottom: 4px; } .meta { color: #666; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; } .never { color: #999; }
section.aug { border-top: 2px solid #ddd; margin-top: 28px; padding-top: 8px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 300px; overflow-wrap: anywhere; }
.missing { width: 144px; height: 144px; display: flex; align-items: center; justify-content: center;
  background: repeating-linear-gradient(45deg, #fee, #fee 8px, #fdd 8px, #fdd 16px); color: #a00;
  font-size: 12px; text-align: center; overflow-wrap: anywhere; padding: 4px; box-sizing: border-box; }
.slider input { width: 288px; } .gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 400px)); gap: 14px; }
img.pixel { image-rendering: pixelated; } small.ci { color: #777; } .wide { overflow-x: auto; }
table.classes td { text-align: center; } td.weakest { font-weight: bold; outline: 2px solid #b00; outline-offset: -2px; }
</style></head><body>
<h1>Where the model breaks</h1>
<p class="meta">{{ image_count }} images, intensity step {{ step }}, {{ augmentation_count }} augmentations,
failure threshold {{ threshold }} (diff error at or above it counts as a changed output), seed {{ seed }}{% if model_id %},
model {{ model_id }}{% endif %}.
{% if cam_method %}Heatmaps: {{ cam_method }}.{% endif %} Made by augment.py {{ version }}.</p>
{% if label_format %}<p class="meta">Outputs are {{ label_format }} {{ "masks" if label_format == "mask" else "" }}: drawn in
<b style="color:#eb2828">red</b> (what the model said) over the reference it is compared with in
<b style="color:#28d246">green</b>. Geometric augmentations (SafeRotate, RandomSizedCrop, ElasticTransform) move the
reference with the pixels, so an output that follows the object counts as unchanged.</p>{% endif %}
{% if grid_sample is not none %}<p class="meta">{% if strategy == "guided" %}Guided search: first failures found by
bisection weighted by where the images searched before failed{% else %}Adaptive search: first failures found by a
coarse walk and bisection{% endif %};
the changed-share, diff-error and accuracy curves come from the {{ grid_sample }} images measured on the whole grid,
"failed by" from every image.</p>{% endif %}

<h2 id="summary">Summary, most fragile first</h2>
<p>Intensity by which a share of the images changed the model's output (first-failure intensity);
"safe" is the largest intensity by which at most 2 % changed; "&gt;1" means never within the range.
Below each figure, its 95 % confidence interval: a percentile bootstrap over the images (2,000 resamples,
seeded), so a threshold measured on few images shows how little it pins down.{% if severity_chart %} Under it, the
same intensity in <a href="#severity">severity units</a>.{% endif %}</p>
<table><thead><tr><th>augmentation</th><th>group</th><th>safe</th><th>10 %</th><th>50 %</th><th>90 %</th>
<th>changed share and diff error vs intensity</th></tr></thead><tbody>
{% for row in rows %}<tr><td><a href="#aug-{{ row.name }}">{{ row.name }}</a></td><td>{{ row.group }}</td>
{% for key in ("safe", "q10", "q50", "q90") %}<td>{{ row[key] }}<br><small class="ci">{{ row[key + "_ci"] }}</small>{% if row[key + "_severity"] is not none %}<br><small class="severity">severity {{ row[key + "_severity"] }}</small>{% endif %}</td>{% endfor %}
<td>{{ row.small_plot }}</td></tr>
{% endfor %}</tbody></table>
{% if severity_chart %}
<h2 id="severity">Where the model breaks, on one perceptual scale</h2>
<p>An intensity means something else for every augmentation; a <b>severity</b> does not: it is how different the
augmented images look from the originals (1 - SSIM of their luminance plus their CIEDE2000 colour difference / 100,
measured on {{ strength_images }} of the searched images), in the units of ImageNet-C's corruptions: 3.0 looks as
strong as an average ImageNet-C corruption at severity 3 ({{ calibration }}); beyond 5, ImageNet-C's strongest,
the scale goes on linearly (extrapolated). Red: the severity at which half the outputs changed; outlined:
augmentations that changed fewer than half up to intensity 1, and the severity they survive. &dagger;: geometric
augmentations, which a distance comparing pixels in place reads high (a small rotation moves every pixel); the
perceptual ceiling and compare leave them out. {% if severity_example %}{{ severity_example }}{% endif %}</p>
{{ severity_chart }}
{% endif %}
{% if classes %}
<h2 id="by-class">By class: the intensity by which half of a class's images changed output</h2>
<p>Per augmentation (rows) and class (columns, {{ class_source }}): the 50 % intensity of that class's images
alone (its image count in the header). Redder cells break earlier; <b>&#9660;</b> marks the weakest class of each
augmentation (lowest 50 % intensity, then lowest mean first failure).</p>
<div class="wide"><table class="classes"><thead><tr><th>augmentation</th>{% for name, count in classes %}<th>{{ name }}<br><small>{{ count }}</small></th>{% endfor %}</tr></thead><tbody>
{% for row in class_rows %}<tr><td><a href="#aug-{{ row.name }}">{{ row.name }}</a></td>
{% for cell in row.cells %}<td style="background: {{ cell.colour }}"{% if cell.weakest %} class="weakest"{% endif %}>{% if cell.weakest %}&#9660; {% endif %}{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endif %}

{% for row in rows %}<section class="aug" id="aug-{{ row.name }}">
<h2>{{ row.name }} <small>({{ row.transform }}; intensity 1 = {{ row.at_full }})</small></h2>
<div class="row">
<figure>{{ row.plot }}<figcaption>Solid: share of images whose output changed at that intensity;
mean diff error; {% if row.has_labels %}accuracy against the labels;{% endif %} "failed by": share of images
whose first failure is at or below it; dashed: 10/50/90 % marks.{% if row.agreement is not none %} Adaptive
probe agreed with the full grid on {{ row.agreement }} of the sampled images.{% endif %}</figcaption></figure>
{% for picture in row.triptych %}<figure>{% if picture.src %}<img class="pixel" src="{{ picture.src }}" alt="{{ picture.title }}">{% else %}<div class="missing">image missing: {{ picture.missing }}</div>{% endif %}
<figcaption><b>{{ picture.title }}</b><br>{{ picture.caption }}</figcaption></figure>
{% endfor %}
{% if row.gif %}<figure><img src="{{ row.gif }}" alt="{{ row.name }} sweep"><figcaption>Sweep from 0 to 1{% if cam_method %} with {{ cam_method }}{% endif %}</figcaption></figure>{% endif %}
{% if row.frames %}<figure class="slider"><img class="frame" id="frame-{{ row.name }}" src="{{ row.frames[0].src }}" alt="{{ row.name }} frame"><br>
<input type="range" min="0" max="{{ row.frames|length - 1 }}" value="0" data-aug="{{ row.name }}" aria-label="{{ row.name }} intensity">
<figcaption id="caption-{{ row.name }}">{{ row.frames[0].caption }}</figcaption></figure>{% endif %}
</div></section>
{% endfor %}

<section id="gallery"><h2>Failure gallery: the images that change output at the lowest intensities</h2>
<div class="gallery">{% for item in gallery %}<figure>
{% if item.original %}<img class="pixel" src="{{ item.original }}" alt="original">{% else %}<div class="missing">image missing: {{ item.missing }}</div>{% endif %}
{% if item.augmented %}<img class="pixel" src="{{ item.augmented }}" alt="augmented">{% endif %}
<figcaption><b>{{ item.file }}</b>{% if item.label is not none %} (label {{ item.label }}){% endif %}<br>
original output: {{ item.output }}<br>{{ item.augmentation }} at {{ item.intensity }}: {{ item.failure_output }}</figcaption>
</figure>{% else %}<p>No image changed its output under any augmentation.</p>{% endfor %}</div></section>
{% if skipped %}
<section id="skipped"><h2>Skipped images ({{ skipped|length }})</h2>
<p>The search could not use these; they are not in any figure above. A re-run tries them again.</p>
<table><thead><tr><th>file</th><th>reason</th></tr></thead><tbody>
{% for item in skipped %}<tr><td>{{ item.file }}</td><td>{{ item.reason }}</td></tr>
{% endfor %}</tbody></table></section>{% endif %}

<script>
const FRAMES = {{ frames_json|tojson }};
for (const input of document.querySelectorAll("input[type=range][data-aug]")) {
  input.addEventListener("input", () => {
    const name = input.dataset.aug, frame = FRAMES[name][Number(input.value)];
    document.getElementById("frame-" + name).src = frame.src;
    document.getElementById("caption-" + name).textContent = frame.caption;
  });
}
</script>
</body></html>
"""  # noqa: E501


_OUTPUT_COLOUR = (235, 40, 40)  # red: what the model said
_REFERENCE_COLOUR = (40, 210, 70)  # green: the reference it is compared with (moved with the pixels)


def _box_corners(row: Sequence[float], label_format: str, height: int, width: int) -> tuple[float, ...]:
    """A box of any label_format as (x_min, y_min, x_max, y_max) in pixels."""
    a, b, c, d = (float(v) for v in row[:4])
    if label_format == "coco":
        return a, b, a + c, b + d
    if label_format == "yolo":
        return (a - c / 2) * width, (b - d / 2) * height, (a + c / 2) * width, (b + d / 2) * height
    if label_format == "albumentations":
        return a * width, b * height, c * width, d * height
    return a, b, c, d


def _draw_view(picture: np.ndarray, view: Any, kind: str, label_format: str | None, shape: tuple[int, ...],
               colour: tuple[int, int, int], thin: bool = False) -> np.ndarray:
    """Draw a positional output's view (see _output_view) on ``picture``, a display-size copy of an
    image of ``shape``: boxes as rectangles, points as dots, a mask as a translucent overlay."""
    import cv2

    if view is None or kind == "class":
        return picture
    out = picture.copy()
    scale_y, scale_x = out.shape[0] / shape[0], out.shape[1] / shape[1]
    weight = 1 if thin else 2
    if kind == "mask":  # a translucent fill and its outline; thin: the outline alone
        mask = cv2.resize(_view_mask(view).astype(np.uint8), (out.shape[1], out.shape[0]),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
        if not thin:
            tint = np.zeros_like(out)
            tint[:] = colour
            blended = cv2.addWeighted(out, 0.55, tint, 0.45, 0)
            out[mask] = blended[mask]
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return cv2.drawContours(out, contours, -1, colour, weight)
    for row in view:
        if kind == "bbox":
            x0, y0, x1, y1 = _box_corners(row, label_format, shape[0], shape[1])
            cv2.rectangle(out, (round(x0 * scale_x), round(y0 * scale_y)), (round(x1 * scale_x) - 1,
                          round(y1 * scale_y) - 1), colour, weight)
        else:
            cv2.circle(out, (round(row[0] * scale_x), round(row[1] * scale_y)), 2 + weight, colour, -1 if not thin
                       else 1)
    return out


def _view_value(view: Any, kind: str) -> Any:
    """A stored view as a value that can move with the pixels (a mask view at full size)."""
    if view is None:
        return None
    return _view_mask(view) if kind == "mask" else [row[:4 if kind == "bbox" else 2] for row in view]


def _class_colour(value: float | None, low: float = 0.0, high: float = 1.0) -> str:
    """Red (breaks early) to green (holds); grey when there is no figure."""
    if value is None:
        return "#eee"
    share = min(1.0, max(0.0, (value - low) / (high - low))) if high > low else 0.5
    return f"hsl({round(120 * share)}, 65%, 82%)"


def _class_table(breakdown: dict[str, dict[str, dict]], order: Sequence[str]) -> tuple[list, list]:
    """The report's augmentation x class table: ([(class, images)], [{name, cells}]); cells hold the
    class's 50 % intensity and mark the weakest class of each augmentation."""
    if not breakdown:
        return [], []
    classes: dict[str, int] = {}
    for cells in breakdown.values():
        for key, cell in cells.items():
            classes[key] = max(classes.get(key, 0), cell["images"])
    names = sorted(classes, key=_natural_key)
    rows = []
    for name in order:
        cells = breakdown.get(name, {})
        ranked = sorted(cells, key=lambda key: (_or_two(cells[key]["intensity_at_50"]),
                                                 cells[key]["mean_first_failure"]))
        rank = [(_or_two(cells[key]["intensity_at_50"]), cells[key]["mean_first_failure"]) for key in ranked]
        # no mark when all are alike, nor when no class reaches its 50 % intensity (every one ">1")
        weakest = (ranked[0] if len(ranked) > 1 and rank[0] < rank[-1]
                   and cells[ranked[0]]["intensity_at_50"] is not None else None)
        rows.append({"name": name, "cells": [
            {"text": _format_intensity(cells[key]["intensity_at_50"]) if key in cells else "",
             "colour": _class_colour(cells[key]["mean_first_failure"] if key in cells else None),
             "weakest": key == weakest} for key in names]})
    return [(key, classes[key]) for key in names], rows


def _report_sources(analysis: Analysis, images: Sequence | None) -> list[_Source]:
    """Where the report finds each analysed image: its file, ``images`` given anew, or (for a search
    given arrays) the copy the search kept beside the analysis file (read when drawn)."""
    if images is None:
        arrays = any(r.file.startswith("array-") for r in analysis.images)
        kept = _KeptImages(analysis.path if arrays else None)
        return [_KeptSource(r.file, None, kept=kept, kept_as=r.digest or r.file) if r.file.startswith("array-")
                else _Source(r.file, r.file) for r in analysis.images]
    sources = _sources(images, "images")
    if len(sources) != len(analysis.images):
        raise AugmentError(f"images has {len(sources)} entries for the analysis' {len(analysis.images)} images")
    return sources


@dataclass
class _KeptSource(_Source):
    """An image searched as an array, drawn from the copy kept beside the analysis (if any)."""

    kept: _KeptImages | None = None
    kept_as: str = ""  # its key among the copies: the digest of its pixels

    def load(self, max_pixels: int | None = None) -> np.ndarray:
        image = self.kept.get(self.kept_as) if self.kept is not None else None
        if image is None:
            raise AugmentError(f"image {self.key} was given in memory and no copy of it is kept")
        return image


def _missing_hint(file: str) -> str:
    """What a placeholder says: the image, and how to give it to the page."""
    if file.startswith("array-"):
        return (f"{file}: searched as an array, and no copy of it is kept beside the analysis (over the size "
                f"kept, or the analysis was moved without its rows folder); give the arrays again in Python "
                f"(images=... of render_boundaries or compare)")
    return f"{file}: moved or deleted since the search; restore it, or pass images=... in the search's order"


class _ReportWriter:
    """Renders one analysis into an offline folder (under the folder's lock); see
    ImageAugmenter.render_boundaries. ``spec``: the model, for captions of sweep frames."""

    def __init__(self, analysis: Analysis, html_dir: str, sources: list[_Source], spec: _ModelSpec | None,
                 torch_model: Any, target_layers: Sequence | None, cam_method: str, preprocess: Callable | None,
                 gallery_size: int, describe: Callable | None):
        self.analysis, self.html_dir, self.sources, self.spec = analysis, html_dir, sources, spec
        self.predictor: _Predictor | None = None
        self.diff_error, self.describe = spec.diff_error if spec is not None else None, describe
        self.torch_model, self.target_layers = torch_model, target_layers
        self.cam_method, self.preprocess, self.gallery_size = cam_method, preprocess, gallery_size
        settings = analysis.settings
        self.seed, self.label_format = int(settings["seed"]), settings.get("label_format")
        self.label_form = _LabelFormat.of(self.label_format)
        self.kind = self.label_form.kind
        self.rotate_method = settings.get("rotate_method", "largest_box")
        self._loaded: dict[int, np.ndarray | None] = {}

    def image(self, index: int) -> np.ndarray | None:
        if index not in self._loaded:
            try:
                self._loaded[index] = self.sources[index].load()
            except ValueError:
                self._loaded[index] = None  # moved or deleted since the search: a placeholder
        return self._loaded[index]

    def picture(self, name: str, image: np.ndarray, caption: str | None = None) -> str:
        relative = f"images/{_unique_file_name(name)}.png"
        _save_png(os.path.join(self.html_dir, relative), _display_size(image) if caption is None
                  else _captioned(image, caption))
        return relative

    def moved(self, image: np.ndarray, name: str, intensity: float, reference: Any) -> tuple[np.ndarray, Any]:
        """The augmented image and, for positional outputs, the reference moved with it."""
        seed = augmentation_seed(image, name, self.seed)
        if self.kind == "class" or reference is None or not CATALOGUE[name].geometric:
            return augment_image(image, name, intensity, seed), reference
        augmented, (reference,) = _move_with_pixels(image, [(name, intensity)], seed, self.label_form, [reference],
                                                    ["the reference output"], self.rotate_method)
        return augmented, reference

    def drawn(self, image: np.ndarray, output_view: Any, reference_view: Any) -> np.ndarray:
        """The image for the page: what the model said in red, the (moved) reference outlined in green."""
        picture = _draw_view(_display_size(image), output_view, self.kind, self.label_format, image.shape,
                             _OUTPUT_COLOUR)
        return _draw_view(picture, reference_view, self.kind, self.label_format, image.shape, _REFERENCE_COLOUR,
                          thin=True)

    def sweep(self, name: str, index: int) -> tuple[list[dict], str | None]:
        """Frames (PNG files, captions) and the GIF of one augmentation on one image."""
        image = self.image(index)
        if image is None:
            return [], None
        grid = self.analysis.intensities
        record = self.analysis.images[index]
        reference = _view_value(record.output_view, self.kind)
        if self.predictor is not None:
            reference = self.predictor([image], [self.sources[index].path])[0]
        moved = [self.moved(image, name, t, reference) for t in grid]
        pictures = [augmented for augmented, _ in moved]
        notes = [""] * len(grid)
        if self.torch_model is not None and self.target_layers:
            cams = gradcam_frames(image, name, self.torch_model, self.target_layers, intensities=grid,
                                  method=self.cam_method, preprocess=self.preprocess,
                                  seed=augmentation_seed(image, name, self.seed))
            pictures = [c.overlay for c in cams]
            notes = [f"class {c.predicted} ({c.confidence:.2f})" for c in cams]
        outputs = [None] * len(grid)
        if self.predictor is not None:
            outputs = self.predictor([augmented for augmented, _ in moved])
            notes = [self.caption(output, target, note) for output, (_, target), note in zip(outputs, moved, notes)]
        frames, captioned = [], []
        for k, (t, picture, note, output, (_, target)) in enumerate(zip(grid, pictures, notes, outputs, moved)):
            caption = f"{t:.2f}: {note}" if note else f"intensity {t:.2f}"
            full = max(image.shape)  # drawn from the outputs themselves, not the stored small views
            shown = self.drawn(picture, _output_view(output, self.kind, full), _output_view(target, self.kind, full))
            framed = _captioned(shown, caption)
            relative = f"frames/{_unique_file_name(name)}-{k:02d}.png"
            _save_png(os.path.join(self.html_dir, relative), framed)
            frames.append({"src": relative, "caption": f"{name} at intensity {t:.2f}" + (f": {note}" if note else "")})
            captioned.append(framed)
        gif = _write_gif(os.path.join(self.html_dir, "gifs", f"{_unique_file_name(name)}.gif"), captioned, 0.15,
                         durable=False)
        return frames, os.path.relpath(gif, self.html_dir)

    def caption(self, output: Any, reference: Any, note: str = "") -> str:
        text = _describe_output(output, self.kind, self.describe)
        if self.kind != "class" and self.diff_error is not None and not isinstance(output, PredictFailure):
            text += f", diff {_checked_diff(self.diff_error, output, reference, 'a report frame'):.2f} to reference"
        return _truncate(text, 60) + (f" ({note})" if note and self.torch_model is not None else "")

    def section(self, name: str, curve: AugmentationCurve, summary: CurveSummary) -> dict:
        entry = CATALOGUE[name]
        marks = [("10 %", summary.intensity_at_10), ("50 %", summary.intensity_at_50),
                 ("90 %", summary.intensity_at_90)]
        series = [("changed share", "#d62728", summary.changed_share),
                  ("mean diff error", "#1f77b4", summary.mean_diff_error),
                  ("label accuracy", "#2ca02c", summary.label_accuracy or ()),
                  ("failed by", "#9467bd", summary.failed_share)]
        series = [item for item in series if item[2]]  # adaptive, no full-grid sample: first failures only
        from markupsafe import Markup

        row = {
            "name": name, "group": entry.group, "transform": entry.transform, "at_full": entry.at_full_intensity,
            "safe": _format_intensity(summary.safe_intensity), "q10": _format_intensity(marks[0][1]),
            "q50": _format_intensity(marks[1][1]), "q90": _format_intensity(marks[2][1]),
            "safe_ci": summary.interval_text("safe_intensity"), "q10_ci": summary.interval_text("intensity_at_10"),
            "q50_ci": summary.interval_text("intensity_at_50"), "q90_ci": summary.interval_text("intensity_at_90"),
            **{f"{key}_severity": _format_severity(curve, value) for key, value in (
                ("safe", summary.safe_intensity), ("q10", marks[0][1]), ("q50", marks[1][1]), ("q90", marks[2][1]))},
            "has_labels": summary.label_accuracy is not None,
            "agreement": (f"{summary.adaptive_agreement:.0%}" if self.analysis.settings.get("grid_sample")
                          and summary.adaptive_agreement is not None else None),
            # The SVG is built here from numbers and fixed labels only, never from user text.
            "plot": Markup(_svg_plot(curve.intensities, series, marks, legend_below=True)),  # never over the curves
            "small_plot": Markup(_svg_plot(curve.intensities, series[:1], marks[1:2], width=160, height=36,
                                           compact=True)),
            "triptych": [], "frames": [], "gif": None,
        }
        exemplar = summary.exemplar
        if exemplar is None:
            return row
        index = exemplar["image"]
        record, original = self.analysis.images[index], self.image(index)
        row_errors = curve.diff_errors.read(index)
        shots = [("original", 0.0, record.output, record.output_view),
                 (f"last success, intensity {exemplar['last_success_intensity']:.2f}",
                  exemplar["last_success_intensity"], exemplar["last_success_output"],
                  exemplar.get("last_success_view"))]
        if exemplar["first_failure_intensity"] is not None:
            shots.append((f"first failure, intensity {exemplar['first_failure_intensity']:.2f}",
                          exemplar["first_failure_intensity"], exemplar["first_failure_output"],
                          exemplar.get("first_failure_view")))
        for k, (title, intensity, output, view) in enumerate(shots):
            error = row_errors[curve.intensities.index(intensity)] if intensity in curve.intensities else None
            caption = f"{record.file}: output {output}" + (f" (diff {error:.2f})" if k and error is not None else "")
            picture = {"title": title, "caption": caption, "src": None, "missing": _missing_hint(record.file)}
            if original is not None:
                augmented, target = self.moved(original, name, intensity, _view_value(record.output_view, self.kind))
                picture["src"] = self.picture(f"{name}-exemplar-{k}", self.drawn(
                    augmented, view, _output_view(target, self.kind) if k else None))
            row["triptych"].append(picture)
        row["frames"], row["gif"] = self.sweep(name, index)
        return row

    def gallery(self, summaries: dict[str, CurveSummary]) -> list[dict]:
        # (intensity, image, augmentation name) of every first failure, lowest first
        firsts, images, names = [], [], []
        for name in sorted(summaries):
            indices, at = _first_failures(self.analysis.curves[name])
            failed = np.flatnonzero(indices >= 0)
            firsts.append(at[failed])
            images.append(failed)
            names.append(np.full(len(failed), name, dtype=object))
        firsts, images, names = (np.concatenate(part) if part else np.array([]) for part in (firsts, images, names))
        order = np.lexsort((images, firsts))  # names are sorted within an image: the first name wins ties
        candidates = ((float(firsts[j]), int(images[j]), names[j]) for j in order.tolist())
        seen, items = set(), []
        for first, k, name in candidates:
            if k in seen:
                continue
            seen.add(k)
            record, curve = self.analysis.images[k], self.analysis.curves[name]
            item = {"file": record.file, "label": record.label, "output": record.output, "augmentation": name,
                    "intensity": f"{first:.2f}", "failure_output": curve.first_failure_output[k],
                    "original": None, "augmented": None, "missing": _missing_hint(record.file)}
            image = self.image(k)
            if image is not None:
                failure_view = curve.first_failure_view[k] if curve.first_failure_view is not None else None
                augmented, target = self.moved(image, name, first, _view_value(record.output_view, self.kind))
                item["original"] = self.picture(f"gallery-{len(items)}-original",
                                                self.drawn(image, record.output_view, None))
                item["augmented"] = self.picture(f"gallery-{len(items)}-augmented", self.drawn(
                    augmented, failure_view, _output_view(target, self.kind)))
            items.append(item)
            if len(items) >= self.gallery_size:
                break
        return items

    def write(self) -> str:
        with _lock_for_folder(self.html_dir), contextlib.ExitStack() as stack:
            if self.spec is not None:
                self.predictor = stack.enter_context(self.spec.predictor())
            _remove_temporaries(self.html_dir, _temporary_prefix("index.html"))
            return self._write_all()

    def _write_all(self) -> str:
        import jinja2
        from markupsafe import Markup

        for folder in ("images", "frames", "gifs"):
            _own_folder(os.path.join(self.html_dir, folder))  # a planted link is replaced, not followed
            _remove_temporaries(os.path.join(self.html_dir, folder))
        summaries = self.analysis.summaries()
        rows = [self.section(name, self.analysis.curves[name], summary) for name, summary in summaries.items()]
        environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, finalize=_printable)
        settings = self.analysis.settings
        classes, class_rows = _class_table(self.analysis.by_class(summaries), list(summaries))
        ranking = _severity_ranking(self.analysis, summaries)
        html = environment.from_string(_REPORT_TEMPLATE).render(
            severity_chart=Markup(_severity_chart(ranking)) if ranking else None,
            severity_example=_severity_example(ranking),
            strength_images=settings.get("severity_images") or f"up to {_STRENGTH_IMAGES}",
            calibration=settings.get("severity_calibration") or SEVERITY_CALIBRATION,
            classes=classes, class_rows=class_rows,
            class_source="group_by of each label" if self.analysis.group_by is not None else "the labels",
            rows=rows, gallery=self.gallery(summaries), frames_json={r["name"]: r["frames"] for r in rows},
            image_count=len(self.analysis.images), step=settings["step_size"],
            augmentation_count=len(rows), threshold=settings["failure_threshold"],
            seed=settings["seed"], model_id=settings.get("model_id"), label_format=self.label_format,
            version=__version__, skipped=self.analysis.skipped,
            grid_sample=len(settings["grid_sample"]) if settings.get("grid_sample") is not None else None,
            strategy=settings.get("strategy", "grid"),
            cam_method=self.cam_method if self.torch_model is not None and self.target_layers else None,
        )
        return _write_atomic(os.path.join(self.html_dir, "index.html"), html)


###############################################################################
# src/augment/compare.py
# Comparing models: per augmentation, how the first failures moved between two or more analyses
# (compare, Comparison, AugmentationShift) and the compare page.
###############################################################################

_VERDICTS = ("improved", "regressed", "no measurable change", "too few images")
_PAIRED_SHARE = 0.9  # images common to the analyses: at least this share of each, or compared unpaired
_MODEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class AugmentationShift:
    """One augmentation, one model against the baseline (see :func:`compare`).

    >>> shift = comparison.shifts[0]                                  # doctest: +SKIP
    >>> shift.augmentation, shift.shift, shift.interval, shift.verdict  # doctest: +SKIP
    ('SafeRotate', 0.21, (0.17, 0.25), 'improved')
    """

    augmentation: str
    model: str
    baseline: str
    paired: bool
    images: int  # paired: images searched in both; unpaired: the smaller of the two sets
    baseline_mean: float  # mean first-failure intensity on the common grid, never changed = 1 + step
    model_mean: float
    shift: float  # model_mean - baseline_mean: above 0, the model holds out longer
    interval: tuple[float, float] | None  # 95 % bootstrap interval of the shift (None: too few images)
    verdict: str  # "improved", "regressed", "no measurable change" or "too few images"
    # paired: the shares of images whose first failure came earlier, at the same intensity and later
    # with the model (a mean shift of 0 can hide large moves both ways); None when unpaired
    moved: tuple[float, float, float] | None = None
    # the mean first failures and the shift in ImageNet-C severity units (the baseline's perceptual
    # strength of the augmentation, read at each mean intensity; "never" read at intensity 1); None
    # where neither analysis measured a strength, and for geometric augmentations
    baseline_severity: float | None = None
    model_severity: float | None = None
    severity_shift: float | None = None
    severity_interval: tuple[float, float] | None = None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "interval": None if self.interval is None else list(self.interval),
                "severity_interval": None if self.severity_interval is None else list(self.severity_interval),
                "moved": None if self.moved is None else dict(zip(("earlier", "same", "later"), self.moved))}

    def moved_text(self) -> str:
        """"12% earlier, 70% same, 18% later" (paired), or "" (unpaired)."""
        if self.moved is None:
            return ""
        return ", ".join(f"{share:.0%} {what}" for share, what in zip(self.moved, ("earlier", "same", "later")))


@dataclass
class Comparison:
    """Analyses of one or more models side by side; what :func:`compare` returns.

    >>> comparison = compare({"baseline": "old.json", "retrained": "new.json"})  # doctest: +SKIP
    >>> print(comparison.format())                                          # doctest: +SKIP
    """

    analyses: dict[str, Analysis]
    paired: bool
    shifts: list[AugmentationShift]  # improved (largest first), regressed (largest first), the rest
    notes: list[str]  # what was left out or differs between the analyses
    step: float  # the common grid the first failures are compared on (the coarsest search's)
    page: str | None = None
    summaries: dict[str, dict[str, CurveSummary]] = field(default_factory=dict, repr=False)  # model -> compared
    keys: dict[str, list[str | None]] = field(default_factory=dict, repr=False)  # model -> each image's pairing key

    def first_failures(self, model: str, name: str, step: float | None = None) -> dict[str, float]:
        """Image key -> ``model``'s first failure under ``name`` on the grid of ``step`` (default
        the common one; never = 1 + step), each image once."""
        step = self.step if step is None else step
        firsts, values = self.summaries[model][name].first_failure_intensities, {}
        searched = set(self.analyses[model].curves[name].searched)
        for k, key in enumerate(self.keys[model]):
            if key is not None and k in searched and key not in values:
                first = firsts[k]  # the common grid is coarser: a failure at f fails at the next point up too
                values[key] = 1.0 + step if first is None else round(math.ceil(first / step - 1e-9) * step, 6)
        return values

    @property
    def names(self) -> list[str]:
        return list(self.analyses)

    def to_json(self) -> dict:
        return {"models": self.names, "baseline": self.names[0], "paired": self.paired, "step": self.step,
                "notes": self.notes, "method": _COMPARE_METHOD, "shifts": [shift.to_json() for shift in self.shifts]}

    def format(self) -> str:
        """A plain-text table, most improved and most regressed first."""
        width = max(5, *(len(name) for name in self.names[1:]))
        severities = any(s.severity_shift is not None for s in self.shifts)
        lines = [f"{'augmentation':<20} {'model':<{width}} {'mean first failure':>19} {'shift':>6}  {'95% CI':<16} "
                 + (f"{'severity shift':>14}  " if severities else "") + f"{'verdict':<20} images failing "
                 f"earlier/same/later"]
        for s in self.shifts:
            means = f"{s.baseline_mean:.3f} -> {s.model_mean:.3f}"
            interval = "" if s.interval is None else f"[{s.interval[0]:+.3f}, {s.interval[1]:+.3f}]"
            moved = "" if s.moved is None else "/".join(f"{share:.0%}" for share in s.moved)
            severity = "-" if s.severity_shift is None else f"{s.severity_shift:+.2f}"
            severity = f"{severity:>14}  " if severities else ""
            lines.append(f"{s.augmentation:<20} {s.model:<{width}} {means:>19} {s.shift:>+6.3f}  "
                         f"{interval:<16} {severity}{s.verdict:<20} {moved}".rstrip())
        pairing = "paired over the same images" if self.paired else "UNPAIRED: the image sets differ"
        return "\n".join(lines + [f"({pairing}; {_COMPARE_METHOD})"] + [f"note: {note}" for note in self.notes])


_COMPARE_METHOD = ("shift = difference of mean first-failure intensities (never changed = 1 + step) on the "
                   "coarsest search's grid, also in ImageNet-C severity units where a perceptual strength was "
                   "measured (each mean read on the baseline's strength curve, the model's where the baseline "
                   "has none; not for geometric augmentations, whose strength a pixel distance misjudges; no "
                   "interval where a bound passes intensity 1); "
                   f"95 % percentile bootstrap over images, {_BOOTSTRAP_RESAMPLES} "
                   f"resamples, seeded; verdict from whether the interval excludes 0 (no verdict under "
                   f"{_MIN_IMAGES} images)")


def _image_keys(analysis: Analysis, by_digest: bool) -> list[str | None]:
    """Per image, what pairs it across analyses: its pixels' digest, else its file (None: skipped)."""
    return [None if record.error else (record.digest if by_digest else record.file) for record in analysis.images]


def _shift(name: str, model: str, baseline: str, ours: dict[str, float], theirs: dict[str, float],
           paired: bool) -> AugmentationShift | None:
    moved = None
    if paired:
        keys = [key for key in theirs if key in ours]
        if not keys:
            return None
        count = len(keys)
        differences = np.array([ours[key] - theirs[key] for key in keys])
        moved = tuple(round(float(share), 4) for share in (np.mean(differences < -1e-9),
                                                          np.mean(np.abs(differences) <= 1e-9),
                                                          np.mean(differences > 1e-9)))
        base_mean, model_mean = (float(np.mean([side[k] for k in keys])) for side in (theirs, ours))
        if count >= _MIN_IMAGES:
            # seeded by what is compared (the augmentation and the images), never by the display names:
            # a rename must not move an interval, nor flip a borderline verdict
            distinct, draws = _bootstrap_counts(differences, "compare", name, _digest(sorted(keys)))
            estimates = draws @ distinct / count
    else:
        if not ours or not theirs:
            return None
        count = min(len(ours), len(theirs))
        base_mean, model_mean = (float(np.mean(list(side.values()))) for side in (theirs, ours))
        if count >= _MIN_IMAGES:
            means = []
            for side, values in (("model", ours), ("baseline", theirs)):
                distinct, draws = _bootstrap_counts(np.array(list(values.values())), "compare", name, side,
                                                    _digest(sorted(values)))
                means.append(draws @ distinct / len(values))
            estimates = means[0] - means[1]
    interval, verdict = None, _VERDICTS[3]
    if count >= _MIN_IMAGES:
        low, high = _percentile_interval(estimates)
        interval = (round(low, 4), round(high, 4))
        verdict = _VERDICTS[0] if low > 1e-12 else _VERDICTS[1] if high < -1e-12 else _VERDICTS[2]
    return AugmentationShift(name, model, baseline, paired, count, round(base_mean, 4), round(model_mean, 4),
                             round(model_mean - base_mean, 4), interval, verdict, moved)


def _in_severity(shift: AugmentationShift, analyses: dict[str, Analysis]) -> AugmentationShift:
    """``shift`` with its means, shift and interval also in severity units (see AugmentationShift)."""
    curve = next((a.curves[shift.augmentation] for a in (analyses[shift.baseline], analyses[shift.model])
                  if a.curves[shift.augmentation].perceptual_strength is not None), None)
    if curve is None or CATALOGUE[shift.augmentation].geometric:  # a pixel distance misjudges geometry
        return shift

    def severity(intensity: float) -> float:
        return curve.severity_at(min(1.0, max(0.0, intensity)))

    base, model = severity(shift.baseline_mean), severity(shift.model_mean)
    # the interval's bounds read on the curve, unless one lies past intensity 1 ("never" counts as 1 +
    # step, and the strength ends at 1): a clamped bound would claim a certainty the curve cannot give
    bounds = None if shift.interval is None else [shift.baseline_mean + bound for bound in shift.interval]
    interval = None if bounds is None or not all(0.0 <= b <= 1.0 for b in bounds) else tuple(
        round(severity(b) - base, 4) for b in bounds)
    return dataclasses.replace(shift, baseline_severity=round(base, 4), model_severity=round(model, 4),
                               severity_shift=round(model - base, 4), severity_interval=interval)


def _common_step(analyses: dict[str, Analysis]) -> float:
    """The coarsest search's step, when every other search's grid lies on it (nested grids)."""
    steps = {model: float(a.settings["step_size"]) for model, a in analyses.items()}
    step = max(steps.values())
    if any(abs(step / s - round(step / s)) > 1e-6 for s in steps.values()):
        listed = ", ".join(f"{model} {s:g}" for model, s in steps.items())
        raise AugmentError(f"the step sizes ({listed}) have no common grid: first failures cannot be compared "
                           f"without guessing; search again with steps that divide each other (0.05 and 0.1)")
    return step


def _comparable(analyses: dict[str, Analysis]) -> tuple[list[str], bool, dict[str, list[str | None]], list[str]]:
    """The augmentations to compare, whether images pair up, each image's pairing key per model
    (its pixels' digest, or its file for analyses without digests), and notes on the rest."""
    notes, names = [], list(analyses)
    first = analyses[names[0]]
    everywhere = [name for name in first.curves if all(name in a.curves for a in analyses.values())]
    shared = []
    for name in everywhere:
        definitions = {a.curves[name].definition for a in analyses.values()}
        if len(definitions) == 1:
            shared.append(name)
        else:
            notes.append(f"left out: {name} (the analyses measured different definitions of it)")
    for model, analysis in analyses.items():
        alone = sorted(set(analysis.curves) - set(everywhere))
        if alone:
            notes.append(f"left out, only in {model}: {', '.join(alone)}")
    for key, what in (("step_size", "step sizes"), ("failure_threshold", "failure thresholds"),
                      ("seed", "seeds"), ("label_format", "label formats")):
        values = {model: a.settings.get(key) for model, a in analyses.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            listed = ", ".join(f"{model} {value}" for model, value in values.items())
            notes.append(f"{what} differ ({listed})" + (": first failures compared on the coarsest grid"
                                                         if key == "step_size" else ""))
    by_digest = all(r.digest for a in analyses.values() for r in a.images if not r.error)
    image_keys = {model: _image_keys(analysis, by_digest) for model, analysis in analyses.items()}
    key_sets = [{k for k in keys if k is not None} for keys in image_keys.values()]
    for model, listed in image_keys.items():
        keys = [k for k in listed if k is not None]
        if len(keys) != len(set(keys)):
            notes.append(f"{model}: {len(keys) - len(set(keys))} images repeat another "
                         f"({'same pixels' if by_digest else 'same file'}); each counted once")
    common = set.intersection(*key_sets)
    unpairable = not by_digest and any(k.startswith("array-") for keys in key_sets for k in keys)
    paired = not unpairable and all(len(common) >= _PAIRED_SHARE * len(keys) for keys in key_sets)
    if paired and any(len(keys) > len(common) for keys in key_sets):
        notes.append(f"paired on the {len(common)} images every analysis has; left out: " + ", ".join(
            f"{len(keys) - len(common)} of {model}'s" for model, keys in zip(names, key_sets)
            if len(keys) > len(common)))
    if not paired:
        why = ("arrays searched before augment.py recorded pixel digests cannot be matched" if unpairable else
               "the image sets differ (" + ", ".join(f"{m}: {len(k)} images" for m, k in zip(names, key_sets))
               + f", {len(common)} in common)")
        notes.append(f"{why}: compared unpaired, each model's mean over its own images")
    if not shared:
        raise AugmentError(f"the analyses of {', '.join(names)} have no augmentation in common")
    notes.extend(_unsearched_notes(analyses, shared))
    return shared, paired, image_keys, notes


def _unsearched_notes(analyses: dict[str, Analysis], shared: list[str]) -> list[str]:
    """Per model, the readable images an (interrupted) search has not searched under some compared
    augmentation: the verdicts are over the searched ones only, and the page must say so."""
    notes = []
    for model, analysis in analyses.items():
        readable = [k for k, record in enumerate(analysis.images) if not record.error]
        missing: dict[int, list[str]] = {}
        for name in shared:
            searched = set(analysis.curves[name].searched)
            for k in readable:
                if k not in searched:
                    missing.setdefault(k, []).append(name)
        if missing:
            files = [analysis.images[k].file for k in sorted(missing)]
            names = sorted({name for listed in missing.values() for name in listed})
            notes.append(f"{model}: {len(missing)} of its {len(readable)} images are not searched under "
                         f"{', '.join(names)} (an interrupted search? run it again to finish it): compared on the "
                         f"images searched; not searched: {', '.join(files[:5])}" + (", ..." if len(files) > 5 else ""))
    return notes


def _order_shifts(shifts: list[AugmentationShift]) -> list[AugmentationShift]:
    rank = {verdict: k for k, verdict in enumerate(_VERDICTS)}
    return sorted(shifts, key=lambda s: (rank[s.verdict], -abs(s.shift), s.augmentation, s.model))


def compare(analyses: dict[str, Analysis | str | os.PathLike] | Sequence[Analysis | str | os.PathLike],
            html_dir: str | os.PathLike | None = None, *, images: Sequence | None = None,
            group_by: Callable[[Any], Any] | None = None) -> Comparison:
    """Compare analyses of two or more models (the first is the baseline) per augmentation.

    ``analyses``: {name: Analysis or path}, or a list (named after the files). Returns a
    :class:`Comparison`; with ``html_dir``, also an offline page (``comparison.page``):
    overlaid curves, thresholds with intervals, verdicts, a per-class difference table
    and the same image swept for each model where the shift is largest. ``images``: the
    baseline's images anew, if its files moved. ``group_by(label) -> str``: the classes.

    >>> comparison = compare({"baseline": "old/analysis.json", "retrained": "new/analysis.json"},
    ...                      html_dir="compare")                          # doctest: +SKIP
    >>> [(s.augmentation, s.verdict) for s in comparison.shifts][:2]       # doctest: +SKIP
    [('SafeRotate', 'improved'), ('Hue', 'improved')]
    """
    if isinstance(analyses, (str, os.PathLike, Analysis)):
        raise AugmentError("compare needs two or more analyses (a dict name -> analysis or path, or a list)")
    items = list(analyses.items()) if isinstance(analyses, dict) else [
        (os.fspath(a) if not isinstance(a, Analysis) else f"model {k + 1}", a) for k, a in enumerate(analyses)]
    if len(items) < 2:
        raise AugmentError(f"compare needs two or more analyses, got {[n for n, _ in items]}")
    if repeated := sorted({str(n) for n, _ in items if [str(m) for m, _ in items].count(str(n)) > 1}):
        raise AugmentError(f"compare needs a distinct name per analysis; {', '.join(map(repr, repeated))} names more "
                           f"than one (a dict {{name: path}} names each)")
    loaded = {}
    for name, value in items:
        if not isinstance(value, Analysis):
            if not isinstance(value, (str, os.PathLike)):
                raise AugmentError(f"analysis {name!r} must be an Analysis or a path, got {type(value).__name__}")
            value = load_analysis(value)
        loaded[str(name)] = value if group_by is None else dataclasses.replace(value, group_by=group_by)
    shared, paired, keys, notes = _comparable(loaded)
    comparison = Comparison(loaded, paired, [], notes, _common_step(loaded), keys=keys, summaries={
        model: {name: analysis.curves[name].summarize() for name in shared} for model, analysis in loaded.items()})
    baseline, *models = comparison.names
    for augmentation in shared:
        theirs = comparison.first_failures(baseline, augmentation)
        for model in models:
            shift = _shift(augmentation, model, baseline, comparison.first_failures(model, augmentation), theirs,
                           paired)
            if shift is None:
                notes.append(f"{augmentation}: no image searched in both {baseline} and {model}")
            else:
                comparison.shifts.append(shift)
    comparison.shifts = _order_shifts([_in_severity(shift, loaded) for shift in comparison.shifts])
    if html_dir is not None:
        sources = _report_sources(loaded[baseline], images)
        comparison.page = _ComparePage(comparison, _output_folder(html_dir, "html_dir"), sources).write()
    return comparison


def _class_differences(comparison: Comparison) -> tuple[list, list]:
    """Per augmentation and class, each model's mean first failure (on the common grid) minus the baseline's."""
    keys = comparison.keys
    classes = {model: {name: [keys[model][k] for k in members if keys[model][k] is not None]
                       for name, members in analysis.classes().items()}
               for model, analysis in comparison.analyses.items()}
    baseline = comparison.names[0]
    if not classes[baseline]:
        return [], []
    names = sorted(classes[baseline], key=_natural_key)
    rows = []
    for augmentation in dict.fromkeys(s.augmentation for s in comparison.shifts):
        firsts = {model: comparison.first_failures(model, augmentation) for model in comparison.names}

        means = {model: {name: float(np.mean(values)) if (values := [
            firsts[model][key] for key in members if key in firsts[model]]) else None
            for name, members in classes[model].items()} for model in comparison.names}
        for model in comparison.names[1:]:
            cells = []
            for name in names:
                ours, theirs = means[model].get(name), means[baseline][name]
                if ours is None or theirs is None:
                    cells.append({"text": "", "colour": _class_colour(None)})
                else:
                    delta = round(ours - theirs, 2) + 0.0  # no "-0.00"
                    cells.append({"text": f"{delta:+.2f}", "colour": _class_colour(delta, -0.5, 0.5)})
            rows.append({"name": augmentation, "model": model, "cells": cells})
    return names, rows


class _ComparePage:
    """Writes a Comparison as an offline page (under the folder's lock, files written atomically)."""

    def __init__(self, comparison: Comparison, html_dir: str, sources: list[_Source]):
        self.comparison, self.html_dir, self.sources, self.keys = comparison, html_dir, sources, comparison.keys
        self.baseline = comparison.analyses[comparison.names[0]]

    def section(self, augmentation: str) -> dict:
        series, rows = [], []
        for k, model in enumerate(self.comparison.names):
            summary, colour = self.comparison.summaries[model][augmentation], _MODEL_COLOURS[k % len(_MODEL_COLOURS)]
            # "failed by" (every image's first failure), the statistic the verdicts use; the changed
            # share of an adaptive or guided search comes from its few full-grid images only
            series.append((f"{model}: failed by", colour, summary.failed_share, "", summary.intensities))
            if summary.label_accuracy:
                series.append((f"{model}: label accuracy", colour, summary.label_accuracy, "5,3",
                               summary.intensities))
            rows.append({"model": model, "colour": colour, "cells": [
                (_format_intensity(getattr(summary, key)), summary.interval_text(key))
                for key in ("safe_intensity", "intensity_at_10", "intensity_at_50", "intensity_at_90")]})
        from markupsafe import Markup

        return {"name": augmentation, "plot": Markup(_svg_plot([0.0, 1.0], series, width=420, height=220,
                                                               legend_below=True)),
                "rows": rows, "shifts": [s for s in self.comparison.shifts if s.augmentation == augmentation],
                "exemplar": None, "accuracy": any(dash == "5,3" for _, _, _, dash, _ in series)}

    def exemplar(self, shift: AugmentationShift) -> dict | None:
        """The image whose first failure moved most in the shift's direction, swept for each model
        (each at its own search's first failure)."""
        firsts = {model: self.comparison.first_failures(model, shift.augmentation, float(a.settings["step_size"]))
                  for model, a in self.comparison.analyses.items()}
        keys = self.keys[shift.baseline]
        candidates = [k for k, key in enumerate(keys) if key is not None and all(key in f for f in firsts.values())]
        if not candidates:
            return None
        sign = 1.0 if shift.shift >= 0 else -1.0
        best = max(candidates, key=lambda k: (sign * (firsts[shift.model][keys[k]] - firsts[shift.baseline][keys[k]]),
                                              -k))
        key, file = keys[best], self.baseline.images[best].file
        try:
            image = self.sources[best].load()
        except ValueError:
            return {"file": _missing_hint(file), "pictures": []}
        seed = augmentation_seed(image, shift.augmentation, int(self.baseline.settings["seed"]))
        prefix = f"{shift.augmentation}-{shift.model}"
        pictures = [{"src": self.picture(f"{prefix}-original", image), "title": "original",
                     "lines": [f"{model}: {self.output(model, key)}" for model in firsts]}]
        for model in firsts:
            first = firsts[model][key]
            at = min(first, 1.0)
            lines = []
            for other in firsts:
                other_first = firsts[other][key]
                if other_first <= at + 1e-9:
                    lines.append(f"{other}: changed (first at {other_first:.2f}: "
                                 f"{self.output(other, key, shift.augmentation)})")
                else:
                    lines.append(f"{other}: unchanged" + (" up to 1" if other_first > 1 else
                                                         f" (first change at {other_first:.2f})"))
            title = (f"{model}'s first failure, intensity {at:.2f}" if first <= 1
                     else f"intensity 1 ({model} never changed)")
            pictures.append({"src": self.picture(f"{prefix}-{len(pictures)}",
                                                 augment_image(image, shift.augmentation, at, seed)),
                             "title": title, "lines": lines})
        return {"file": file, "pictures": pictures}

    def output(self, model: str, key: str, augmentation: str | None = None) -> str:
        """What ``model`` said on image ``key``: originally, or at its first failure under ``augmentation``."""
        analysis = self.comparison.analyses[model]
        position = self.keys[model].index(key)
        if augmentation is None:
            return _truncate(analysis.images[position].output, 40)
        return _truncate(analysis.curves[augmentation].first_failure_output[position], 40)

    def picture(self, name: str, image: np.ndarray) -> str:
        relative = f"images/{_unique_file_name(name)}.png"
        _save_png(os.path.join(self.html_dir, relative), _display_size(image))
        return relative

    def write(self) -> str:
        import jinja2

        with _lock_for_folder(self.html_dir):
            _remove_temporaries(self.html_dir, _temporary_prefix("index.html"))
            _own_folder(os.path.join(self.html_dir, "images"))
            _remove_temporaries(os.path.join(self.html_dir, "images"))
            order = list(dict.fromkeys(s.augmentation for s in self.comparison.shifts))
            sections = {name: self.section(name) for name in order}
            if self.comparison.paired:
                largest: dict[str, AugmentationShift] = {}  # three augmentations, each its largest shift
                for shift in sorted((s for s in self.comparison.shifts if s.verdict in _VERDICTS[:2]),
                                    key=lambda s: -abs(s.shift)):
                    if len(largest) < 3:
                        largest.setdefault(shift.augmentation, shift)
                for name, shift in largest.items():  # one picture set per augmentation (every model in it)
                    sections[name]["exemplar"] = self.exemplar(shift)
            classes, class_rows = _class_differences(self.comparison)
            environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, finalize=_printable)
            page = environment.from_string(_COMPARE_TEMPLATE).render(
                comparison=self.comparison, sections=list(sections.values()), method=_COMPARE_METHOD,
                colours={model: _MODEL_COLOURS[k % len(_MODEL_COLOURS)] for k, model in
                         enumerate(self.comparison.names)},
                images={model: sum(not r.error for r in a.images) for model, a in self.comparison.analyses.items()},
                classes=classes, class_rows=class_rows, version=__version__)
            return _write_atomic(os.path.join(self.html_dir, "index.html"), page)


_COMPARE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>augment.py comparison: {{ comparison.names|join(" vs ") }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 16px; color: #222; }
h1 { margin-bottom: 4px; } .meta { color: #666; } small.ci { color: #777; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; } .wide { overflow-x: auto; }
.improved { color: #137a2a; font-weight: bold; } .regressed { color: #b00; font-weight: bold; } .no, .too { color: #777; }
section.aug { border-top: 2px solid #ddd; margin-top: 28px; padding-top: 8px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 300px; overflow-wrap: anywhere; }
img.pixel { image-rendering: pixelated; } .swatch { display: inline-block; width: 10px; height: 10px; }
table.classes td { text-align: center; }
</style></head><body>
<h1>{{ comparison.names[1:]|join(", ") }} against {{ comparison.names[0] }}</h1>
<p class="meta">{% for model in comparison.names %}<span class="swatch" style="background: {{ colours[model] }}"></span>
{{ model }} ({{ images[model] }} images){% if loop.first %}, the baseline{% endif %}{% if not loop.last %}; {% endif %}{% endfor %}.
{% if comparison.paired %}Compared <b>paired</b>, image by image, on the images every analysis searched.{% else %}
The image sets differ: compared <b>unpaired</b>, each model's mean over its own images.{% endif %}
Made by augment.py {{ version }}.</p>
<p class="meta">Method: {{ method }}. A positive shift: the model's outputs change at higher intensities (more robust).</p>
{% if comparison.notes %}<ul class="notes">{% for note in comparison.notes %}<li>{{ note }}</li>{% endfor %}</ul>{% endif %}

<h2 id="summary">Verdicts, most improved and most regressed first</h2>
<table><thead><tr><th>augmentation</th><th>model</th><th>verdict</th><th>shift</th><th>95 % CI</th>
<th>shift in severity units</th>
<th>mean first failure</th><th>images failing earlier, same, later</th><th>images</th></tr></thead><tbody>
{% for s in comparison.shifts %}<tr><td><a href="#aug-{{ s.augmentation }}">{{ s.augmentation }}</a></td><td>{{ s.model }}</td>
<td class="{{ s.verdict.split()[0] }}">{{ s.verdict }}</td><td>{{ "%+.3f"|format(s.shift) }}</td>
<td>{% if s.interval %}[{{ "%+.3f"|format(s.interval[0]) }}, {{ "%+.3f"|format(s.interval[1]) }}]{% endif %}</td>
<td class="severity">{% if s.severity_shift is not none %}{{ "%+.2f"|format(s.severity_shift) }}{% if s.severity_interval %}<br><small>[{{ "%+.2f"|format(s.severity_interval[0]) }}, {{ "%+.2f"|format(s.severity_interval[1]) }}]</small>{% endif %}<br><small>{{ "%.1f"|format(s.baseline_severity) }} &rarr; {{ "%.1f"|format(s.model_severity) }}</small>{% else %}-{% endif %}</td>
<td>{{ "%.3f"|format(s.baseline_mean) }} &rarr; {{ "%.3f"|format(s.model_mean) }}</td><td>{{ s.moved_text() }}</td><td>{{ s.images }}</td></tr>
{% endfor %}</tbody></table>

{% if classes %}<h2 id="by-class">By class: change of the mean first failure against {{ comparison.names[0] }}</h2>
<p>Per augmentation and class: the model's mean first-failure intensity over that class's images minus the
baseline's (on the grid of step {{ comparison.step }}, never changed counted as 1 + step). Green: the class holds
out longer; red: it breaks earlier.</p>
<div class="wide"><table class="classes"><thead><tr><th>augmentation</th><th>model</th>{% for name in classes %}<th>{{ name }}</th>{% endfor %}</tr></thead><tbody>
{% for row in class_rows %}<tr><td>{{ row.name }}</td><td>{{ row.model }}</td>{% for cell in row.cells %}<td style="background: {{ cell.colour }}">{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% endif %}

{% for section in sections %}<section class="aug" id="aug-{{ section.name }}"><h2>{{ section.name }}</h2>
<div class="row"><figure>{{ section.plot }}<figcaption>Solid: share of images whose first failure is at or below each
intensity ("failed by", from every image: what the verdicts compare){% if section.accuracy %}; dashed: accuracy
against the labels (from the images measured on the whole grid){% endif %}.</figcaption></figure>
<table><thead><tr><th>model</th><th>safe</th><th>10 %</th><th>50 %</th><th>90 %</th></tr></thead><tbody>
{% for row in section.rows %}<tr><td><span class="swatch" style="background: {{ row.colour }}"></span> {{ row.model }}</td>
{% for value, interval in row.cells %}<td>{{ value }}<br><small class="ci">{{ interval }}</small></td>{% endfor %}</tr>
{% endfor %}{% for s in section.shifts %}<tr><td colspan="5" class="{{ s.verdict.split()[0] }}">{{ s.model }}: {{ s.verdict }},
shift {{ "%+.3f"|format(s.shift) }}{% if s.interval %} [{{ "%+.3f"|format(s.interval[0]) }}, {{ "%+.3f"|format(s.interval[1]) }}]{% endif %}</td></tr>{% endfor %}
</tbody></table></div>
{% if section.exemplar %}<h3>One image, every model: {{ section.exemplar.file }}</h3>
<div class="row">{% for picture in section.exemplar.pictures %}<figure><img class="pixel" src="{{ picture.src }}" alt="{{ picture.title }}">
<figcaption><b>{{ picture.title }}</b>{% for line in picture.lines %}<br>{{ line }}{% endfor %}</figcaption></figure>{% else %}
<p>image missing: {{ section.exemplar.file }}</p>{% endfor %}</div>{% endif %}
</section>
{% endfor %}
</body></html>
"""  # noqa: E501


###############################################################################
# src/augment/policy.py
# Sampling policies: realism -> per-augmentation intensity limits (realism_max_intensity), and the
# SamplingPolicy that synthesis and the training transform draw from.
###############################################################################

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


###############################################################################
# src/augment/synthesis.py
# Synthesis and evaluation: synthesize_more's job (draws, labels, the manifest and its preview),
# read_manifest, and evaluating a model on synthesized files.
###############################################################################

@dataclass
class SyntheticImage:
    """One line of manifest.jsonl: what was made, from what, and how.

    >>> SyntheticImage.from_json({"index": 0, "file": "synthetic-000000-a.png", "source_file": "a.png",
    ...                           "augmentations": [{"name": "Hue", "intensity": 0.2}], "seed": 1,
    ...                           "realism": 0.5}).augmentations
    [{'name': 'Hue', 'intensity': 0.2}]
    """

    index: int
    file: str
    label: Any
    source_file: str
    source_label: Any
    augmentations: list[dict]
    seed: int
    realism: float
    predicted_diff_error: float | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def files(self) -> list[str]:
        """The files this entry made in its folder: the image, and a mask label if any."""
        mask = self.label if isinstance(self.label, str) and self.label.endswith(".mask.png") else None
        return [self.file] + ([mask] if mask else [])

    @classmethod
    def from_json(cls, data: Any) -> SyntheticImage:
        """One manifest line's object; an AugmentError says which field is wrong."""
        line = _validated(_formats().ManifestLine, data, "the line")
        return cls(**{**line.model_dump(), "augmentations": [step.model_dump() for step in line.augmentations]})


def read_manifest(path: str | os.PathLike, with_truncation: bool = False) -> Any:
    """The entries of a ``manifest.jsonl`` (a missing file has none), as :class:`SyntheticImage`.

    A damaged line is an AugmentError naming the manifest, the line and the field. A last line
    without its newline was cut short by a kill: left out (``with_truncation=True`` also
    returns whether that happened: ``(entries, truncated)``).

    >>> [entry.augmentations for entry in read_manifest("generated/manifest.jsonl")][:1]  # doctest: +SKIP
    [[{'name': 'Hue', 'intensity': 0.21}, {'name': 'GaussianBlur', 'intensity': 0.4}]]
    """
    path = os.fspath(path)
    entries: list[SyntheticImage] = []
    lines = Path(path).read_text(encoding="utf-8").split("\n") if os.path.exists(path) else [""]
    truncated = bool(lines[-1].strip())  # a complete file ends with a newline
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise AugmentError(f"manifest {path} line {number} is not JSON ({_json_failure(exc)}); fix or remove "
                               f"it") from None
        try:
            entries.append(SyntheticImage.from_json(data))
        except AugmentError as exc:
            raise AugmentError(f"manifest {path} line {number}: {str(exc).removeprefix('the line ')}; fix or "
                               f"remove it") from None
    return (entries, truncated) if with_truncation else entries


_SYNTHETIC_NAME = re.compile(r"synthetic-(\d+)-")


def _write_temporary(folder: str, target: str, content: bytes) -> str:
    """Write ``content`` to a durable temporary file for ``target`` in ``folder``; return its path."""
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            path = os.path.join(folder, target)
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
        raise
    return tmp


class _SyntheticFolder:
    """An output folder of synthetic images and its ``manifest.jsonl``, held by one job at a time.

    Each image (and mask) is written to a temporary file, then its manifest line is appended
    and fsynced, then the files are renamed into place. So after a kill at any point the
    folder holds only whole files; a line whose files are missing is dropped (with the files
    it names: the line proves augment.py wrote them), and temporaries are removed. Nothing
    else is ever deleted: files named like synthetic images that no line names (copied in, or
    the user's) are left alone with a warning, and new images are numbered after them.
    """

    def __init__(self, folder: str, manifest_name: str = "manifest.jsonl"):
        self.folder = folder
        self.manifest = os.path.join(folder, manifest_name)
        self.entries: list[SyntheticImage] = []
        self.next_index = 0
        self._lock = _lock_for_folder(folder)
        self._journal: int | None = None

    def __enter__(self) -> _SyntheticFolder:
        self._lock.__enter__()
        try:
            self._reconcile()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            self._journal = os.open(self.manifest, flags, 0o666)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
        self._lock.__exit__(*exc_info)

    def _reconcile(self) -> None:
        if os.path.islink(self.manifest):
            raise AugmentError(f"{self.manifest} is a symbolic link; augment.py never writes through links: "
                               f"remove it or choose another output_dir")
        entries, truncated = read_manifest(self.manifest, with_truncation=True)
        kept = [e for e in entries if all(os.path.isfile(os.path.join(self.folder, n)) for n in e.files)]
        kept_ids = {id(e) for e in kept}
        if truncated or len(kept) != len(entries):
            text = "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in kept)
            _write_atomic(self.manifest, text)
        for entry in entries:
            if id(entry) not in kept_ids:  # cut off by a kill between its line and its renames
                for name in entry.files:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.folder, name))
        # Only this folder's own temporaries: an analysis file kept here may belong to a live search.
        _remove_temporaries(self.folder, _TEMPORARY_PREFIX + "synthetic-")
        _remove_temporaries(self.folder, _temporary_prefix(self.manifest))
        named = {name for entry in kept for name in entry.files}
        stray = sorted(n for n in os.listdir(self.folder) if _SYNTHETIC_NAME.match(n) and n not in named)
        if stray:
            warnings.warn(f"{len(stray)} file(s) in {self.folder} are named like synthetic images but its "
                          f"manifest does not list them (e.g. {stray[0]}); they are left alone and new images "
                          f"are numbered after them", stacklevel=4)
        self.entries = kept
        self.next_index = 1 + max([e.index for e in kept] + [int(_SYNTHETIC_NAME.match(n)[1]) for n in stray],
                                  default=-1)

    def add(self, entry: SyntheticImage, files: dict[str, bytes]) -> None:
        """Write ``files`` ({name: content}), journal ``entry`` naming them, then rename them in."""
        temporaries = {}
        try:
            for name, content in files.items():
                temporaries[name] = _write_temporary(self.folder, name, content)
            line = (json.dumps(entry.to_json(), separators=(",", ":")) + "\n").encode("utf-8")
            os.write(self._journal, line)
            os.fsync(self._journal)
        except BaseException:
            for tmp in temporaries.values():
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise
        for name, tmp in temporaries.items():
            os.replace(tmp, os.path.join(self.folder, name))
        self.entries.append(entry)


_PREVIEW_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>augment.py synthetic images</title>
<style>body { font: 13px system-ui, sans-serif; margin: 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; }
figure { margin: 0; } img { width: 160px; image-rendering: pixelated; }
figcaption { overflow-wrap: anywhere; color: #333; }</style></head><body>
<h1>{{ entries|length }} synthetic images</h1>
<p>Seed {{ seed }}. Each caption lists the augmentations applied, in order, with their intensities.</p>
{% if kind != "class" %}<p>Labels ({{ kind }}) drawn in red over each image; they moved with its pixels.</p>
<svg width="0" height="0" style="position:absolute"><filter id="tint" color-interpolation-filters="sRGB">
<feColorMatrix type="matrix" values="0 0 0 0 0.92  0 0 0 0 0.16  0 0 0 0 0.16  120 0 0 0 0"/></filter></svg>{% endif %}
<div class="grid">{% for e in entries %}<figure>{% if kind == "class" or not e.size %}<img src="{{ e.file }}" alt="{{ e.file }}">
{% else %}<svg class="drawn" viewBox="0 0 {{ e.size[0] }} {{ e.size[1] }}" width="160" role="img" aria-label="{{ e.file }}">
<image href="{{ e.file }}" width="{{ e.size[0] }}" height="{{ e.size[1] }}" style="image-rendering: pixelated"/>
{% if kind == "mask" %}<image href="{{ e.label }}" width="{{ e.size[0] }}" height="{{ e.size[1] }}" filter="url(#tint)"/>{% endif %}
{% for x0, y0, x1, y1 in e.boxes %}<rect x="{{ x0 }}" y="{{ y0 }}" width="{{ x1 - x0 }}" height="{{ y1 - y0 }}" fill="none" stroke="#eb2828" stroke-width="{{ e.stroke }}"/>{% endfor %}
{% for x, y in e.points %}<circle cx="{{ x }}" cy="{{ y }}" r="{{ e.stroke * 1.5 }}" fill="#eb2828"/>{% endfor %}
</svg>{% endif %}
<figcaption><b>{{ e.file }}</b> (realism {{ e.realism }})<br>label: {{ e.label_text }}<br>from {{ e.source_file }}<br>
{% for a in e.augmentations %}{{ a.name }} {{ '%.2f'|format(a.intensity) }}{{ ', ' if not loop.last }}{% endfor %}
</figcaption></figure>{% endfor %}</div></body></html>
"""  # noqa: E501


def _preview_entry(folder: str, entry: SyntheticImage, kind: str, label_format: str | None) -> dict:
    """What the preview shows of one synthetic image: its label drawn, as numbers only."""
    shown = {**dataclasses.asdict(entry), "label_text": _describe_output(entry.label, kind), "size": None,
             "boxes": [], "points": []}
    if kind == "class":
        shown["label_text"] = _truncate(entry.label)
        return shown
    from PIL import Image

    try:
        with Image.open(os.path.join(folder, entry.file)) as opened:
            width, height = opened.size
    except (OSError, ValueError):
        return shown  # drawn without its label if the image cannot be read
    shown["size"], shown["stroke"] = (width, height), max(1.0, round(min(width, height) / 80, 1))
    rows = entry.label if isinstance(entry.label, list) else []
    if kind == "bbox":
        shown["boxes"] = [tuple(round(v, 2) for v in _box_corners(row, label_format, height, width)) for row in rows
                          if isinstance(row, list) and len(row) >= 4 and all(_is_number(v) for v in row[:4])]
    elif kind == "keypoints":
        shown["points"] = [(round(row[0], 2), round(row[1], 2)) for row in rows
                           if isinstance(row, list) and len(row) >= 2 and all(_is_number(v) for v in row[:2])]
    return shown


class _SynthesisJob:
    """One call of synthesize_more after its arguments were checked: make ``wanted`` images
    into a locked synthetic folder, a block of them at a time (one model batch per block when
    filtering), each planned by the policy from (seed, image number, attempt) alone."""

    def __init__(self, sources: list[_Source], labels: list | None, policy: SamplingPolicy, realism: float,
                 seed: int, label_format: str | None, rotate_method: str, window: _FilterWindow,
                 model_for: Callable[[Sequence[_Source]], _ModelSpec], block: int, progress: bool):
        self.sources, self.labels, self.policy, self.realism, self.seed = sources, labels, policy, realism, seed
        self.label_form, self.rotate_method = _LabelFormat.of(label_format), rotate_method
        self.label_format, self.kind = label_format, self.label_form.kind
        self.window, self.model_for, self.block, self.progress = window, model_for, block, progress
        self.loaded: dict[int, np.ndarray] = {}
        self.reference_outputs: dict[int, Any] = {}
        self.predictor: _Predictor | None = None
        self.diff_error: Callable | None = None
        self.predict_calls = 0

    def run(self, target: _SyntheticFolder, wanted: int) -> tuple[list[str], list]:
        from tqdm.auto import tqdm

        made_files: list[str] = []
        made_labels: list = []
        index, empty_blocks, skipped, window = target.next_index, 0, 0, self.window
        with contextlib.ExitStack() as stack:
            if window.active:
                spec = self.model_for(self.sources)
                self.predictor, self.diff_error = stack.enter_context(spec.predictor()), spec.diff_error
            bar = stack.enter_context(tqdm(total=wanted, unit="img", desc="synthesize", disable=not self.progress))
            while len(made_files) < wanted:
                indices = list(range(index, index + min(self.block, wanted - len(made_files))))
                index += len(indices)
                accepted = self._block(indices)
                skipped += len(indices) - len(accepted)
                for k in (k for k in indices if k in accepted):
                    entry, files = accepted[k]
                    target.add(entry, files)
                    made_files.append(os.path.join(target.folder, entry.file))
                    made_labels.append(os.path.join(target.folder, entry.label) if self.kind == "mask" else
                                       entry.label)
                    bar.update(1)
                empty_blocks = 0 if accepted else empty_blocks + 1
                if empty_blocks * self.block >= max(len(self.sources), self.block) and not accepted:
                    warnings.warn(f"stopping after {len(made_files)} of {wanted} images: no candidate of any source "
                                  f"image had a predicted diff error in [{window.low}, {window.high}] within "
                                  f"{window.max_attempts} attempts; widen the range or change realism", stacklevel=4)
                    break
            if self.predictor is not None:
                self.predict_calls += self.predictor.calls
        if skipped:
            warnings.warn(f"{skipped} synthetic image(s) skipped: no candidate within the diff-error range "
                          f"[{window.low}, {window.high}] after {window.max_attempts} attempts each", stacklevel=4)
        return made_files, made_labels

    def _candidate(self, k: int, attempt: int) -> tuple[int, SyntheticImage, np.ndarray, Any]:
        """Synthetic image ``k``, attempt ``attempt``: planned, applied, labels moved."""
        source_index = k % len(self.sources)
        source = self.sources[source_index]
        if source_index not in self.loaded:
            self.loaded[source_index] = source.load()
        steps, pixel_seed = self.policy.sample(np.random.default_rng([self.seed, k, attempt]))
        label = self.labels[source_index] if self.labels is not None else None
        image, (new_label,) = _move_with_pixels(self.loaded[source_index], steps, pixel_seed, self.label_form, [label],
                                                [f"label of {source.key}"], self.rotate_method)
        mask = self.kind == "mask"
        entry = SyntheticImage(
            index=k, file=f"synthetic-{k:06d}-{_safe_name(Path(source.key).stem, 40)}.png",
            label=None if mask else _jsonable(new_label), source_file=source.key,
            source_label=None if mask else _jsonable(label),
            augmentations=[{"name": n, "intensity": t} for n, t in steps], seed=pixel_seed, realism=self.realism)
        return source_index, entry, image, new_label

    def _block(self, indices: list[int]) -> dict[int, tuple[SyntheticImage, dict[str, bytes]]]:
        """Make images ``indices``, retrying the ones the filter rejects; one model batch per round."""
        accepted: dict[int, tuple[SyntheticImage, dict[str, bytes]]] = {}
        attempts = dict.fromkeys(indices, 0)
        while active := [k for k in indices if k not in accepted and attempts[k] < self.window.max_attempts]:
            candidates = [(k, *self._candidate(k, attempts[k])) for k in active]
            errors = self._predicted_errors(candidates) if self.predictor is not None else [None] * len(candidates)
            for (k, _, entry, image, new_label), error in zip(candidates, errors):
                if error is None or self.window.low <= error <= self.window.high:  # NaN never passes
                    entry.predicted_diff_error = error
                    files = {entry.file: _png_bytes(image)}
                    if self.kind == "mask":
                        entry.label = entry.file[:-4] + ".mask.png"
                        files[entry.label] = _png_bytes(np.asarray(new_label))
                    accepted[k] = (entry, files)
                else:
                    attempts[k] += 1
        return accepted

    def _predicted_errors(self, candidates: list) -> list[float]:
        """Each candidate's diff error to its source's output (NaN where predict failed: rejected)."""
        missing = sorted({c[1] for c in candidates} - set(self.reference_outputs))
        if missing:
            outputs = self.predictor([self.loaded[i] for i in missing], [self.sources[i].path for i in missing])
            self.reference_outputs.update(zip(missing, outputs))
        outputs = self.predictor([c[3] for c in candidates])
        return [math.nan if isinstance(out, PredictFailure) or isinstance(self.reference_outputs[c[1]], PredictFailure)
                else _checked_diff(self.diff_error, out, self.reference_outputs[c[1]],
                                   f"synthetic image {c[2].file}, from {c[2].source_file}")
                for out, c in zip(outputs, candidates)]


class _Synthesized(tuple):
    """What synthesize_more returns: ``files, labels = ...`` as the README unpacks it, and the
    seed code's summary too: ``result["count"]`` and ``result["generated"]`` (one dict per image:
    synth_filename, synth_label, origin_filename, origin_label)."""

    summary: dict

    def __new__(cls, files: list[str], labels: list, summary: dict) -> _Synthesized:
        made = super().__new__(cls, (files, labels))
        made.summary = summary
        return made

    def __getitem__(self, key: Any) -> Any:
        return self.summary[key] if isinstance(key, str) else super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        return key in self.summary if isinstance(key, str) else super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)

    def keys(self) -> Any:
        return self.summary.keys()

    def __getnewargs__(self) -> tuple:
        return (*self, self.summary)


def _summary(folder: str, entries: Sequence[SyntheticImage], kind: str) -> dict:
    """ml-infinite-image-augment's summary of synthetic images (paths in ``folder``)."""
    def label(entry: SyntheticImage) -> Any:
        return os.path.join(folder, entry.label) if kind == "mask" else entry.label

    return {"count": len(entries), "generated": [
        {"synth_filename": os.path.join(folder, e.file), "synth_label": label(e), "origin_filename": e.source_file,
         "origin_label": e.source_label} for e in entries]}


def _write_preview(folder: str, name: str, entries: list[SyntheticImage], seed: int, label_format: str | None,
                   limit: int = 1000) -> str:
    import jinja2

    kind = _LabelFormat.of(label_format).kind
    shown = [_preview_entry(folder, entry, kind, label_format) for entry in entries[-limit:]]
    html = jinja2.Environment(autoescape=True, finalize=_printable).from_string(_PREVIEW_TEMPLATE).render(
        entries=shown, seed=seed, kind=kind)
    return _write_atomic(os.path.join(folder, name), html)


def _manifest_breakdown(keys: Sequence[str], errors: Sequence[float], failure_threshold: float) -> dict | None:
    """Per augmentation: how many of the evaluated synthetic images had it, and how many of those failed."""
    by_file: dict[str, SyntheticImage] = {}
    for folder in {os.path.dirname(os.path.abspath(k)) for k in keys}:
        manifest = os.path.join(folder, "manifest.jsonl")
        if os.path.exists(manifest):
            for entry in read_manifest(manifest):
                by_file[os.path.join(folder, entry.file)] = entry
    if not by_file:
        return None
    table: dict[str, dict] = {}
    for key, error in zip(keys, errors):
        entry = by_file.get(os.path.abspath(key))
        for step in entry.augmentations if entry else []:
            row = table.setdefault(step["name"], {"images": 0, "failures": 0})
            row["images"] += 1
            row["failures"] += int(error >= failure_threshold)
    for row in table.values():
        row["failure_rate"] = row["failures"] / row["images"]
    return dict(sorted(table.items(), key=lambda item: -item[1]["failure_rate"]))


def _evaluate_images(sources: Sequence[_Source], labels: Sequence, spec: _ModelSpec, failure_threshold: float,
                     kind: str, describe: Callable | None, batch: int) -> tuple[dict, int]:
    """Predict every image (every one must load: an unreadable one is an error naming it) and
    score the outputs; images predict failed on (on_error="skip") are left out and listed."""
    outputs: list = []
    with spec.predictor() as predictor:
        for start in range(0, len(sources), batch):
            chunk = sources[start:start + batch]
            outputs.extend(predictor([s.load() for s in chunk], [s.path for s in chunk],
                                     [f"image {s.key}" for s in chunk]))
    kept = [k for k, output in enumerate(outputs) if not isinstance(output, PredictFailure)]
    result = _evaluate([outputs[k] for k in kept], [_LabelFormat.for_kind(kind).value(labels[k]) for k in kept],
                       [sources[k].key for k in kept], spec.diff_error, failure_threshold, kind, describe)
    result["skipped"] = [{"file": sources[k].key, "reason": output.reason}
                         for k, output in enumerate(outputs) if isinstance(output, PredictFailure)]
    return result, predictor.calls


def _evaluate(outputs: Sequence, labels: Sequence, keys: Sequence[str], diff_error: Callable,
              failure_threshold: float, kind: str = "class", describe: Callable | None = None) -> dict:
    errors = [_checked_diff(diff_error, output, label, f"image {key}")
              for output, label, key in zip(outputs, labels, keys)]
    text = functools.partial(_describe_output, kind=kind, describe=describe)
    differing = [
        {"file": key, "label": text(label), "output": text(output), "diff_error": error}
        for key, label, output, error in zip(keys, labels, outputs, errors) if error >= failure_threshold
    ]
    count = len(errors)
    return {
        "count": count,
        "avg_diff_error": float(np.mean(errors)) if errors else 0.0,
        "output_differs_count": len(differing),
        "accuracy": (count - len(differing)) / count if count else 0.0,
        "differing_output_errs": [d["diff_error"] for d in differing],
        "differing_outputs": differing,
        "diff_errors": errors,
        "by_augmentation": _manifest_breakdown(keys, errors, failure_threshold),
    }


###############################################################################
# src/augment/transform.py
# The training transform: RealismTransform, an albumentations transform that draws from a policy
# in every call (made on first use: it subclasses albumentations' BaseCompose).
###############################################################################

def _worker_salt() -> int:
    """A new process's extra seed: a DataLoader worker's seed (distinct per worker and per
    epoch, reproducible under torch.manual_seed), elsewhere the process id."""
    data = sys.modules.get("torch.utils.data")
    info = data.get_worker_info() if data is not None else None
    return int(info.seed) % 2**63 if info is not None else os.getpid()


def _positional_image(image: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """A positional call's image as (H, W, 3) uint8, and how to hand a result back in its form:
    an array stays an array of its shape (RGBA comes back (H, W, 3)), a PIL image one of its mode
    (RGB or L; others come back RGB), a (C, H, W) uint8 tensor a tensor."""
    import cv2

    def gray(out: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)

    if _is_tensor(image):
        if str(image.dtype) != "torch.uint8" or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise AugmentError(f"a tensor image must be (C, H, W) uint8 with C 1 or 3 (before ToDtype/ToTensor), got "
                               f"{tuple(image.shape)} {image.dtype}")
        import torch

        channels = image.shape[0]
        rgb = np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy())
        return (_as_rgb(rgb[:, :, 0], "image") if channels == 1 else rgb), lambda out: torch.from_numpy(
            gray(out)[None] if channels == 1 else np.ascontiguousarray(out.transpose(2, 0, 1)))
    if type(image).__module__.startswith("PIL.") and hasattr(image, "mode"):
        from PIL import Image

        mode = image.mode
        if mode in _WIDE_MODES:  # 16-bit and float images: scaled to 8 bits as load_image scales them
            rgb = _as_rgb(_to_8_bits(np.asarray(image, dtype=np.float64), mode, "the image"), "the image")
        else:
            rgb = np.asarray(image.convert("RGB") if mode != "RGB" else image)
        return rgb, lambda out: Image.fromarray(gray(out) if mode == "L" else out)
    array = np.asarray(image) if isinstance(image, np.ndarray) else None
    if array is None or array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2]
                                                                             in (1, 3, 4))):
        described = f"{array.shape} {array.dtype}" if array is not None else type(image).__name__
        raise AugmentError(f"the image must be an (H, W, 3), (H, W, 4), (H, W, 1) or (H, W) uint8 array (what a "
                           f"search takes), a PIL image or a (C, H, W) uint8 tensor, got {described}")
    if array.ndim == 3 and array.shape[2] in (3, 4):  # RGBA: alpha dropped, as the search drops it
        return _as_rgb(array, "the image"), lambda out: out
    shape = array.shape
    return _as_rgb(array.reshape(shape[:2]), "image"), lambda out: gray(out).reshape(shape)


def _apply_steps(data: dict, steps: Sequence[tuple[str, float]], seed: int, rotate_method: str,
                 processors: dict | None = None, after: Callable[[dict], dict] | None = None,
                 targets: dict[str, str] | None = None) -> dict:
    """``steps`` applied to albumentations ``data`` in order, each transform seeded as
    ``A.Compose(..., seed=seed)`` seeds it: the same pixels as synthesis for the same draw.
    ``targets``: a parent Compose's additional targets (image2 -> image, ...): they move too."""
    height, width = data["image"].shape[:2]
    transforms = _build_transforms(steps, height, width, rotate_method) if not targets else [
        t for name, intensity in steps if intensity > 0  # built afresh: the cached ones stay unmarked
        and (t := _thread_transform.__wrapped__(name, round(intensity, 6), height, width, rotate_method, 0))
        is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for transform in transforms:
            if targets:
                transform.add_targets(targets)
            transform.set_processors(processors or {})
            transform.set_random_seed(seed)
            data = transform(force_apply=True, **data)
            if after is not None:
                data = after(data)
    return data


@functools.lru_cache(maxsize=1)
def _movable_keys() -> frozenset[str]:
    """The data keys the catalogue's transforms take (image, mask, masks, bboxes, keypoints, ...)."""
    return frozenset().union(*(t.available_keys for name in ALL_AUGMENTATIONS
                               if (t := _transform(name, 0.5, 32, 32)) is not None))


@_made_on_first_use("RealismTransform")
def _realism_transform_class() -> type:
    A = _albumentations()

    class RealismTransform(A.BaseCompose):
        """A training transform: every call applies a fresh draw from a :class:`SamplingPolicy`.

        The draw is synthesis's (``synthesize_more`` and this transform share one sampler):
        between ``fewest`` and ``most`` augmentations, never two of a family, each at an
        intensity in [0, its limit]. ``policy`` is a SamplingPolicy or a policy file's path
        (:meth:`SamplingPolicy.save`). Calling conventions:

        - ``t(image)``: an array, PIL image or (C, H, W) uint8 tensor in, the same form out
          (classification, torchvision pipelines);
        - ``t(image=..., bboxes=..., keypoints=..., mask=..., masks=...)`` -> dict, alone (labels
          move per ``label_format``, as synthesis moves them) or inside ``A.Compose([...],
          bbox_params=..., keypoint_params=...)``, which then moves every target it knows.

        ``seed`` makes the stream repeatable (None: fresh entropy; a seeded ``A.Compose`` seeds
        an unseeded transform). In a DataLoader worker (or any new process) the stream is
        re-seeded from ``seed`` and the worker's seed: distinct per worker and per epoch,
        repeatable with the same ``seed``, worker count and ``torch.manual_seed``. ``p``: the
        chance of augmenting at all. ``.params`` holds the last call's steps and pixel seed.

        >>> t = RealismTransform(SamplingPolicy({"Brighten": 0.3, "SafeRotate": 0.2}, fewest=1, most=2), seed=0)
        >>> t(np.zeros((32, 32, 3), np.uint8)).shape
        (32, 32, 3)
        """

        def __init__(self, policy: SamplingPolicy | str | os.PathLike, label_format: str | dict | None = None, *,
                     seed: int | None = None, rotate_method: str = "largest_box", p: float = 1.0):
            super().__init__(transforms=[], p=_check_number(p, "p", 0.0, 1.0))
            if isinstance(policy, (str, os.PathLike)):
                policy = SamplingPolicy.load(policy)
            if not isinstance(policy, SamplingPolicy):
                raise AugmentError(f"policy must be a SamplingPolicy or a policy file's path, got {type(policy)}")
            if not policy.eligible:
                raise AugmentError("the policy has no augmentation with a weight above 0: nothing to draw")
            if rotate_method not in _ROTATE_METHODS:
                raise AugmentError(f"rotate_method must be one of {_ROTATE_METHODS}, got {rotate_method!r}")
            self.label_format = label_format = _normal_label_format(label_format)
            self.policy, self.rotate_method, self.label_form = policy, rotate_method, _LabelFormat.of(label_format)
            self.kind = self.label_form.kind
            self._seeded = seed is not None
            self._base = _check_int(seed, "seed") if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
            self._pid, self._rng = os.getpid(), np.random.default_rng(self._base)
            self._inside = False  # set when a parent A.Compose hands its processors down
            self._available_keys.update(_movable_keys())
            self._custom = _custom_entries(policy.limits)  # registered ones travel with a pickled transform
            self.params: dict = {}

        def __getstate__(self) -> dict:
            # A DataLoader worker started by spawn gets the transform by pickle. A registered
            # augmentation made by a lambda or a closure cannot go along: it travels as its name and
            # why, and a process that lacks it says so (a copy in this process still works).
            custom = tuple(entry if (error := _pickle_error(entry)) is None else (entry.name, str(error))
                           for entry in self.__dict__.get("_custom", ()))
            return {**self.__dict__, "_custom": custom}

        def __setstate__(self, state: dict) -> None:
            unsent = [item for item in state.get("_custom", ()) if isinstance(item, tuple)]
            for name, error in unsent:
                if name not in CATALOGUE:
                    raise AugmentError(f"augmentation {name!r} could not come to this process ({error}): register "
                                       f"it with a function defined at the top level of a module (not a lambda or a "
                                       f"nested function), or start DataLoader workers by fork")
            sent = tuple(item for item in state.get("_custom", ()) if not isinstance(item, tuple))
            self.__dict__.update(state, _custom=sent + tuple(CATALOGUE[name] for name, _ in unsent))
            _adopt(sent)  # a spawned DataLoader worker knows your augmentations too

        @property
        def processors(self) -> dict:
            return self.__dict__.get("_processors", {})

        @processors.setter
        def processors(self, value: dict) -> None:
            self.__dict__["_processors"] = value
            if "_rng" in self.__dict__:  # after __init__: a parent Compose is adopting this transform
                self._inside = True

        def set_random_seed(self, seed: int | None) -> None:
            super().set_random_seed(seed)
            if seed is not None and "_rng" in self.__dict__ and not self._seeded:
                self._base, self._rng = int(seed), np.random.default_rng(int(seed))

        def __repr__(self) -> str:
            return (f"RealismTransform({len(self.policy.eligible)} augmentations, {self.policy.fewest}-"
                    f"{self.policy.most} per image, realism={self.policy.realism}, "
                    f"label_format={self.label_format!r}, p={self.p})")

        def indented_repr(self, indent: int = 0) -> str:
            return repr(self)

        def _generator(self) -> np.random.Generator:
            if os.getpid() != self._pid:  # a DataLoader worker or another process: its own stream
                self._pid = os.getpid()
                self._rng = np.random.default_rng([self._base, _worker_salt()])
            return self._rng

        def draw(self, force_apply: bool = False) -> tuple[list[tuple[str, float]], int] | None:
            """The next call's (steps, pixel seed), or None when ``p`` says not to augment."""
            rng = self._generator()
            if not force_apply and self.p < 1.0 and rng.random() >= self.p:
                self.params = {}
                return None
            steps, pixel_seed = self.policy.sample(rng)
            self.params = {"steps": steps, "seed": pixel_seed}
            return steps, pixel_seed

        def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> Any:
            if args:
                if len(args) != 1 or data:
                    raise AugmentError("call with one image, t(image), or with keywords, t(image=..., ...), not both")
                image, back = _positional_image(args[0])
                drawn = self.draw(force_apply)
                # not augmented (p < 1): the same form as an augmented one (RGBA -> RGB, I;16 -> RGB), so a
                # DataLoader's batch never mixes shapes or modes
                return back(image if drawn is None else _apply_steps_to_image(image, *drawn))
            if "image" not in data:
                raise AugmentError(f"call with image=... (got {', '.join(sorted(data)) or 'no arguments'})")
            if self._inside:  # the parent Compose prepared the data and moves what its processors know
                for key in ("bboxes", "keypoints"):
                    if key in data and (key not in self.processors or not isinstance(data[key], np.ndarray)):
                        params = {"bboxes": "bbox_params", "keypoints": "keypoint_params"}[key]
                        raise AugmentError(f"this transform belongs to an A.Compose (given {key}=...): call it "
                                           f"through that Compose, with {params}, or use another "
                                           f"RealismTransform on its own")
                drawn = self.draw(force_apply)
                return data if drawn is None else _apply_steps(data, *drawn, self.rotate_method, self.processors,
                                                               self.check_data_post_transform,
                                                               self._additional_targets)
            return self._call_alone(data, force_apply)

        def _call_alone(self, data: dict, force_apply: bool) -> dict:
            if self.kind == "targets":  # ml-infinite-image-augment's dict label_format: the targets are one label
                fields = _target_fields(self.label_format)
                for other in ("bboxes", "keypoints", "mask", "masks"):
                    if data.get(other) is not None and other not in fields:
                        raise AugmentError(f"{other}=... is not among this label_format's targets {fields}: put "
                                           f"the transform in A.Compose([...]), which moves every target")
                label = {key: data[key] for key in fields if data.get(key) is not None}
                drawn = self.draw(force_apply)
                if drawn is None:
                    return dict(data)
                image, (moved,) = _move_with_pixels(_as_rgb(data["image"], "image"), *drawn, self.label_form,
                                                    [label or None], ["targets"], self.rotate_method)
                return {**data, "image": image, **(moved or {})}
            key = self.label_form.field
            for other in ("bboxes", "keypoints", "mask", "masks"):
                if other in data and other != key and not (key == "mask" and other == "masks"):
                    raise AugmentError(
                        f"{other}=... needs this transform's label_format to say what they are (it is "
                        f"{self.label_format!r}); or put the transform in A.Compose([...], bbox_params=..., "
                        f"keypoint_params=...), which moves every target")
            image = _as_rgb(data["image"], "image")
            drawn = self.draw(force_apply)
            if drawn is None:
                return dict(data)
            names = [k for k in ("mask", "masks", "bboxes", "keypoints") if k in data and data[k] is not None]
            targets = [data[k] for k in names if k != "masks"] + list(data.get("masks") or [])
            whats = [k for k in names if k != "masks"] + [f"masks[{i}]" for i in range(len(data.get("masks") or []))]
            moved_image, moved = _move_with_pixels(image, *drawn, self.label_form, targets, whats,
                                                   self.rotate_method)
            out = dict(data, image=moved_image)
            for name in (k for k in names if k != "masks"):
                out[name] = moved.pop(0)
            if "masks" in names:
                out["masks"] = moved
            return out

    return RealismTransform


if TYPE_CHECKING:  # what editors and type checkers see; at run time the class is made on first use
    RealismTransform = _realism_transform_class()


###############################################################################
# src/augment/augmenter.py
# ImageAugmenter: the public face. It validates its arguments and hands each job to its module.
###############################################################################

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


###############################################################################
# src/augment/cli.py
# The command line: python augment.py {search,report,synthesize,evaluate,policy,compare,catalogue}.
# Add a CLI command here.
###############################################################################

_FILE_MODULES: dict[str, types.ModuleType] = {}  # path/to/file.py -> the module, run once per process
_FILE_MODULES_LOCK = threading.Lock()


def _import_object(spec: str, parameter: str) -> Any:
    """``package.module:attribute`` (or ``path/to/file.py:attribute``) to the object."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AugmentError(f"{parameter} must look like package.module:function, got {spec!r}")
    if os.getcwd() not in sys.path:  # last: a file of the user's never shadows augment or its packages
        sys.path.append(os.getcwd())
    try:
        if module_name.endswith(".py"):
            path = os.path.abspath(module_name)
            with _FILE_MODULES_LOCK:  # threads of one worker run the file once
                if path not in _FILE_MODULES:
                    spec_obj = importlib.util.spec_from_file_location(Path(module_name).stem, path)
                    module = importlib.util.module_from_spec(spec_obj)
                    spec_obj.loader.exec_module(module)
                    _FILE_MODULES[path] = module
            module = _FILE_MODULES[path]
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as exc:
        raise AugmentError(f"{parameter}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AugmentError(f"{parameter}: module {module_name!r} has no attribute {attribute!r}") from None


class _Imported:
    """A callable named on the command line (``module:function`` or ``file.py:function``) that
    travels by its name: each process (render workers, Dask workers) imports it on first use.

    Sending the function itself would pickle a file-module's function by value, with whatever
    its module holds (a model cache's lock), and fail; a name is a few bytes. A relative file
    is made absolute, so a worker on the same file system finds it from any folder.
    """

    def __init__(self, spec: str, parameter: str):
        module_name, colon, attribute = spec.partition(":")
        self.spec = (os.path.abspath(module_name) if module_name.endswith(".py") else module_name) + colon + attribute
        self.parameter = parameter
        self._target = _import_object(self.spec, parameter)  # a bad name fails here, not in a worker
        self.__name__ = getattr(self._target, "__name__", attribute)

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "parameter": self.parameter, "__name__": self.__name__}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _target=None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._target is None:
            self._target = _import_object(self.spec, self.parameter)
        return self._target(*args, **kwargs)


def _expand_images(patterns: Sequence[str]) -> list[str]:
    """Every file the patterns name, in one sorted order (labels given as a list follow it).

    A pattern that names an existing file is that file, even if it holds glob characters
    (``a[1].png``); a file matched by two patterns is listed once.
    """
    files: set[str] = set()
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        else:
            matches = [m for m in glob.glob(pattern, recursive=True) if not os.path.isdir(m)]
        if not matches:
            if os.path.isdir(pattern):
                raise AugmentError(f"--images {pattern} is a folder; give a pattern such as "
                                   f"'{os.path.join(pattern, '*.png')}'")
            if not any(ch in pattern for ch in "*?["):
                raise AugmentError(f"--images: image file not found: {pattern}")
            raise AugmentError(f"--images pattern {pattern!r} matches no file")
        files.update(matches)
    return sorted(files)


def _read_labels(path: str | None, files: Sequence[str]) -> list | None:
    """A JSON list (1-to-1 with the sorted files) or an object keyed by file name or base name."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError) as exc:
        raise AugmentError(f"cannot read --labels {path}: {_json_failure(exc)}") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        labels = []
        base_names = collections.Counter(os.path.basename(name) for name in files)
        for name in files:
            for key in (name, os.path.abspath(name), os.path.basename(name)):
                if key in data:
                    if key == os.path.basename(name) and base_names[key] > 1:
                        raise AugmentError(f"--labels {path} keys {key!r} by base name, but {base_names[key]} "
                                           f"images are called that; key them by path")
                    labels.append(data[key])
                    break
            else:
                raise AugmentError(f"--labels {path} has no label for image {name}")
        return labels
    raise AugmentError(f"--labels {path} must hold a JSON list or object, got {type(data).__name__}")


def format_summary(analysis: Analysis) -> str:
    """A plain-text table: per augmentation, the intensities at which 10/50/90 % of outputs changed.

    >>> print(format_summary(analysis))          # doctest: +SKIP
    augmentation          safe   10%   50%   90%  50% 95% CI    50% sev  (intensity at which that share of 300 ...)
    Brighten              0.05  0.15  0.25  0.65  [0.25, 0.30]      1.9
    """
    severities = any(curve.perceptual_strength is not None for curve in analysis.curves.values())
    lines = [f"{'augmentation':<20} {'safe':>5} {'10%':>5} {'50%':>5} {'90%':>5}  {'50% 95% CI':<12}  "
             + (f"{'50% sev':>7}  " if severities else "") + f"(intensity at which that share of "
             f"{len(analysis.images) - len(analysis.skipped)} images changed output; CI: bootstrap over images"
             + ("; sev: the 50 % intensity in ImageNet-C severity units, + geometric (a pixel distance reads it "
                "high)" if severities else "") + ")"]
    for name, summary in analysis.summaries().items():
        cells = [_format_intensity(v) for v in (summary.safe_intensity, summary.intensity_at_10,
                                                summary.intensity_at_50, summary.intensity_at_90)]
        interval = summary.interval_text("intensity_at_50")
        line = f"{name:<20} " + " ".join(f"{cell:>5}" for cell in cells) + f"  {interval:<12}"
        if severities:
            curve = analysis.curves[name]
            severity = curve.severity_at(summary.intensity_at_50)
            text = ("-" if curve.perceptual_strength is None else f"{severity:.1f}" if severity is not None
                    else f">{curve.perceptual_strength[-1]:.1f}") + ("+" if CATALOGUE[name].geometric else "")
            line += f"  {text:>7}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def catalogue_markdown(names: Iterable[str] | None = None) -> str:
    """The README's catalogue table, made from the catalogue itself so the two cannot disagree
    (``names``: those entries only; default every one, registered ones included).

    >>> catalogue_markdown().splitlines()[2]
    '| Brighten | color | `RandomBrightnessContrast` | brightness +1.0 (+255: white) |'
    """
    lines = ["| name | group | albumentations transform | at intensity 1 |", "|---|---|---|---|"]
    wanted = None if names is None else {_check_augmentation_name(name) for name in names}
    for entry in (e for e in CATALOGUE.values() if wanted is None or e.name in wanted):
        lines.append(f"| {entry.name} | {entry.group} | `{entry.transform}` | {entry.at_full_intensity} |")
    return "\n".join(lines)


def _command_catalogue(args: argparse.Namespace) -> int:
    _registered_from(args)
    print(catalogue_markdown())
    return 0


def _registered_from(args: argparse.Namespace) -> list[str]:
    """Register the augmentations named by --augmentations-from module:NAME (an Augmentation,
    or a list of them, as register_augmentation returns); returns their names."""
    names: list[str] = []
    for spec in getattr(args, "augmentations_from", None) or []:
        value = _import_object(spec, "--augmentations-from")
        entries = list(value) if isinstance(value, (list, tuple)) else [value]
        if not entries or not all(isinstance(entry, Augmentation) for entry in entries):
            raise AugmentError(f"--augmentations-from {spec} must name what register_augmentation returned (an "
                               f"Augmentation, or a list of them), got {type(value).__name__}")
        _adopt(entries)
        names += [entry.name for entry in entries if entry.name not in names]
    return names


def _augmenter_from_args(args: argparse.Namespace) -> ImageAugmenter:
    predict = _Imported(args.predict, "--predict") if args.predict else None
    diff_error = _Imported(args.diff_error, "--diff-error") if getattr(args, "diff_error", None) else None
    custom = _registered_from(args)
    label_format = args.label_format
    # ml-infinite-image-augment's dict form, as JSON
    if label_format is not None and label_format.lstrip().startswith("{"):
        try:
            label_format = json.loads(label_format)
        except (ValueError, RecursionError) as exc:
            raise AugmentError(f"--label-format {_truncate(label_format, 80)!r} is not valid JSON: "
                               f"{_json_failure(exc)}") from None
    return ImageAugmenter(predict, diff_error, augmentations=args.augmentations or ALL_AUGMENTATIONS + custom,
                          label_format=label_format, seed=args.seed, batch_size=args.batch_size,
                          predict_input=args.predict_input, failure_threshold=args.failure_threshold,
                          on_error=args.on_error, max_image_pixels=args.max_image_pixels, model_id=args.model_id,
                          rotate_method=args.rotate_method,
                          perceptual_ceiling=bool(getattr(args, "perceptual_ceiling", False)))


def _inputs(args: argparse.Namespace) -> tuple[list[str], list | None]:
    """The images and labels a command works on; ``--dry-run`` prints which file got which label."""
    files = _expand_images(args.images)
    labels = _read_labels(args.labels, files)
    if labels is not None and args.label_format == "mask":  # mask files, relative to the labels file
        folder = os.path.dirname(os.path.abspath(args.labels))
        labels = [os.path.join(folder, label) if isinstance(label, str) else label for label in labels]
    if labels is not None and len(labels) != len(files):
        raise AugmentError(f"--labels {args.labels} has {len(labels)} labels for {len(files)} images (a list "
                           f"follows the images' sorted order; --dry-run lists it)")
    if args.dry_run:
        for k, name in enumerate(files):
            print(f"{k}\t{name}" + ("" if labels is None else f"\t{json.dumps(_jsonable(labels[k]))}"))
        print(f"{len(files)} images" + ("" if labels is None else ", with labels") + "; dry run: nothing else done")
        raise SystemExit(0)
    return files, labels


def _command_search(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    options = {"strategy": args.strategy, "grid_sample": args.grid_sample, "num_workers": args.workers}
    with contextlib.ExitStack() as stack:
        if args.dask:
            from distributed import Client

            if not 0 < args.dask_timeout <= 3600:  # (nan fails this too)
                raise AugmentError(f"--dask-timeout must be a number of seconds in (0, 3600], got {args.dask_timeout}")
            try:
                client = stack.enter_context(Client(args.dask, timeout=args.dask_timeout))
            except (OSError, TimeoutError) as exc:
                raise AugmentError(f"cannot connect to the Dask scheduler at {args.dask} within "
                                   f"{args.dask_timeout:g} s ({exc}): is it running, and is the address right "
                                   f"(tcp://host:8786)?") from None
            options["executor"] = client.get_executor()
        analysis = augmenter.search_randomization_boundaries(files, labels, args.step, args.cache, **options)
    print(format_summary(analysis))
    print(f"\nanalysis written to {args.cache} ({augmenter.predict_calls} predictions this run)")
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    if labels is None:
        raise AugmentError("evaluate needs --labels")
    result = augmenter.evaluate(files, labels)
    shown = {k: v for k, v in result.items() if k not in ("diff_errors", "differing_outputs")}
    print(json.dumps(shown, indent=2))
    return 0


def _command_report(args: argparse.Namespace) -> int:
    if args.target_layer and not args.torch_model:
        raise AugmentError("--target-layer needs --torch-model (the model whose layers they are)")
    if args.torch_model and not args.target_layer:
        raise AugmentError("--torch-model needs --target-layer (e.g. features.6) for Grad-CAM")
    predict = _import_object(args.predict, "--predict") if args.predict else None
    custom = _registered_from(args)
    augmenter = ImageAugmenter(predict, augmentations=ALL_AUGMENTATIONS + custom, batch_size=args.batch_size,
                               predict_input=args.predict_input)
    augmenter.load_analysis(args.cache)
    model = _import_object(args.torch_model, "--torch-model")() if args.torch_model else None
    layers = [_resolve_layer(model, name) for name in args.target_layer] if model is not None else None
    path = augmenter.render_boundaries(args.html_dir, torch_model=model, target_layers=layers,
                                       cam_method=args.cam_method)
    print(f"report written: {os.path.abspath(path)}")
    if args.open:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri())
    return 0


def _command_synthesize(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    augmenter.load_analysis(args.cache)
    manifest = os.path.join(args.output_dir, "manifest.jsonl")
    before = len(read_manifest(manifest)) if os.path.isfile(manifest) else 0
    count = len(files) if args.count is None else args.count
    try:
        made, _ = augmenter.synthesize_more(
            files, labels, realism=args.realism, count=count, min_random_augmentations=args.min_augmentations,
            max_random_augmentations=args.max_augmentations, min_predicted_diff_error=args.min_diff_error,
            max_predicted_diff_error=args.max_diff_error, output_dir=args.output_dir, count_is_total=args.total)
    except KeyboardInterrupt:
        # Re-running the same command would add another --count; this one finishes the job.
        total = count if args.total else before + count
        argv = list(args.argv)
        if "--count" in argv:
            argv[argv.index("--count") + 1] = str(total)
        else:
            argv += ["--count", str(total)]
        if "--total" not in argv:
            argv.append("--total")
        print(f"interrupted: the images written so far are kept in {args.output_dir}; to finish the "
              f"{total} images, run:\n  python augment.py {shlex.join(argv)}", file=sys.stderr)
        return 130
    print(f"{len(made)} synthetic images written to {args.output_dir} (manifest.jsonl, __preview.html)")
    return 0


_CEILING_HELP = ("bound realism's limits by 3 - 2 x realism ImageNet-C severity units too (the analysis' perceptual "
                 "strengths; geometric augmentations keep the model's limits)")


def _command_policy(args: argparse.Namespace) -> int:
    custom = _registered_from(args)
    augmenter = ImageAugmenter(augmentations=args.augmentations or ALL_AUGMENTATIONS + custom,
                               perceptual_ceiling=args.perceptual_ceiling)
    augmenter.load_analysis(args.cache)
    missing = [name for name in augmenter.augmentations if name not in augmenter.analysis.curves]
    if args.augmentations and missing:
        raise AugmentError(f"{', '.join(missing)} not searched in {args.cache} (it has "
                           f"{', '.join(augmenter.analysis.curves)})")
    policy = augmenter._drawable_policy(args.realism, args.min_augmentations, args.max_augmentations)
    policy.save(args.out)
    limits = ", ".join(f"{name} {limit:g}" for name, limit in policy.limits.items())
    ceiling = ("" if policy.severity_ceiling is None else
               f", perceptual ceiling: severity {policy.severity_ceiling:g}")
    print(f"policy written to {args.out} (realism {args.realism:g}{ceiling}; largest intensities: {limits})")
    return 0


def _command_compare(args: argparse.Namespace) -> int:
    _registered_from(args)
    if args.names is not None and len(args.names) != len(args.analyses):
        raise AugmentError(f"--names gives {len(args.names)} names for {len(args.analyses)} analyses")
    names = args.names or [os.fspath(path) for path in args.analyses]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise AugmentError(f"two analyses are named {', '.join(map(repr, repeated))}: " + (
            "give each its own name with --names" if args.names else
            "to compare one file with itself (two searches of one model), give them names: --names first second"))
    comparison = compare(dict(zip(args.names, args.analyses)) if args.names else args.analyses,
                         html_dir=args.html_dir)
    print(comparison.format())
    if args.json is not None:
        _write_atomic(args.json, json.dumps(comparison.to_json(), indent=1))
    print(f"comparison page written: open {os.path.abspath(comparison.page)}")
    return 0


def _resolve_layer(model: Any, dotted: str) -> Any:
    """``features.6`` -> model.features[6]."""
    layer = model
    for part in dotted.split("."):
        try:
            layer = layer[int(part)] if part.isdigit() else getattr(layer, part)
        except (AttributeError, IndexError, TypeError):
            raise AugmentError(f"--target-layer {dotted!r}: the model has no {part!r} there") from None
    return layer


def _count_or_share(text: str) -> int | float:
    """``--grid-sample``: "32" is a count of images, "0.1" a share of them."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augment.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"augment.py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def registered(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--augmentations-from", nargs="+", metavar="MODULE:NAME", default=[],
                         help="your own augmentations: what register_augmentation returned (one or a list)")

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--predict", help="package.module:function (or file.py:function); "
                                           "omit for the model-free matcher")
        sub.add_argument("--diff-error", help="package.module:function returning [0, 1]")
        sub.add_argument("--images", nargs="+", required=True,
                         help="image files or glob patterns (all matches sorted into one order)")
        sub.add_argument("--dry-run", action="store_true",
                         help="list each image with its label, in the order used, and stop")
        sub.add_argument("--labels", help="JSON list (sorted file order) or object keyed by file name")
        sub.add_argument("--augmentations", nargs="+", metavar="NAME", help="default: all 24 and those registered")
        registered(sub)
        sub.add_argument("--batch-size", type=int, default=None,
                         help="predict takes a list of up to N images (default: one image per call)")
        sub.add_argument("--predict-input", choices=["auto", "array", "filename"], default="auto")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--failure-threshold", type=float, default=0.5)
        sub.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="skip: record images the model fails on and go on (default: stop)")
        sub.add_argument("--model-id", help="the model's version (e.g. a weights hash): a new one re-searches")
        sub.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                         help="larger images are skipped with a warning (default: %(default)s)")
        sub.add_argument("--label-format", default=None,
                         help="labels and outputs are boxes (pascal_voc, coco, yolo, albumentations), keypoints or "
                              "mask (labels: mask image files, relative to the labels file), or a JSON object of "
                              "albumentations Compose arguments, e.g. '{\"bbox_params\": {\"format\": \"coco\", "
                              "\"label_fields\": [\"labels\"]}}' (each label then a dict of targets)")
        sub.add_argument("--rotate-method", choices=_ROTATE_METHODS, default="largest_box",
                         help="how a rotated box is enclosed: largest_box, or ellipse (tighter for round objects)")

    search = commands.add_parser("search", help="search randomization boundaries into the analysis file")
    model_options(search)
    search.add_argument("--step", type=float, default=0.05, help="intensity step (fraction or percent)")
    search.add_argument("--cache", default="analysis.json", help="analysis file (resumed if present)")
    search.add_argument("--strategy", choices=_STRATEGIES, default="auto",
                        help="auto (default): grid below 2,000 image x augmentation pairs, guided from there; "
                             "grid: every intensity; adaptive: coarse walk + bisection (~1/3 of the calls); "
                             "guided: bisection by where earlier images failed (~3 calls per pair)")
    search.add_argument("--grid-sample", type=_count_or_share, default=None,
                        help="adaptive/guided: images measured on the whole grid, a count (32) or a share (default: "
                             "0.1 adaptive; 4 images or 2 %% guided)")
    search.add_argument("--workers", type=int, default=None, help="render worker processes (default: automatic)")
    search.add_argument("--dask-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to try to reach the Dask scheduler (default 30)")
    search.add_argument("--dask", metavar="SCHEDULER", help="search on a Dask cluster (e.g. tcp://host:8786); "
                        "--predict must be importable on its workers")
    search.set_defaults(run=_command_search)

    evaluate = commands.add_parser("evaluate", help="run the model on images and compare with labels")
    model_options(evaluate)
    evaluate.set_defaults(run=_command_evaluate)
    report = commands.add_parser("report", help="render the analysis as an offline HTML report")
    report.add_argument("--cache", default="analysis.json", help="analysis file to render")
    report.add_argument("--html-dir", default="analytics")
    report.add_argument("--predict", help="package.module:function, to caption sweep frames with outputs")
    report.add_argument("--batch-size", type=int, default=None)
    report.add_argument("--predict-input", choices=["auto", "array", "filename"], default="auto")
    report.add_argument("--torch-model", help="package.module:factory returning a torch model, for Grad-CAM")
    report.add_argument("--target-layer", nargs="+", default=[], help="dotted layer name(s), e.g. features.6")
    report.add_argument("--cam-method", default="GradCAM")
    registered(report)
    report.add_argument("--open", action="store_true", help="open the report in a browser")
    report.set_defaults(run=_command_report)

    synthesize = commands.add_parser("synthesize", help="write synthetic images under one realism knob")
    model_options(synthesize)
    synthesize.add_argument("--cache", default="analysis.json", help="analysis file from a search")
    synthesize.add_argument("--realism", type=float, default=0.5)
    synthesize.add_argument("--count", type=int, default=None, help="images to add (default: one per source)")
    synthesize.add_argument("--total", action="store_true", help="--count is the total wanted in the folder")
    synthesize.add_argument("--min-augmentations", type=int, default=3)
    synthesize.add_argument("--max-augmentations", type=int, default=8)
    synthesize.add_argument("--min-diff-error", type=float, default=0.0)
    synthesize.add_argument("--max-diff-error", type=float, default=1.0)
    synthesize.add_argument("--output-dir", default="generated")
    synthesize.add_argument("--perceptual-ceiling", action="store_true", help=_CEILING_HELP)
    synthesize.set_defaults(run=_command_synthesize)

    policy = commands.add_parser("policy", help="save the sampling policy at a realism (for a training transform)")
    policy.add_argument("--cache", default="analysis.json", help="analysis file from a search")
    policy.add_argument("--realism", type=float, default=0.5)
    policy.add_argument("--augmentations", nargs="+", metavar="NAME", help="default: all searched")
    registered(policy)
    policy.add_argument("--min-augmentations", type=int, default=3)
    policy.add_argument("--max-augmentations", type=int, default=8)
    policy.add_argument("--out", default="policy.json", help="policy file to write (default: %(default)s)")
    policy.add_argument("--perceptual-ceiling", action="store_true", help=_CEILING_HELP)
    policy.set_defaults(run=_command_policy)

    comparing = commands.add_parser("compare", help="compare analyses of two or more models (baseline first)")
    comparing.add_argument("analyses", nargs="+", metavar="ANALYSIS", help="analysis files, the baseline first")
    comparing.add_argument("--names", nargs="+", metavar="NAME", help="one name per analysis (default: the files)")
    comparing.add_argument("--html-dir", default="compare", help="offline comparison page (default: %(default)s)")
    comparing.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    registered(comparing)
    comparing.set_defaults(run=_command_compare)

    catalogue = commands.add_parser("catalogue", help="print the augmentation catalogue as a Markdown table")
    registered(catalogue)
    catalogue.set_defaults(run=_command_catalogue)
    schema = commands.add_parser("schema", help="print the JSON Schema of analysis.json, a manifest line or a policy")
    schema.add_argument("kind", choices=["analysis", "analysis-document", "manifest", "policy"])
    schema.set_defaults(run=lambda args: print(json.dumps(file_schema(args.kind), indent=1)) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python augment.py {search,evaluate,...} ...``; returns the exit status.

    Bad arguments and files are ``error: ...`` with status 2, a file that cannot be written
    (a full disk, no permission) ``error: ...`` with status 1; an exception raised by the
    user's own model keeps its traceback (with a note naming the image).

    >>> main(["catalogue"])                         # doctest: +ELLIPSIS
    | name | group | albumentations transform | at intensity 1 |
    ...
    0
    """
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except AugmentError as exc:
        print(f"error: {exc}", *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python augment.py catalogue | head`: the reader stopped; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's documented recipe)
        return 1
    except OSError as exc:
        if exc.filename is None:
            raise
        message = exc.strerror if (exc.strerror or "").startswith("cannot ") else f"{exc.strerror}: {exc.filename}"
        print(f"error: {message}", *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished work is in the analysis file; run the same command to resume",
              file=sys.stderr)
        return 130


###############################################################################
# Run as a script
###############################################################################

if _RUN_AS_SCRIPT:
    sys.exit(main())
