"""Synthesis speed on the bundled digits model: images per second, with and without the model filter.

    python benchmarks/bench_synthesis.py [--count 600]

Searches 60 digits once (step 0.1), then times synthesize_more at realism 0 with all 24
augmentations: plain, with the filter min_predicted_diff_error=0.5 (keep only images the
model gets wrong; candidates are batched through the CNN), and without Superpixels (the one
augmentation whose SLIC segmentation cannot be cached in synthesis).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402
from examples import digits, digits_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args(argv)
    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files, truth = digits.write_pngs(images, labels, train[:60], folder / "train")
        augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False)
        augmenter.search_randomization_boundaries(files, truth, 0.1, folder / "analysis.json")
        augment.augment_image(images[0], "Brighten", 0.5)  # albumentations imported before timing
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
        print(f"{'case':<34} {'images':>6} {'seconds':>8} {'images/s':>9}")
        cases = [("all 24, no filter", {}, augment.ALL_AUGMENTATIONS),
                 ("all 24, filter diff error >= 0.5", {"min_predicted_diff_error": 0.5}, augment.ALL_AUGMENTATIONS),
                 ("23 (no Superpixels), no filter", {}, [a for a in augment.ALL_AUGMENTATIONS if a != "Superpixels"])]
        for name, options, names in cases:
            for n in augment.ALL_AUGMENTATIONS:
                augmenter.set_augmentation_weight(n, 1.0 if n in names else 0.0)
            started = time.perf_counter()
            made, _ = augmenter.synthesize_more(files, truth, realism=0, count=args.count,
                                                output_dir=folder / name.replace(" ", "_"), preview_html=None,
                                                **options)
            seconds = time.perf_counter() - started
            print(f"{name:<34} {len(made):>6} {seconds:>8.2f} {len(made) / seconds:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
