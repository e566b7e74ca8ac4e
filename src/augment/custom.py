"""Your own augmentations: register_augmentation, the probe that checks a definition, and the digest
that tells a cached search whether the definition changed."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .catalogue import CATALOGUE, Augmentation, _albumentations, _thread_transform
from .helpers import AugmentError, _made_on_first_use, _truncate

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
