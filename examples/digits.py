"""The main job, offline: where does the bundled digits CNN break?

    python examples/digits.py [--images 300] [--out runs/digits]

Writes the digits as PNG files, searches all 24 augmentations on them with the
trained CNN (examples/digits_model.py), prints per augmentation the intensity at
which 10/50/90 % of outputs change, and keeps analysis.json in --out.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

    out = Path(args.out)
    images, labels = digits_model.load_digits_rgb()
    train, test = digits_model.train_test_indices(len(images))
    chosen = np.random.default_rng(args.seed).choice(train, size=min(args.images, len(train)), replace=False)
    files, truth = write_pngs(images, labels, sorted(chosen), out / "train")

    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=512, seed=args.seed)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
