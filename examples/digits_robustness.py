"""Does realism-tuned synthetic data make the digits CNN more robust? A retraining study.

    python examples/digits_robustness.py            # about 17 minutes on 2 cores
    python examples/digits_robustness.py --quick    # a smoke run (the tests use it)

1. Train the baseline CNN on the real training digits (``--epochs`` epochs, per seed).
2. Search its randomization boundaries (adaptive search on ``--search-images`` training digits).
3. For realism 0.5, 0 and -0.5, synthesize ``--variants`` images per real training digit
   (``synthesize_more`` with its defaults otherwise) and retrain: the same epochs, batches and
   optimizer steps as the baseline, with half of each batch replaced by a synthetic variant of
   the same real digit, so each real digit is seen under a fresh variant most times.
4. Compare with random augmentation of the same budget: torchvision's RandAugment and
   TrivialAugmentWide applied to half of each batch (the synthetic share), same steps.
5. Evaluate every model on the held-out digits, clean and corrupted by each catalogue
   augmentation at intensities 0.1 ... 0.5 (five severities; each corrupted image gets its own
   seed), and report clean error, mean corruption error (mCE) and relative mCE as in Hendrycks
   & Dietterich (2019), with the baseline as the reference model (baseline = 100 %).
   Augmentations that leave every held-out image unchanged (the colour ones on gray digits) are
   not corruptions and are left out, and named in the results.
6. The second yardstick: the same metrics on the 15 ImageNet-C corruptions at severities 1-5
   (Hendrycks & Dietterich's own code, as maintained in the ``imagecorruptions-imaug`` package),
   which the tool does not synthesize.

Writes ``OUT/results.json``, ``OUT/results.md`` (the table), ``OUT/results_by_severity.md``
(mean error at each intensity, as plotted), ``OUT/robustness.png`` and
``OUT/robustness_imagenet_c.png`` (error against intensity, before and after) and
``OUT/learning_curves.png``.
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
AUGMENTED_SHARE = 0.5  # of each training batch, for the synthetic data and the random policies alike


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
    corruption the reference does not degrade at all has no relative CE and is left out of
    that mean (with a zero denominator it would be 0 or infinite).
    """
    ce, rce = [], []
    for name in names:
        errors = [result[key][f"{name}@{s}"] for s in severities]
        base = [reference[key][f"{name}@{s}"] for s in severities]
        ce.append(sum(errors) / sum(base) if sum(base) > 0 else 1.0)
        degradation = sum(b - reference["clean"] for b in base)
        if degradation > 0:
            rce.append(sum(e - result["clean"] for e in errors) / degradation)
    return float(np.mean(ce)), float(np.mean(rce)) if rce else float("nan")


def synthetic_variants(folder: Path, files: list[str], variants: int) -> np.ndarray:
    """(variants, N, H, W, 3): the synthetic images of each real training image, by its position.

    Read from the folder's manifest, so a re-run that synthesizes nothing new finds them too.
    """
    position = {name: k for k, name in enumerate(files)}
    slots: list[list[np.ndarray]] = [[] for _ in files]
    for line in (folder / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        slots[position[entry["source_file"]]].append(augment.load_image(str(folder / entry["file"])))
    if any(len(slot) != variants for slot in slots):
        raise RuntimeError(f"{folder / 'manifest.jsonl'}: expected {variants} synthetic images per training image")
    return np.stack([np.stack(slot) for slot in slots], axis=1)


def synthetic_half(variants: np.ndarray):
    """augment_fn for train_cnn: half of each batch replaced by a synthetic variant of the same image."""

    def apply(batch: np.ndarray, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
        out = batch.copy()
        chosen = rng.random(len(batch)) < AUGMENTED_SHARE
        picks = rng.integers(0, len(variants), len(batch))
        out[chosen] = variants[picks[chosen], index[chosen]]
        return out

    return apply


def random_augment(kind: str):
    """augment_fn for train_cnn: torchvision's policy on half of each batch (uint8 tensors)."""
    import torch
    from torchvision.transforms import v2

    policy = v2.RandAugment() if kind == "RandAugment" else v2.TrivialAugmentWide()

    def apply(batch: np.ndarray, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
        out = batch.copy()
        chosen = rng.random(len(batch)) < AUGMENTED_SHARE
        torch.manual_seed(int(rng.integers(2**31)))
        for k in np.flatnonzero(chosen):
            tensor = torch.from_numpy(np.ascontiguousarray(batch[k])).permute(2, 0, 1)
            out[k] = policy(tensor).permute(1, 2, 0).numpy()
        return out

    return apply


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/robustness")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--variants", type=int, default=8, help="synthetic images per real training image")
    parser.add_argument("--search-images", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not the figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.search_images, args.variants = 1, 2, 40, 2
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

    imagenet_names = get_corruption_names("common") if not args.quick else ["gaussian_noise", "zoom_blur"]
    imagenet_c = imagenet_c_test_sets(images[test], imagenet_names)
    files, truth = digits.write_pngs(images, labels, train, out / "train")

    results: dict[str, list[dict]] = {}
    curves: dict[str, list[list[float]]] = {}

    def train_and_evaluate(method: str, seed: int, train_images, train_labels, epochs, augment_fn=None):
        curve: list[float] = []

        def on_epoch(epoch, model):
            curve.append(1 - errors_of(model, images[test], labels[test]))

        model = digits_model.train_cnn(train_images, train_labels, epochs=epochs, seed=seed, augment_fn=augment_fn,
                                       on_epoch=on_epoch)
        results.setdefault(method, []).append(evaluate(model, images[test], labels[test], corrupted, imagenet_c))
        curves.setdefault(method, []).append(curve)
        print(f"  {method:<22} seed {seed}: clean error {results[method][-1]['clean']:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        return model

    for seed in range(args.seeds):
        print(f"seed {seed}")
        baseline = train_and_evaluate("baseline", seed, images[train], labels[train], args.epochs)
        augmenter = augment.ImageAugmenter(lambda batch, model=baseline: [
            int(k) for k in digits_model.predict_probabilities(batch, model).argmax(axis=1)],
            batch_size=256, seed=seed, progress=False, model_id=f"baseline seed {seed}, {args.epochs} epochs")
        augmenter.search_randomization_boundaries(files[:args.search_images], truth[:args.search_images], 0.05,
                                                  out / f"analysis-seed{seed}.json", strategy="adaptive")
        for realism in REALISMS:
            folder = out / f"synthetic-seed{seed}-r{realism}"
            augmenter.synthesize_more(files, truth, realism=realism, count=args.variants * len(files),
                                      output_dir=folder, preview_html=None, count_is_total=True)
            variants = synthetic_variants(folder, files, args.variants)
            train_and_evaluate(f"augment.py realism {realism:g}", seed, images[train], labels[train], args.epochs,
                               synthetic_half(variants))
        for kind in ("RandAugment", "TrivialAugmentWide"):
            train_and_evaluate(kind, seed, images[train], labels[train], args.epochs, random_augment(kind))

    baseline_runs = results["baseline"]
    reference = {"clean": float(np.mean([r["clean"] for r in baseline_runs]))} | {
        kind: {key: float(np.mean([r[kind][key] for r in baseline_runs])) for key in baseline_runs[0][kind]}
        for kind in ("corrupted", "imagenet_c")}
    rows = []
    for method, runs in results.items():
        clean = [1 - run["clean"] for run in runs]
        row = {"method": method, "clean_accuracy": float(np.mean(clean)), "clean_accuracy_std": float(np.std(clean)),
               "seeds": len(runs)}
        for prefix, kind, kind_names, severities in (("", "corrupted", names, SEVERITIES),
                                                     ("imagenet_c_", "imagenet_c", imagenet_names,
                                                      IMAGENET_C_SEVERITIES)):
            scores = np.array([corruption_errors(run, reference, kind_names, kind, severities) for run in runs])
            row |= {f"{prefix}mCE": float(scores[:, 0].mean()), f"{prefix}mCE_std": float(scores[:, 0].std()),
                    f"{prefix}relative_mCE": float(scores[:, 1].mean()),
                    f"{prefix}relative_mCE_std": float(scores[:, 1].std())}
        rows.append(row)
    table = ["| method | clean accuracy | mCE | relative mCE | ImageNet-C mCE | ImageNet-C relative mCE |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['clean_accuracy']:.3f} ± {r['clean_accuracy_std']:.3f} | "
              f"{percent(r['mCE'], r['mCE_std'])} | {percent(r['relative_mCE'], r['relative_mCE_std'])} | "
              f"{percent(r['imagenet_c_mCE'], r['imagenet_c_mCE_std'])} | "
              f"{percent(r['imagenet_c_relative_mCE'], r['imagenet_c_relative_mCE_std'])} |" for r in rows]
    (out / "results.md").write_text("\n".join(table) + "\n")
    by_severity = []  # what the robustness plots draw, as numbers
    for kind, kind_names, severities, heading in (
            ("corrupted", names, SEVERITIES, "test error by catalogue intensity"),
            ("imagenet_c", imagenet_names, IMAGENET_C_SEVERITIES, "test error by ImageNet-C severity")):
        by_severity += ["", *severity_table(error_by_severity(results, kind, kind_names, severities), severities,
                                            heading)]
    (out / "results_by_severity.md").write_text("\n".join(by_severity[1:]) + "\n")
    (out / "results.json").write_text(json.dumps({"rows": rows, "runs": results, "curves": curves,
                                                  "severities": SEVERITIES, "augmentations": names,
                                                  "left_out": unchanged, "variants": args.variants,
                                                  "imagenet_c": imagenet_names,
                                                  "imagenet_c_severities": IMAGENET_C_SEVERITIES,
                                                  "epochs": args.epochs, "seeds": args.seeds}, indent=1))
    plot(results, curves, names, imagenet_names, out)
    print("\n" + "\n".join(table + by_severity))
    print(f"\n{out / 'results.md'}, {out / 'robustness.png'}, {out / 'robustness_imagenet_c.png'}, "
          f"{out / 'learning_curves.png'} "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


def percent(mean: float, spread: float) -> str:
    return "n/a" if np.isnan(mean) else f"{100 * mean:.1f} % ± {100 * spread:.1f}"


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
