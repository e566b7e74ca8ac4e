"""The analysis file: AugmentationCurve, ImageRecord and Analysis (load, save, resume, the cache
policy), load_analysis."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shlex
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .catalogue import CATALOGUE, _check_augmentation_name
from .files import _file_path, _lock_for_file, _remove_temporaries, _temporary_prefix, _write_atomic
from .formats import _formats, _validated
from .helpers import (
    _ANALYSIS_FORMAT,
    _ANALYSIS_VERSION,
    _READABLE_VERSIONS,
    _SINGLE_FILE_VERSION,
    AugmentError,
    _json_failure,
    _jsonable,
    _natural_key,
    _truncate,
)
from .images import _describe_output, _Source
from .labels import _LabelFormat
from .perceptual import severity_at_intensity
from .probes import _grid, _SearchSettings
from .rows import (
    _KEPT_IMAGES,
    _MAX_SHARDS,
    _SHARD_DAMAGE,
    _SHARD_NAME,
    _Deferred,
    _open_shard,
    _Rows,
    _rows_folder,
    _ShardColumns,
    _Texts,
    _write_shard,
)
from .stats import CurveSummary, _first_failure_tuple, _first_failures, _Intensity, _summarize


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
