"""The main job, offline: where does the bundled digits CNN break?

    python examples/digits.py [--images 300] [--out runs/digits] [--extended]

Writes the digits as PNG files, searches all 24 augmentations on them with the
trained CNN (examples/digits_model.py), prints per augmentation the intensity at
which 10/50/90 % of outputs change (analysis.json), renders the report with
Grad-CAM (analytics/index.html), synthesizes a set at each realism 1, 0.5, 0 and
-0.5 (synthetic/realism_*/) and evaluates the model on them.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere in a checkout

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import augment  # noqa: E402
from examples import digits_model  # noqa: E402


def write_pngs(images: np.ndarray, labels: np.ndarray, indices, folder: Path) -> tuple[list[str], list[int]]:
    """Save the chosen digits as folder/digit-<index>.png; returns (files, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in indices:
        path = folder / f"digit-{index:04d}.png"
        if not path.exists():
            Image.fromarray(images[index]).save(path)
        files.append(str(path))
    return files, [int(labels[index]) for index in indices]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="training images to search (default 300)")
    parser.add_argument("--out", default="runs/digits", help="output folder")
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", type=int, default=300, help="synthetic images per realism (default 300)")
    parser.add_argument("--extended", action="store_true",
                        help="search the extended catalogue too (EXTENDED_AUGMENTATIONS: flips, noises, JPEG, warps)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    images, labels = digits_model.load_digits_rgb()
    train, test = digits_model.train_test_indices(len(images))
    chosen = np.random.default_rng(args.seed).choice(train, size=min(args.images, len(train)), replace=False)
    files, truth = write_pngs(images, labels, sorted(chosen), out / "train")

    # model_id: a retrained digits_cnn.pt re-searches instead of reusing the old model's boundaries
    digits_model.load_model()  # trains and writes the weights first if the file is missing
    model_id = "digits_cnn.pt " + hashlib.sha256(digits_model.WEIGHTS.read_bytes()).hexdigest()[:16]
    names = augment.ALL_AUGMENTATIONS + (augment.EXTENDED_AUGMENTATIONS if args.extended else [])
    augmenter = augment.ImageAugmenter(digits_model.predict, augmentations=names, batch_size=512, seed=args.seed,
                                       model_id=model_id)
    started = time.perf_counter()
    analysis = augmenter.search_randomization_boundaries(files, truth, args.step, out / "analysis.json")
    print(augment.format_summary(analysis))
    print(f"\nsearch: {len(files)} images, {augmenter.predict_calls} predictions this run, "
          f"{time.perf_counter() - started:.1f} s; analysis in {out / 'analysis.json'}")

    started = time.perf_counter()
    model = digits_model.load_model()
    report = augmenter.render_boundaries(out / "analytics", torch_model=model, target_layers=[model.features[6]],
                                         preprocess=digits_model.to_tensor)
    print(f"report (Grad-CAM, {time.perf_counter() - started:.1f} s): open {Path(report).resolve()}")

    print(f"\n{'realism':>7} {'images':>6} {'changed vs source':>17} {'accuracy':>8}   (synthetic sets, "
          f"{args.synthetic} images each)")
    synthetic = out / ("synthetic-extended" if args.extended else "synthetic")
    for row in realism_table(augmenter, files, truth, synthetic, args.synthetic):
        print(f"{row['realism']:>7} {row['images']:>6} {row['changed_share']:>17.3f} {row['accuracy']:>8.3f}")
    print("\nnext steps:")
    for what, command in next_steps(out, Path(report)):
        print(f"  {what:<28} {command}")
    return 0


def next_steps(out: Path, report: Path) -> list[tuple[str, str]]:
    """The three commands a user runs next, each as written (paths of this run)."""
    analysis = out / "analysis.json"
    return [("1. read the report:", f"open {report.resolve()}"),
            ("2. train with the transform:", f"python augment.py policy --cache {analysis} --realism 0 --out "
                                             f"{out / 'policy.json'}   (then augment.RealismTransform('"
                                             f"{out / 'policy.json'}') in your DataLoader, as "
                                             f"examples/train_with_transform.py does)"),
            ("3. after retraining, compare:", f"python augment.py compare {analysis} NEW/analysis.json --names "
                                              f"before after --html-dir {out / 'compare'}   (NEW: a search of "
                                              f"the retrained model)")]


def realism_table(augmenter: augment.ImageAugmenter, files, truth, folder: Path, count: int) -> list[dict]:
    """Synthesize ``count`` images at each realism and evaluate the model on them.

    "changed vs source": share of synthetic images whose predicted digit differs from
    the model's digit on the source image; "accuracy": against the true digit.
    """
    source_output = {record.file: record.output for record in augmenter.analysis.images}
    rows = []
    for realism in (1, 0.5, 0, -0.5):
        made, labels = augmenter.synthesize_more(files, truth, realism=realism, count=count,
                                                 output_dir=folder / f"realism_{realism}", count_is_total=True)
        entries = augment.read_manifest(folder / f"realism_{realism}" / "manifest.jsonl")
        made = [str(folder / f"realism_{realism}" / e.file) for e in entries]
        reference = [source_output[e.source_file] for e in entries]
        changed = augmenter.evaluate(made, reference)
        accuracy = augmenter.evaluate(made, [e.label for e in entries])
        rows.append({"realism": realism, "images": len(made), "changed_share": 1 - changed["accuracy"],
                     "accuracy": accuracy["accuracy"], "by_augmentation": accuracy["by_augmentation"]})
    return rows


if __name__ == "__main__":
    sys.exit(main())
