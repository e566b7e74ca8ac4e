"""The command line: python augment.py {search,report,synthesize,evaluate,policy,compare,catalogue}.
Add a CLI command here."""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import importlib
import importlib.util
import json
import os
import shlex
import sys
import threading
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import Analysis
from .augmenter import ImageAugmenter
from .catalogue import CATALOGUE, Augmentation, _check_augmentation_name
from .compare import compare
from .custom import _adopt
from .files import _write_atomic
from .formats import file_schema
from .helpers import ALL_AUGMENTATIONS, AugmentError, _format_intensity, _json_failure, _jsonable, _truncate
from .images import MAX_IMAGE_PIXELS
from .labels import _ROTATE_METHODS
from .probes import _STRATEGIES
from .synthesis import read_manifest

_FILE_MODULES: dict[str, types.ModuleType] = {}  # path/to/file.py -> the module, run once per process
_FILE_MODULES_LOCK = threading.Lock()


def _import_object(spec: str, parameter: str) -> Any:
    """``package.module:attribute`` (or ``path/to/file.py:attribute``) to the object."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AugmentError(f"{parameter} must look like package.module:function, got {spec!r}")
    if os.getcwd() not in sys.path:  # last: a file of the user's never shadows augment or its packages
        sys.path.append(os.getcwd())
    try:
        if module_name.endswith(".py"):
            path = os.path.abspath(module_name)
            with _FILE_MODULES_LOCK:  # threads of one worker run the file once
                if path not in _FILE_MODULES:
                    spec_obj = importlib.util.spec_from_file_location(Path(module_name).stem, path)
                    module = importlib.util.module_from_spec(spec_obj)
                    spec_obj.loader.exec_module(module)
                    _FILE_MODULES[path] = module
            module = _FILE_MODULES[path]
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as exc:
        raise AugmentError(f"{parameter}: cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AugmentError(f"{parameter}: module {module_name!r} has no attribute {attribute!r}") from None


class _Imported:
    """A callable named on the command line (``module:function`` or ``file.py:function``) that
    travels by its name: each process (render workers, Dask workers) imports it on first use.

    Sending the function itself would pickle a file-module's function by value, with whatever
    its module holds (a model cache's lock), and fail; a name is a few bytes. A relative file
    is made absolute, so a worker on the same file system finds it from any folder.
    """

    def __init__(self, spec: str, parameter: str):
        module_name, colon, attribute = spec.partition(":")
        self.spec = (os.path.abspath(module_name) if module_name.endswith(".py") else module_name) + colon + attribute
        self.parameter = parameter
        self._target = _import_object(self.spec, parameter)  # a bad name fails here, not in a worker
        self.__name__ = getattr(self._target, "__name__", attribute)

    def __getstate__(self) -> dict:
        return {"spec": self.spec, "parameter": self.parameter, "__name__": self.__name__}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _target=None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._target is None:
            self._target = _import_object(self.spec, self.parameter)
        return self._target(*args, **kwargs)


def _expand_images(patterns: Sequence[str]) -> list[str]:
    """Every file the patterns name, in one sorted order (labels given as a list follow it).

    A pattern that names an existing file is that file, even if it holds glob characters
    (``a[1].png``); a file matched by two patterns is listed once.
    """
    files: set[str] = set()
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        else:
            matches = [m for m in glob.glob(pattern, recursive=True) if not os.path.isdir(m)]
        if not matches:
            if os.path.isdir(pattern):
                raise AugmentError(f"--images {pattern} is a folder; give a pattern such as "
                                   f"'{os.path.join(pattern, '*.png')}'")
            if not any(ch in pattern for ch in "*?["):
                raise AugmentError(f"--images: image file not found: {pattern}")
            raise AugmentError(f"--images pattern {pattern!r} matches no file")
        files.update(matches)
    return sorted(files)


def _read_labels(path: str | None, files: Sequence[str]) -> list | None:
    """A JSON list (1-to-1 with the sorted files) or an object keyed by file name or base name."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError) as exc:
        raise AugmentError(f"cannot read --labels {path}: {_json_failure(exc)}") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        labels = []
        base_names = collections.Counter(os.path.basename(name) for name in files)
        for name in files:
            for key in (name, os.path.abspath(name), os.path.basename(name)):
                if key in data:
                    if key == os.path.basename(name) and base_names[key] > 1:
                        raise AugmentError(f"--labels {path} keys {key!r} by base name, but {base_names[key]} "
                                           f"images are called that; key them by path")
                    labels.append(data[key])
                    break
            else:
                raise AugmentError(f"--labels {path} has no label for image {name}")
        return labels
    raise AugmentError(f"--labels {path} must hold a JSON list or object, got {type(data).__name__}")


def format_summary(analysis: Analysis) -> str:
    """A plain-text table: per augmentation, the intensities at which 10/50/90 % of outputs changed.

    >>> print(format_summary(analysis))          # doctest: +SKIP
    augmentation          safe   10%   50%   90%  50% 95% CI    50% sev  (intensity at which that share of 300 ...)
    Brighten              0.05  0.15  0.25  0.65  [0.25, 0.30]      1.9
    """
    severities = any(curve.perceptual_strength is not None for curve in analysis.curves.values())
    lines = [f"{'augmentation':<20} {'safe':>5} {'10%':>5} {'50%':>5} {'90%':>5}  {'50% 95% CI':<12}  "
             + (f"{'50% sev':>7}  " if severities else "") + f"(intensity at which that share of "
             f"{len(analysis.images) - len(analysis.skipped)} images changed output; CI: bootstrap over images"
             + ("; sev: the 50 % intensity in ImageNet-C severity units, + geometric (a pixel distance reads it "
                "high)" if severities else "") + ")"]
    for name, summary in analysis.summaries().items():
        cells = [_format_intensity(v) for v in (summary.safe_intensity, summary.intensity_at_10,
                                                summary.intensity_at_50, summary.intensity_at_90)]
        interval = summary.interval_text("intensity_at_50")
        line = f"{name:<20} " + " ".join(f"{cell:>5}" for cell in cells) + f"  {interval:<12}"
        if severities:
            curve = analysis.curves[name]
            severity = curve.severity_at(summary.intensity_at_50)
            text = ("-" if curve.perceptual_strength is None else f"{severity:.1f}" if severity is not None
                    else f">{curve.perceptual_strength[-1]:.1f}") + ("+" if CATALOGUE[name].geometric else "")
            line += f"  {text:>7}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def catalogue_markdown(names: Iterable[str] | None = None) -> str:
    """The README's catalogue table, made from the catalogue itself so the two cannot disagree
    (``names``: those entries only; default every one, registered ones included).

    >>> catalogue_markdown().splitlines()[2]
    '| Brighten | color | `RandomBrightnessContrast` | brightness +1.0 (+255: white) |'
    """
    lines = ["| name | group | albumentations transform | at intensity 1 |", "|---|---|---|---|"]
    wanted = None if names is None else {_check_augmentation_name(name) for name in names}
    for entry in (e for e in CATALOGUE.values() if wanted is None or e.name in wanted):
        lines.append(f"| {entry.name} | {entry.group} | `{entry.transform}` | {entry.at_full_intensity} |")
    return "\n".join(lines)


def _command_catalogue(args: argparse.Namespace) -> int:
    _registered_from(args)
    print(catalogue_markdown())
    return 0


def _registered_from(args: argparse.Namespace) -> list[str]:
    """Register the augmentations named by --augmentations-from module:NAME (an Augmentation,
    or a list of them, as register_augmentation returns); returns their names."""
    names: list[str] = []
    for spec in getattr(args, "augmentations_from", None) or []:
        value = _import_object(spec, "--augmentations-from")
        entries = list(value) if isinstance(value, (list, tuple)) else [value]
        if not entries or not all(isinstance(entry, Augmentation) for entry in entries):
            raise AugmentError(f"--augmentations-from {spec} must name what register_augmentation returned (an "
                               f"Augmentation, or a list of them), got {type(value).__name__}")
        _adopt(entries)
        names += [entry.name for entry in entries if entry.name not in names]
    return names


def _augmenter_from_args(args: argparse.Namespace) -> ImageAugmenter:
    predict = _Imported(args.predict, "--predict") if args.predict else None
    diff_error = _Imported(args.diff_error, "--diff-error") if getattr(args, "diff_error", None) else None
    custom = _registered_from(args)
    label_format = args.label_format
    # ml-infinite-image-augment's dict form, as JSON
    if label_format is not None and label_format.lstrip().startswith("{"):
        try:
            label_format = json.loads(label_format)
        except (ValueError, RecursionError) as exc:
            raise AugmentError(f"--label-format {_truncate(label_format, 80)!r} is not valid JSON: "
                               f"{_json_failure(exc)}") from None
    return ImageAugmenter(predict, diff_error, augmentations=args.augmentations or ALL_AUGMENTATIONS + custom,
                          label_format=label_format, seed=args.seed, batch_size=args.batch_size,
                          predict_input=args.predict_input, failure_threshold=args.failure_threshold,
                          on_error=args.on_error, max_image_pixels=args.max_image_pixels, model_id=args.model_id,
                          rotate_method=args.rotate_method,
                          perceptual_ceiling=bool(getattr(args, "perceptual_ceiling", False)))


def _inputs(args: argparse.Namespace) -> tuple[list[str], list | None]:
    """The images and labels a command works on; ``--dry-run`` prints which file got which label."""
    files = _expand_images(args.images)
    labels = _read_labels(args.labels, files)
    if labels is not None and args.label_format == "mask":  # mask files, relative to the labels file
        folder = os.path.dirname(os.path.abspath(args.labels))
        labels = [os.path.join(folder, label) if isinstance(label, str) else label for label in labels]
    if labels is not None and len(labels) != len(files):
        raise AugmentError(f"--labels {args.labels} has {len(labels)} labels for {len(files)} images (a list "
                           f"follows the images' sorted order; --dry-run lists it)")
    if args.dry_run:
        for k, name in enumerate(files):
            print(f"{k}\t{name}" + ("" if labels is None else f"\t{json.dumps(_jsonable(labels[k]))}"))
        print(f"{len(files)} images" + ("" if labels is None else ", with labels") + "; dry run: nothing else done")
        raise SystemExit(0)
    return files, labels


def _command_search(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    options = {"strategy": args.strategy, "grid_sample": args.grid_sample, "num_workers": args.workers}
    with contextlib.ExitStack() as stack:
        if args.dask:
            from distributed import Client

            if not 0 < args.dask_timeout <= 3600:  # (nan fails this too)
                raise AugmentError(f"--dask-timeout must be a number of seconds in (0, 3600], got {args.dask_timeout}")
            try:
                client = stack.enter_context(Client(args.dask, timeout=args.dask_timeout))
            except (OSError, TimeoutError) as exc:
                raise AugmentError(f"cannot connect to the Dask scheduler at {args.dask} within "
                                   f"{args.dask_timeout:g} s ({exc}): is it running, and is the address right "
                                   f"(tcp://host:8786)?") from None
            options["executor"] = client.get_executor()
        analysis = augmenter.search_randomization_boundaries(files, labels, args.step, args.cache, **options)
    print(format_summary(analysis))
    print(f"\nanalysis written to {args.cache} ({augmenter.predict_calls} predictions this run)")
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    if labels is None:
        raise AugmentError("evaluate needs --labels")
    result = augmenter.evaluate(files, labels)
    shown = {k: v for k, v in result.items() if k not in ("diff_errors", "differing_outputs")}
    print(json.dumps(shown, indent=2))
    return 0


def _command_report(args: argparse.Namespace) -> int:
    if args.target_layer and not args.torch_model:
        raise AugmentError("--target-layer needs --torch-model (the model whose layers they are)")
    if args.torch_model and not args.target_layer:
        raise AugmentError("--torch-model needs --target-layer (e.g. features.6) for Grad-CAM")
    predict = _import_object(args.predict, "--predict") if args.predict else None
    custom = _registered_from(args)
    augmenter = ImageAugmenter(predict, augmentations=ALL_AUGMENTATIONS + custom, batch_size=args.batch_size,
                               predict_input=args.predict_input)
    augmenter.load_analysis(args.cache)
    model = _import_object(args.torch_model, "--torch-model")() if args.torch_model else None
    layers = [_resolve_layer(model, name) for name in args.target_layer] if model is not None else None
    path = augmenter.render_boundaries(args.html_dir, torch_model=model, target_layers=layers,
                                       cam_method=args.cam_method)
    print(f"report written: {os.path.abspath(path)}")
    if args.open:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri())
    return 0


def _command_synthesize(args: argparse.Namespace) -> int:
    augmenter = _augmenter_from_args(args)
    files, labels = _inputs(args)
    augmenter.load_analysis(args.cache)
    manifest = os.path.join(args.output_dir, "manifest.jsonl")
    before = len(read_manifest(manifest)) if os.path.isfile(manifest) else 0
    count = len(files) if args.count is None else args.count
    try:
        made, _ = augmenter.synthesize_more(
            files, labels, realism=args.realism, count=count, min_random_augmentations=args.min_augmentations,
            max_random_augmentations=args.max_augmentations, min_predicted_diff_error=args.min_diff_error,
            max_predicted_diff_error=args.max_diff_error, output_dir=args.output_dir, count_is_total=args.total)
    except KeyboardInterrupt:
        # Re-running the same command would add another --count; this one finishes the job.
        total = count if args.total else before + count
        argv = list(args.argv)
        if "--count" in argv:
            argv[argv.index("--count") + 1] = str(total)
        else:
            argv += ["--count", str(total)]
        if "--total" not in argv:
            argv.append("--total")
        print(f"interrupted: the images written so far are kept in {args.output_dir}; to finish the "
              f"{total} images, run:\n  python augment.py {shlex.join(argv)}", file=sys.stderr)
        return 130
    print(f"{len(made)} synthetic images written to {args.output_dir} (manifest.jsonl, __preview.html)")
    return 0


_CEILING_HELP = ("bound realism's limits by 3 - 2 x realism ImageNet-C severity units too (the analysis' perceptual "
                 "strengths; geometric augmentations keep the model's limits)")


def _command_policy(args: argparse.Namespace) -> int:
    custom = _registered_from(args)
    augmenter = ImageAugmenter(augmentations=args.augmentations or ALL_AUGMENTATIONS + custom,
                               perceptual_ceiling=args.perceptual_ceiling)
    augmenter.load_analysis(args.cache)
    missing = [name for name in augmenter.augmentations if name not in augmenter.analysis.curves]
    if args.augmentations and missing:
        raise AugmentError(f"{', '.join(missing)} not searched in {args.cache} (it has "
                           f"{', '.join(augmenter.analysis.curves)})")
    policy = augmenter._drawable_policy(args.realism, args.min_augmentations, args.max_augmentations)
    policy.save(args.out)
    limits = ", ".join(f"{name} {limit:g}" for name, limit in policy.limits.items())
    ceiling = ("" if policy.severity_ceiling is None else
               f", perceptual ceiling: severity {policy.severity_ceiling:g}")
    print(f"policy written to {args.out} (realism {args.realism:g}{ceiling}; largest intensities: {limits})")
    return 0


def _command_compare(args: argparse.Namespace) -> int:
    _registered_from(args)
    if args.names is not None and len(args.names) != len(args.analyses):
        raise AugmentError(f"--names gives {len(args.names)} names for {len(args.analyses)} analyses")
    names = args.names or [os.fspath(path) for path in args.analyses]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise AugmentError(f"two analyses are named {', '.join(map(repr, repeated))}: " + (
            "give each its own name with --names" if args.names else
            "to compare one file with itself (two searches of one model), give them names: --names first second"))
    comparison = compare(dict(zip(args.names, args.analyses)) if args.names else args.analyses,
                         html_dir=args.html_dir)
    print(comparison.format())
    if args.json is not None:
        _write_atomic(args.json, json.dumps(comparison.to_json(), indent=1))
    print(f"comparison page written: open {os.path.abspath(comparison.page)}")
    return 0


def _resolve_layer(model: Any, dotted: str) -> Any:
    """``features.6`` -> model.features[6]."""
    layer = model
    for part in dotted.split("."):
        try:
            layer = layer[int(part)] if part.isdigit() else getattr(layer, part)
        except (AttributeError, IndexError, TypeError):
            raise AugmentError(f"--target-layer {dotted!r}: the model has no {part!r} there") from None
    return layer


def _count_or_share(text: str) -> int | float:
    """``--grid-sample``: "32" is a count of images, "0.1" a share of them."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augment.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"augment.py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def registered(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--augmentations-from", nargs="+", metavar="MODULE:NAME", default=[],
                         help="your own augmentations: what register_augmentation returned (one or a list)")

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--predict", help="package.module:function (or file.py:function); "
                                           "omit for the model-free matcher")
        sub.add_argument("--diff-error", help="package.module:function returning [0, 1]")
        sub.add_argument("--images", nargs="+", required=True,
                         help="image files or glob patterns (all matches sorted into one order)")
        sub.add_argument("--dry-run", action="store_true",
                         help="list each image with its label, in the order used, and stop")
        sub.add_argument("--labels", help="JSON list (sorted file order) or object keyed by file name")
        sub.add_argument("--augmentations", nargs="+", metavar="NAME", help="default: all 24 and those registered")
        registered(sub)
        sub.add_argument("--batch-size", type=int, default=None,
                         help="predict takes a list of up to N images (default: one image per call)")
        sub.add_argument("--predict-input", choices=["auto", "array", "filename"], default="auto")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--failure-threshold", type=float, default=0.5)
        sub.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                         help="skip: record images the model fails on and go on (default: stop)")
        sub.add_argument("--model-id", help="the model's version (e.g. a weights hash): a new one re-searches")
        sub.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS,
                         help="larger images are skipped with a warning (default: %(default)s)")
        sub.add_argument("--label-format", default=None,
                         help="labels and outputs are boxes (pascal_voc, coco, yolo, albumentations), keypoints or "
                              "mask (labels: mask image files, relative to the labels file), or a JSON object of "
                              "albumentations Compose arguments, e.g. '{\"bbox_params\": {\"format\": \"coco\", "
                              "\"label_fields\": [\"labels\"]}}' (each label then a dict of targets)")
        sub.add_argument("--rotate-method", choices=_ROTATE_METHODS, default="largest_box",
                         help="how a rotated box is enclosed: largest_box, or ellipse (tighter for round objects)")

    search = commands.add_parser("search", help="search randomization boundaries into the analysis file")
    model_options(search)
    search.add_argument("--step", type=float, default=0.05, help="intensity step (fraction or percent)")
    search.add_argument("--cache", default="analysis.json", help="analysis file (resumed if present)")
    search.add_argument("--strategy", choices=_STRATEGIES, default="auto",
                        help="auto (default): grid below 2,000 image x augmentation pairs, guided from there; "
                             "grid: every intensity; adaptive: coarse walk + bisection (~1/3 of the calls); "
                             "guided: bisection by where earlier images failed (~3 calls per pair)")
    search.add_argument("--grid-sample", type=_count_or_share, default=None,
                        help="adaptive/guided: images measured on the whole grid, a count (32) or a share (default: "
                             "0.1 adaptive; 4 images or 2 %% guided)")
    search.add_argument("--workers", type=int, default=None, help="render worker processes (default: automatic)")
    search.add_argument("--dask-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to try to reach the Dask scheduler (default 30)")
    search.add_argument("--dask", metavar="SCHEDULER", help="search on a Dask cluster (e.g. tcp://host:8786); "
                        "--predict must be importable on its workers")
    search.set_defaults(run=_command_search)

    evaluate = commands.add_parser("evaluate", help="run the model on images and compare with labels")
    model_options(evaluate)
    evaluate.set_defaults(run=_command_evaluate)
    report = commands.add_parser("report", help="render the analysis as an offline HTML report")
    report.add_argument("--cache", default="analysis.json", help="analysis file to render")
    report.add_argument("--html-dir", default="analytics")
    report.add_argument("--predict", help="package.module:function, to caption sweep frames with outputs")
    report.add_argument("--batch-size", type=int, default=None)
    report.add_argument("--predict-input", choices=["auto", "array", "filename"], default="auto")
    report.add_argument("--torch-model", help="package.module:factory returning a torch model, for Grad-CAM")
    report.add_argument("--target-layer", nargs="+", default=[], help="dotted layer name(s), e.g. features.6")
    report.add_argument("--cam-method", default="GradCAM")
    registered(report)
    report.add_argument("--open", action="store_true", help="open the report in a browser")
    report.set_defaults(run=_command_report)

    synthesize = commands.add_parser("synthesize", help="write synthetic images under one realism knob")
    model_options(synthesize)
    synthesize.add_argument("--cache", default="analysis.json", help="analysis file from a search")
    synthesize.add_argument("--realism", type=float, default=0.5)
    synthesize.add_argument("--count", type=int, default=None, help="images to add (default: one per source)")
    synthesize.add_argument("--total", action="store_true", help="--count is the total wanted in the folder")
    synthesize.add_argument("--min-augmentations", type=int, default=3)
    synthesize.add_argument("--max-augmentations", type=int, default=8)
    synthesize.add_argument("--min-diff-error", type=float, default=0.0)
    synthesize.add_argument("--max-diff-error", type=float, default=1.0)
    synthesize.add_argument("--output-dir", default="generated")
    synthesize.add_argument("--perceptual-ceiling", action="store_true", help=_CEILING_HELP)
    synthesize.set_defaults(run=_command_synthesize)

    policy = commands.add_parser("policy", help="save the sampling policy at a realism (for a training transform)")
    policy.add_argument("--cache", default="analysis.json", help="analysis file from a search")
    policy.add_argument("--realism", type=float, default=0.5)
    policy.add_argument("--augmentations", nargs="+", metavar="NAME", help="default: all searched")
    registered(policy)
    policy.add_argument("--min-augmentations", type=int, default=3)
    policy.add_argument("--max-augmentations", type=int, default=8)
    policy.add_argument("--out", default="policy.json", help="policy file to write (default: %(default)s)")
    policy.add_argument("--perceptual-ceiling", action="store_true", help=_CEILING_HELP)
    policy.set_defaults(run=_command_policy)

    comparing = commands.add_parser("compare", help="compare analyses of two or more models (baseline first)")
    comparing.add_argument("analyses", nargs="+", metavar="ANALYSIS", help="analysis files, the baseline first")
    comparing.add_argument("--names", nargs="+", metavar="NAME", help="one name per analysis (default: the files)")
    comparing.add_argument("--html-dir", default="compare", help="offline comparison page (default: %(default)s)")
    comparing.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON")
    registered(comparing)
    comparing.set_defaults(run=_command_compare)

    catalogue = commands.add_parser("catalogue", help="print the augmentation catalogue as a Markdown table")
    registered(catalogue)
    catalogue.set_defaults(run=_command_catalogue)
    schema = commands.add_parser("schema", help="print the JSON Schema of analysis.json, a manifest line or a policy")
    schema.add_argument("kind", choices=["analysis", "analysis-document", "manifest", "policy"])
    schema.set_defaults(run=lambda args: print(json.dumps(file_schema(args.kind), indent=1)) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python augment.py {search,evaluate,...} ...``; returns the exit status.

    Bad arguments and files are ``error: ...`` with status 2, a file that cannot be written
    (a full disk, no permission) ``error: ...`` with status 1; an exception raised by the
    user's own model keeps its traceback (with a note naming the image).

    >>> main(["catalogue"])                         # doctest: +ELLIPSIS
    | name | group | albumentations transform | at intensity 1 |
    ...
    0
    """
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except AugmentError as exc:
        print(f"error: {exc}", *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python augment.py catalogue | head`: the reader stopped; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's documented recipe)
        return 1
    except OSError as exc:
        if exc.filename is None:
            raise
        message = exc.strerror if (exc.strerror or "").startswith("cannot ") else f"{exc.strerror}: {exc.filename}"
        print(f"error: {message}", *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished work is in the analysis file; run the same command to resume",
              file=sys.stderr)
        return 130
