"""augment.py beside the seed's published tool, in the same run, on the same files and model.

    AUGMENT_SEED_REPO=/path/to/ml-infinite-image-augment python benchmarks/bench_seed.py

The seed's tool (github.com/gittyeric/ml-infinite-image-augment, a checkout named by
AUGMENT_SEED_REPO; skipped when absent) searches its boundaries by writing every augmented
image to a temporary file and calling predict on one file at a time, over the whole grid.
Both search the same 300 digit PNG files with their labels, the bundled digits CNN, the
same 6 augmentations at step 0.05, default settings otherwise. Printed: wall times, model
calls, and the speed-up of augment.py's grid, adaptive and guided strategies; target for
the guided one: >= 25x.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import augment  # noqa: E402
from examples import digits, digits_model  # noqa: E402

NAMES = ["Brighten", "GaussianBlur", "SafeRotate", "RandomSizedCrop", "Hue", "PixelDropout"]
COUNT = 300
TARGET = 25.0


def load_seed_tool(checkout: str):
    """The seed's augment.py as a module of another name (ours is `augment`)."""
    spec = importlib.util.spec_from_file_location("seed_augment", os.path.join(checkout, "augment.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    checkout = os.environ.get("AUGMENT_SEED_REPO")
    if not checkout or not os.path.isfile(os.path.join(checkout, "augment.py")):
        print("AUGMENT_SEED_REPO does not name a checkout of gittyeric/ml-infinite-image-augment: skipped")
        return 0
    seed_tool = load_seed_tool(checkout)
    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    with tempfile.TemporaryDirectory() as folder:
        files, truth = digits.write_pngs(images, labels, train[:COUNT], Path(folder) / "digits")
        digits_model.predict(images[:256])  # the model loaded before any clock starts
        calls = {"seed": 0}

        def predict_file(filename: str) -> int:  # the seed's contract: one file name in, one label out
            calls["seed"] += 1
            return digits_model.predict([augment.load_image(filename)])[0]

        tool = seed_tool.ImageAugmenter(predict_file, augmentations=NAMES)
        started = time.perf_counter()
        tool.search_randomization_boundries(files, truth, 0.05, os.path.join(folder, "seed-analytics.json"))
        seed_seconds = time.perf_counter() - started
        print(f"seed tool: {seed_seconds:.1f} s, {calls['seed']} single-file predictions "
              f"({COUNT} digits x {len(NAMES)} augmentations x 20 intensities)")
        # augment.py also measures each augmentation's perceptual strength at the end of a search (the
        # ml-infinite-image-augment tool has nothing like it): the last row leaves it out
        for strategy, strength in (("grid", True), ("adaptive", True), ("guided", True), ("guided", False)):
            augmenter = augment.ImageAugmenter(digits_model.predict, augmentations=NAMES, batch_size=256,
                                               progress=False, perceptual_strength=strength)
            started = time.perf_counter()
            augmenter.search_randomization_boundaries(files, truth, 0.05, None, strategy=strategy)
            seconds = time.perf_counter() - started
            ratio = seed_seconds / seconds
            met = "met" if ratio >= TARGET else "NOT met"
            verdict = f"  target >= {TARGET:g}x: {met}" if strategy == "guided" and strength else ""
            label = strategy if strength else f"{strategy}, no strengths"
            print(f"augment.py {label:<22} {seconds:6.2f} s, {augmenter.predict_calls:>6} predictions: "
                  f"{ratio:5.1f}x faster{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
