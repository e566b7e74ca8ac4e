"""Your own augmentations: JPEG at the qualities a camera pipeline uses, and sensor noise.

    python examples/custom_augmentations.py [--images 100] [--out runs/custom]

Registers two augmentations the 24 built-ins lack (``register_augmentation``: checked on probe
images now, then searched, reported and synthesized like any other), searches them beside
Brighten on the bundled digits CNN, renders the report and synthesizes a few images. From the
command line the same entries come in with ``--augmentations-from
examples/custom_augmentations.py:CUSTOM``; worker processes and Dask workers import them by name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402


def jpeg(intensity: float, height: int, width: int):
    """JPEG from quality 95 (a phone camera's default) at intensity 0+ down to 10 at 1."""
    import albumentations as A

    quality = round(95 - 85 * intensity)
    return A.ImageCompression(quality_range=(quality, quality), p=1) if intensity > 0 else None


def sensor_noise(image: np.ndarray, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (grows with the signal) plus read noise, as a small sensor in dim light."""
    sigma = intensity * (2.0 * np.sqrt(image.astype(np.float32) + 1.0) + 8.0)  # at 1: 40 gray levels on white
    return np.clip(image + rng.normal(0.0, 1.0, image.shape) * sigma, 0, 255).astype(np.uint8)


CUSTOM = [
    augment.register_augmentation("CameraJPEG", jpeg, family="compression", group="digital",
                                  at_full_intensity="JPEG quality 10 (95 just above 0)"),
    augment.register_augmentation("SensorNoise", function=sensor_noise, family="sensor noise", group="noise",
                                  at_full_intensity="shot noise 2 sqrt(value) + read noise 8 gray levels"),
]


def main(argv=None) -> int:
    from examples import digits, digits_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--out", default="runs/custom")
    args = parser.parse_args(argv)
    out = Path(args.out)
    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    files, truth = digits.write_pngs(images, labels, train[:args.images], out / "train")
    augmenter = augment.ImageAugmenter(digits_model.predict, augmentations=["Brighten", "CameraJPEG", "SensorNoise"],
                                       batch_size=512, progress=False)
    analysis = augmenter.search_randomization_boundaries(files, truth, 0.05, out / "analysis.json")
    print(augment.format_summary(analysis))
    report = augmenter.render_boundaries(out / "analytics")
    made, _ = augmenter.synthesize_more(files, truth, realism=0, count=20, output_dir=out / "synthetic",
                                        count_is_total=True, min_random_augmentations=1, max_random_augmentations=2)
    print(f"report: {report}; {len(made)} synthetic images in {out / 'synthetic'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
