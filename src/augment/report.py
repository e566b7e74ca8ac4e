"""The report: the offline HTML page of an analysis (curves, thresholds, failure examples, sliders).
Add a report section here."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__
from .analysis import Analysis, AugmentationCurve, _or_two
from .catalogue import CATALOGUE, augment_image, augmentation_seed
from .files import _lock_for_folder, _own_folder, _remove_temporaries, _temporary_prefix, _write_atomic
from .gradcam import _captioned, _display_size, _write_gif, gradcam_frames
from .helpers import AugmentError, _format_intensity, _natural_key, _printable, _truncate, _unique_file_name
from .images import (
    PredictFailure,
    _checked_diff,
    _describe_output,
    _output_view,
    _png_bytes,
    _Predictor,
    _Source,
    _sources,
    _view_mask,
)
from .labels import _LabelFormat, _move_with_pixels
from .perceptual import SEVERITY_CALIBRATION
from .pipeline import _ModelSpec
from .rows import _KeptImages
from .search import _STRENGTH_IMAGES
from .stats import CurveSummary, _first_failures


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
