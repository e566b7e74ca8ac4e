"""Loading images and calling the model: load_image, image sources, the predictor (batches, tensors,
failures), output descriptions and views, diff errors (default_diff_error, TemplateMatcher)."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .helpers import (
    AugmentError,
    _as_comparable,
    _as_rgb,
    _digest,
    _to_8_bits,
    _truncate,
    outputs_equal,
)
from .labels import _VIEW_SIDE, _LabelFormat

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
