"""The training transform: RealismTransform, an albumentations transform that draws from a policy
in every call (made on first use: it subclasses albumentations' BaseCompose)."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .catalogue import CATALOGUE, _albumentations, _apply_steps_to_image, _thread_transform, _transform
from .custom import _adopt, _custom_entries
from .helpers import (
    ALL_AUGMENTATIONS,
    AugmentError,
    _as_rgb,
    _check_int,
    _check_number,
    _is_tensor,
    _made_on_first_use,
    _to_8_bits,
)
from .images import _WIDE_MODES
from .labels import (
    _ROTATE_METHODS,
    _build_transforms,
    _LabelFormat,
    _move_with_pixels,
    _normal_label_format,
    _target_fields,
)
from .pipeline import _pickle_error
from .policy import SamplingPolicy


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
