"""Helpers used everywhere: errors, text and names, numbers, plain values of outputs and labels,
digests and seeds, pixel conversions, and the public constants (augmentation names, format versions)."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import numbers
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

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
