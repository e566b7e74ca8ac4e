"""Comparing models: per augmentation, how the first failures moved between two or more analyses
(compare, Comparison, AugmentationShift) and the compare page."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .analysis import Analysis, load_analysis
from .catalogue import CATALOGUE, augment_image, augmentation_seed
from .files import _lock_for_folder, _output_folder, _own_folder, _remove_temporaries, _temporary_prefix, _write_atomic
from .gradcam import _display_size
from .helpers import AugmentError, _digest, _format_intensity, _natural_key, _printable, _truncate, _unique_file_name
from .images import _Source
from .report import _class_colour, _missing_hint, _report_sources, _save_png, _svg_plot
from .stats import _BOOTSTRAP_RESAMPLES, _MIN_IMAGES, CurveSummary, _bootstrap_counts, _percentile_interval

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
