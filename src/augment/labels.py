"""Labels that follow the pixels: label formats (boxes, keypoints, masks, positional outputs),
moving them with albumentations' targets (augment_with_labels)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .catalogue import _albumentations, _check_augmentation_name, _check_intensity, _transform
from .helpers import AugmentError, _as_comparable, _as_rgb, _is_number, _jsonable, _plain, _truncate

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
