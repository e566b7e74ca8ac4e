"""Per-image rows: columns kept in memory or released to append-only shard files beside the analysis
(format 4), their rounding, and reading and writing shards."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .files import _write_atomic
from .helpers import AugmentError, _cached

if TYPE_CHECKING:
    from .analysis import Analysis

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
