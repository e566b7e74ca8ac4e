"""Does training with realism-tuned augmentation make the digits CNN more robust? A retraining study.

    python examples/digits_robustness.py            # about 40 minutes on 2 cores (5 seeds)
    python examples/digits_robustness.py --quick    # a smoke run (the tests use it)

1. Train the baseline CNN on the real training digits (``--epochs`` epochs, per seed).
2. Search its randomization boundaries (adaptive search on ``--search-images`` training digits).
3. For realism 0.5, 0 and -0.5, retrain with augment.py's online transform
   (``augmenter.transform(realism)``, synthesis's own sampler, a fresh draw every time) on half
   of each batch: the same epochs, batches and optimizer steps as the baseline.
4. Compare with model-blind random augmentation of the same budget, applied the same way:
   torchvision's RandAugment, TrivialAugmentWide and AugMix on half of each batch.
5. Evaluate every model on the held-out digits, clean and corrupted, and report clean accuracy,
   mean corruption error (mCE) and relative mCE as in Hendrycks & Dietterich (2019), with the
   baseline as the reference model (baseline = 100 %), over ``--seeds`` seeds: mean, sample
   standard deviation and a 95 % confidence interval (Student's t), and per-seed wins.
   Three yardsticks:
   - the catalogue's own augmentations at intensities 0.1 ... 0.5 (five severities, each image
     its own seed): in-distribution for the augment.py arms, which train on them;
   - the ImageNet-C corruptions unrelated to any catalogue operation (``UNRELATED``);
   - the ImageNet-C corruptions that are close relatives of catalogue operations (``RELATED``),
     all at severities 1-5, every corruption seeded per image (Hendrycks & Dietterich's code, as
     maintained in ``imagecorruptions-imaug``).
   Augmentations that leave every held-out image unchanged (the colour ones on gray digits) are
   not corruptions and are left out, and named. Relative CE divides by the reference's
   degradation; corruptions that degrade the reference by less than ``RELATIVE_FLOOR`` (mean over
   severities) are left out of relative mCE, and named.

6. Search seed 0's baseline and its best augment.py arm (lowest mCE on the unrelated ImageNet-C
   corruptions, over all seeds) on the same held-out digits and compare them with
   ``augment.compare``: per augmentation, the shift of the mean first-failure intensity with a
   paired bootstrap interval and a verdict, per class, and one digit swept for both models
   (``OUT/compare/index.html``).

Writes ``OUT/results.json``, ``OUT/results.md`` (the tables), ``OUT/results_by_severity.md``
(mean error at each intensity, as plotted), ``OUT/robustness.png`` and
``OUT/robustness_imagenet_c.png`` (error against intensity, before and after) and
``OUT/learning_curves.png``. Every figure depends only on the seeds: not on where the digits or
the outputs live.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402
from examples import digits, digits_model  # noqa: E402

SEVERITIES = [0.1, 0.2, 0.3, 0.4, 0.5]
IMAGENET_C_SEVERITIES = [1, 2, 3, 4, 5]
REALISMS = [0.5, 0.0, -0.5]
RANDOM_POLICIES = ["RandAugment", "TrivialAugmentWide", "AugMix"]
AUGMENTED_SHARE = 0.5  # of each training batch, for augment.py's transform and the random policies alike
# ImageNet-C corruptions that are close relatives of a catalogue operation (MotionBlur, Brighten,
# Contrast/Decontrast, ElasticTransform, Downscale, GaussianBlur); the other nine are not.
RELATED = ["defocus_blur", "motion_blur", "brightness", "contrast", "elastic_transform", "pixelate"]
RELATIVE_FLOOR = 0.02  # relative CE needs the reference degraded by >= 2 points of error (mean over severities)


def corrupted_test_sets(images: np.ndarray, names: list[str]) -> dict[tuple[str, float], np.ndarray]:
    """Each held-out image under each augmentation and severity (a fixed, seeded corruption)."""
    return {(name, s): np.stack([augment.augment_image(image, name, s, augment.augmentation_seed(image, name, seed=k))
                                 for k, image in enumerate(images)])
            for name in names for s in SEVERITIES}


def imagenet_c_test_sets(images: np.ndarray, names: list[str]) -> dict[tuple[str, int], np.ndarray]:
    """Each held-out image under each ImageNet-C corruption and severity 1-5 (seeded per image)."""
    import inspect
    import zlib

    from imagecorruptions import corrupt, corruptions

    sets = {}
    for name in names:
        # Some corruptions draw from their own generator and take seed=; the others use numpy's global one.
        takes_seed = "seed" in inspect.signature(getattr(corruptions, name)).parameters
        for severity in IMAGENET_C_SEVERITIES:
            corrupted = []
            for k, image in enumerate(images):
                seed = zlib.crc32(f"imagenet-c|{k}|{name}|{severity}".encode())
                np.random.seed(seed)
                options = {"seed": seed} if takes_seed else {}
                corrupted.append(np.asarray(corrupt(image, corruption_name=name, severity=severity, **options),
                                            np.uint8))
            sets[name, severity] = np.stack(corrupted)
    return sets


def corruptions(images: np.ndarray, corrupted: dict, names: list[str]) -> tuple[list[str], list[str]]:
    """(names that change at least one held-out image at some severity, names that change none)."""
    changes = [name for name in names if any(not np.array_equal(corrupted[name, s], images) for s in SEVERITIES)]
    return changes, [name for name in names if name not in changes]


def errors_of(model, images: np.ndarray, labels: np.ndarray) -> float:
    predicted = digits_model.predict_probabilities(list(images), model).argmax(axis=1)
    return float(np.mean(predicted != labels))


def evaluate(model, clean: np.ndarray, labels: np.ndarray, corrupted: dict, imagenet_c: dict) -> dict:
    return {"clean": errors_of(model, clean, labels),
            "corrupted": {f"{name}@{s}": errors_of(model, images, labels) for (name, s), images in corrupted.items()},
            "imagenet_c": {f"{name}@{s}": errors_of(model, images, labels)
                           for (name, s), images in imagenet_c.items()}}


def corruption_errors(result: dict, reference: dict, names: list[str], key: str = "corrupted",
                      severities: list = SEVERITIES) -> tuple[float, float]:
    """(mCE, relative mCE) of ``result`` against ``reference`` (Hendrycks & Dietterich 2019).

    Relative CE divides by the reference's degradation (corrupted minus clean error); a
    corruption that degrades the reference by less than RELATIVE_FLOOR on average over its
    severities has no relative CE and is left out of that mean (a near-zero denominator makes
    the ratio noise: Sharpen's swung from -660 % to +1080 % between seeds).
    """
    ce, rce = [], []
    for name in names:
        errors = [result[key][f"{name}@{s}"] for s in severities]
        base = [reference[key][f"{name}@{s}"] for s in severities]
        ce.append(sum(errors) / sum(base) if sum(base) > 0 else 1.0)
        degradation = sum(b - reference["clean"] for b in base)
        if degradation >= RELATIVE_FLOOR * len(severities):
            rce.append(sum(e - result["clean"] for e in errors) / degradation)
    return float(np.mean(ce)), float(np.mean(rce)) if rce else float("nan")


def below_floor(reference: dict, names: list[str], key: str, severities: list) -> list[str]:
    """The corruptions left out of relative mCE: they barely degrade the reference."""
    return [name for name in names if sum(reference[key][f"{name}@{s}"] - reference["clean"]
                                          for s in severities) < RELATIVE_FLOOR * len(severities)]


def half_of_each_batch(augment_one, before=None):
    """augment_fn for train_cnn: ``augment_one(image)`` on half of each batch (the same images
    chosen for every method); ``before(rng)`` runs once per batch after the choice."""

    def apply(batch: np.ndarray, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
        out = batch.copy()
        chosen = rng.random(len(batch)) < AUGMENTED_SHARE
        if before is not None:
            before(rng)
        for k in np.flatnonzero(chosen):
            out[k] = augment_one(batch[k])
        return out

    return apply


def random_augment(kind: str):
    """augment_fn for train_cnn: torchvision's policy on half of each batch (uint8 tensors)."""
    import torch
    from torchvision.transforms import v2

    policy = {"RandAugment": v2.RandAugment, "TrivialAugmentWide": v2.TrivialAugmentWide, "AugMix": v2.AugMix}[kind]()

    def one(image: np.ndarray) -> np.ndarray:
        return policy(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)).permute(1, 2, 0).numpy()

    return half_of_each_batch(one, before=lambda rng: torch.manual_seed(int(rng.integers(2**31))))


def spread(values) -> dict:
    """Mean, sample standard deviation (ddof 1) and 95 % confidence interval (Student's t) over seeds."""
    from scipy import stats

    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return {"mean": mean, "sd": float("nan"), "ci": [float("nan"), float("nan")], "n": len(values)}
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values)))
    return {"mean": mean, "sd": sd, "ci": [mean - half, mean + half], "n": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/robustness")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--search-images", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not the figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.search_images = 2, 2, 40
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    images, labels = digits_model.load_digits_rgb()
    train, test = digits_model.train_test_indices(len(images))
    if args.quick:
        train, test = train[:200], test[:100]
    names = augment.ALL_AUGMENTATIONS if not args.quick else ["Brighten", "GaussianBlur", "SafeRotate"]
    corrupted = corrupted_test_sets(images[test], names)
    names, unchanged = corruptions(images[test], corrupted, names)
    if unchanged:
        print(f"left out (they change no held-out image): {', '.join(unchanged)}")
    from imagecorruptions import get_corruption_names

    imagenet_names = get_corruption_names("common") if not args.quick else ["gaussian_noise", "zoom_blur",
                                                                           "motion_blur"]
    imagenet_c = imagenet_c_test_sets(images[test], imagenet_names)
    files, truth = digits.write_pngs(images, labels, train, out / "train")

    results: dict[str, list[dict]] = {}
    curves: dict[str, list[list[float]]] = {}
    seconds: dict[str, list[float]] = {}
    first_seed_models: dict[str, object] = {}  # for the compare page

    def train_and_evaluate(method: str, seed: int, augment_fn=None):
        curve: list[float] = []

        def on_epoch(epoch, model):
            curve.append(1 - errors_of(model, images[test], labels[test]))

        began = time.perf_counter()
        model = digits_model.train_cnn(images[train], labels[train], epochs=args.epochs, seed=seed,
                                       augment_fn=augment_fn, on_epoch=on_epoch)
        seconds.setdefault(method, []).append(time.perf_counter() - began)
        results.setdefault(method, []).append(evaluate(model, images[test], labels[test], corrupted, imagenet_c))
        curves.setdefault(method, []).append(curve)
        if seed == 0:
            first_seed_models[method] = model
        print(f"  {method:<22} seed {seed}: clean error {results[method][-1]['clean']:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        return model

    for seed in range(args.seeds):
        print(f"seed {seed}")
        baseline = train_and_evaluate("baseline", seed)
        augmenter = augment.ImageAugmenter(lambda batch, model=baseline: [
            int(k) for k in digits_model.predict_probabilities(batch, model).argmax(axis=1)],
            batch_size=256, seed=seed, progress=False, model_id=f"baseline seed {seed}, {args.epochs} epochs")
        augmenter.search_randomization_boundaries(files[:args.search_images], truth[:args.search_images], 0.05,
                                                  out / f"analysis-seed{seed}.json", strategy="adaptive")
        for realism in REALISMS:
            transform = augmenter.transform(realism, seed=seed)
            transform.policy.save(out / f"policy-seed{seed}-r{realism:g}.json")
            train_and_evaluate(f"augment.py realism {realism:g}", seed, half_of_each_batch(transform))
        for kind in RANDOM_POLICIES:
            train_and_evaluate(kind, seed, random_augment(kind))

    groups = {"catalogue": ("corrupted", names, SEVERITIES),
              "ImageNet-C unrelated": ("imagenet_c", [n for n in imagenet_names if n not in RELATED],
                                       IMAGENET_C_SEVERITIES),
              "ImageNet-C related": ("imagenet_c", [n for n in imagenet_names if n in RELATED], IMAGENET_C_SEVERITIES),
              "ImageNet-C all": ("imagenet_c", imagenet_names, IMAGENET_C_SEVERITIES)}
    groups = {group: spec for group, spec in groups.items() if spec[1]}
    summary = summarize(results, groups)
    summary["left_out_of_relative_mCE"] = {group: below_floor(summary["reference"], group_names, kind, severities)
                                           for group, (kind, group_names, severities) in groups.items()}
    summary["training_seconds"] = {method: float(np.mean(values)) for method, values in seconds.items()}
    lines = tables(summary, groups, args)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    by_severity = []  # what the robustness plots draw, as numbers
    for kind, kind_names, severities, heading in (
            ("corrupted", names, SEVERITIES, "test error by catalogue intensity"),
            ("imagenet_c", imagenet_names, IMAGENET_C_SEVERITIES, "test error by ImageNet-C severity")):
        by_severity += ["", *severity_table(error_by_severity(results, kind, kind_names, severities), severities,
                                            heading)]
    (out / "results_by_severity.md").write_text("\n".join(by_severity[1:]) + "\n")
    (out / "results.json").write_text(json.dumps({
        "rows": summary["rows"], "wins": summary["wins"], "runs": results, "curves": curves,
        "left_out_of_relative_mCE": summary["left_out_of_relative_mCE"],
        "training_seconds": summary["training_seconds"], "groups": {g: spec[1] for g, spec in groups.items()},
        "severities": SEVERITIES, "augmentations": names, "left_out": unchanged, "imagenet_c": imagenet_names,
        "imagenet_c_severities": IMAGENET_C_SEVERITIES, "epochs": args.epochs, "seeds": args.seeds,
        "wall_seconds": time.perf_counter() - started}, indent=1))
    plot(results, curves, names, imagenet_names, out)
    best = best_arm(summary)
    comparison = compare_page({"baseline": first_seed_models["baseline"], best: first_seed_models[best]},
                              images, labels, test[:args.search_images], out, names)
    results_file = out / "results.json"
    results_file.write_text(json.dumps({**json.loads(results_file.read_text()), "compare": comparison.to_json()},
                                       indent=1))
    print("\n" + "\n".join(lines + by_severity))
    print(f"\nseed 0's baseline against {best} on {len(test[:args.search_images])} held-out digits "
          f"(paired):\n" + comparison.format())
    print(f"\n{out / 'results.md'}, {out / 'robustness.png'}, {out / 'robustness_imagenet_c.png'}, "
          f"{out / 'learning_curves.png'}, {comparison.page} ({time.perf_counter() - started:.0f} s)")
    return 0


def best_arm(summary: dict) -> str:
    """The augment.py arm with the lowest mean mCE on the unrelated ImageNet-C corruptions."""
    rows = {r["method"]: r for r in summary["rows"] if r["method"].startswith("augment.py")}
    key = next((k for k in ("ImageNet-C unrelated mCE", "ImageNet-C all mCE") if k in next(iter(rows.values()))),
               "catalogue mCE")
    return min(rows, key=lambda method: (rows[method][key]["mean"], method))


def compare_page(models: dict, images: np.ndarray, labels: np.ndarray, indices, out: Path,
                 names: list[str]) -> augment.Comparison:
    """Search each model (seed 0) on the same held-out digits and write the comparison page."""
    files, truth = digits.write_pngs(images, labels, indices, out / "held-out")
    paths = {}
    for method, model in models.items():
        augmenter = augment.ImageAugmenter(lambda batch, model=model: [
            int(k) for k in digits_model.predict_probabilities(batch, model).argmax(axis=1)],
            augmentations=names, batch_size=256, seed=0, progress=False, model_id=f"{method}, seed 0")
        paths[method] = out / f"held-out-analysis-{method.replace(' ', '-')}.json"
        augmenter.search_randomization_boundaries(files, truth, 0.05, paths[method], strategy="adaptive")
    return augment.compare(paths, html_dir=out / "compare")


def summarize(results: dict, groups: dict) -> dict:
    """Per method: clean accuracy and, per group, mCE and relative mCE over seeds (mean, sd, CI);
    per augment.py arm and model-blind policy: in how many seeds the arm's mCE is lower."""
    baseline_runs = results["baseline"]
    reference = {"clean": float(np.mean([r["clean"] for r in baseline_runs]))} | {
        kind: {key: float(np.mean([r[kind][key] for r in baseline_runs])) for key in baseline_runs[0][kind]}
        for kind in ("corrupted", "imagenet_c")}
    per_seed = {method: {group: np.array([corruption_errors(run, reference, group_names, kind, severities)
                                          for run in runs])
                         for group, (kind, group_names, severities) in groups.items()}
                for method, runs in results.items()}
    rows = []
    for method, runs in results.items():
        row = {"method": method, "clean_accuracy": spread([1 - run["clean"] for run in runs])}
        for group, scores in per_seed[method].items():
            row[f"{group} mCE"] = spread(scores[:, 0])
            row[f"{group} relative mCE"] = spread(scores[:, 1])
            row[f"{group} mCE per seed"] = scores[:, 0].tolist()
        rows.append(row)
    arms = [m for m in results if m.startswith("augment.py")]
    wins = {arm: {other: {group: int(np.sum(per_seed[arm][group][:, 0] < per_seed[other][group][:, 0]))
                          for group in groups}
                  for other in results if other != arm and not other.startswith("augment.py")}
            for arm in arms}
    return {"rows": rows, "wins": wins, "reference": reference}


def cell(stat: dict, percent: bool = True) -> str:
    scale, unit = (100, " %") if percent else (1, "")
    if np.isnan(stat["mean"]):
        return "n/a"
    if np.isnan(stat["sd"]):
        return f"{scale * stat['mean']:.1f}{unit}" if percent else f"{stat['mean']:.3f}"
    digits = 1 if percent else 3
    low, high = (scale * v for v in stat["ci"])
    return (f"{scale * stat['mean']:.{digits}f}{unit} ± {scale * stat['sd']:.{digits}f} "
            f"[{low:.{digits}f}, {high:.{digits}f}]")


def tables(summary: dict, groups: dict, args) -> list[str]:
    """The Markdown the README quotes: mCE, relative mCE, per-seed wins, the targets, the budget."""
    rows, group_names = summary["rows"], list(groups)
    n = rows[0]["clean_accuracy"]["n"]
    lines = [f"mean ± sample sd [95 % CI, Student's t] over {n} seeds; mCE with the baseline = 100 %",
             "", "| method | clean accuracy | " + " | ".join(f"{g} mCE" for g in group_names) + " |",
             "|---" * (len(group_names) + 2) + "|"]
    lines += [f"| {r['method']} | {cell(r['clean_accuracy'], False)} | "
              + " | ".join(cell(r[f"{g} mCE"]) for g in group_names) + " |" for r in rows]
    lines += ["", "| method | " + " | ".join(f"{g} relative mCE" for g in group_names) + " |",
              "|---" * (len(group_names) + 1) + "|"]
    lines += [f"| {r['method']} | " + " | ".join(cell(r[f"{g} relative mCE"]) for g in group_names) + " |"
              for r in rows]
    floor = summary["left_out_of_relative_mCE"]
    lines += ["", f"relative mCE leaves out corruptions that degrade the baseline by < {RELATIVE_FLOOR:g} error "
                  f"(mean over severities): " + "; ".join(f"{g}: {', '.join(v) or 'none'}" for g, v in floor.items())]
    lines += ["", f"seeds (of {n}) in which the augment.py arm has the lower mCE, per group",
              "", "| augment.py arm | against | " + " | ".join(group_names) + " |",
              "|---" * (len(group_names) + 2) + "|"]
    for arm, others in summary["wins"].items():
        lines += [f"| {arm} | {other} | " + " | ".join(str(w[g]) for g in group_names) + " |"
                  for other, w in others.items()]
    lines += ["", *targets(summary, n)]
    budget = ", ".join(f"{m} {s:.0f} s" for m, s in summary["training_seconds"].items())
    lines += ["", f"budget per model: {args.epochs} epochs of batches of 64, half of each batch augmented "
                  f"(the same optimizer steps for every method); training time per model: {budget}"]
    return lines


def targets(summary: dict, n: int) -> list[str]:
    """The issue's targets for the unrelated ImageNet-C corruptions, each with its measured figure."""
    group = "ImageNet-C unrelated"
    by_method = {r["method"]: r for r in summary["rows"]}
    if f"{group} mCE" not in by_method["baseline"]:
        return []
    arms = [m for m in by_method if m.startswith("augment.py")]
    best = min(arms, key=lambda m: by_method[m][f"{group} mCE"]["mean"])
    ours = by_method[best]
    lines = [f"targets on {group} (best augment.py arm: {best})"]
    for other in RANDOM_POLICIES:
        if other in by_method:
            wins = summary["wins"][best][other][group]
            lower = ours[f"{group} mCE"]["mean"] < by_method[other][f"{group} mCE"]["mean"]
            lines.append(f"- beats {other} in mean mCE and in >= 4 of 5 seeds: mean {'lower' if lower else 'NOT lower'}"
                         f", {wins} of {n} seeds -> {'met' if lower and wins >= 0.8 * n else 'NOT met'}")
    cut = 1 - ours[f"{group} mCE"]["mean"]
    lines.append(f"- mCE cut >= 30 % against the baseline: {100 * cut:.1f} % -> {'met' if cut >= 0.3 else 'NOT met'}")
    drop = by_method["baseline"]["clean_accuracy"]["mean"] - ours["clean_accuracy"]["mean"]
    verdict = "met" if drop <= 0.01 else "NOT met"
    lines.append(f"- clean accuracy within 1 point: {100 * -drop:+.1f} points -> {verdict}")
    return lines


def error_by_severity(results: dict, kind: str, names: list[str], severities: list) -> dict[str, list[float]]:
    """Per method: [clean error, mean error over corruptions and seeds at each severity]."""
    return {method: [float(np.mean([run["clean"] for run in runs])),
                     *(float(np.mean([run[kind][f"{n}@{s}"] for run in runs for n in names])) for s in severities)]
            for method, runs in results.items()}


def severity_table(errors: dict[str, list[float]], severities: list, heading: str) -> list[str]:
    lines = [f"| {heading} | clean | " + " | ".join(str(s) for s in severities) + " |",
             "|---" * (len(severities) + 2) + "|"]
    return lines + [f"| {method} | " + " | ".join(f"{e:.3f}" for e in row) + " |" for method, row in errors.items()]


def plot(results: dict, curves: dict, names: list[str], imagenet_names: list[str], out: Path) -> None:
    for file, kind, kind_names, severities, xlabel, title in (
            ("robustness.png", "corrupted", names, SEVERITIES, "corruption intensity (every catalogue augmentation)",
             "Held-out digits: error against corruption intensity"),
            ("robustness_imagenet_c.png", "imagenet_c", imagenet_names, IMAGENET_C_SEVERITIES,
             "ImageNet-C severity (15 corruptions)", "Held-out digits: error under ImageNet-C corruptions")):
        errors = error_by_severity(results, kind, kind_names, severities)
        line_plot(out / file, {method: ([0, *severities], row) for method, row in errors.items()}, xlabel,
                  "test error, mean over corruptions and seeds", title)
    learning = {method: (np.linspace(0, 1, len(mean) + 1)[1:], mean)
                for method, runs in curves.items() if len(mean := np.mean(np.array(runs), axis=0))}
    line_plot(out / "learning_curves.png", learning, "share of the training budget (optimizer steps)",
              "clean test accuracy", "Learning curves (mean over seeds)")


def line_plot(path: Path, series: dict, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, (xs, ys) in series.items():
        axis.plot(xs, ys, marker="o" if len(xs) < 10 else None, label=label)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
