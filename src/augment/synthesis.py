"""Synthesis and evaluation: synthesize_more's job (draws, labels, the manifest and its preview),
read_manifest, and evaluating a model on synthesized files."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import _TEMPORARY_PREFIX, _lock_for_folder, _remove_temporaries, _temporary_prefix, _umask, _write_atomic
from .formats import _formats, _validated
from .helpers import AugmentError, _is_number, _json_failure, _jsonable, _printable, _safe_name, _truncate
from .images import PredictFailure, _checked_diff, _describe_output, _png_bytes, _Predictor, _Source
from .labels import _LabelFormat, _move_with_pixels
from .pipeline import _ModelSpec
from .policy import SamplingPolicy, _FilterWindow
from .report import _box_corners


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
