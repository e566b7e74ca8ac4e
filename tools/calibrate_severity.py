"""Calibrate the perceptual scale: where ImageNet-C's severities 1..5 lie in perceptual distance.

    python tools/calibrate_severity.py            # print the table and the constants
    python tools/calibrate_severity.py --write    # and write them into src/augment/perceptual.py
    python tools/calibrate_severity.py --check    # exit 1 if the committed constants differ

The 15 ImageNet-C corruptions (imagecorruptions-imaug, seeded) at severities 1..5 on the
reference photos (scikit-image's bundled astronaut, chelsea, coffee, rocket,
immunohistochemistry and hubble_deep_field, centre crops area-resized to 224 px): for each
corruption and severity, the mean perceptual distance (augment.perceptual_distance) between a
photo and its corrupted copy. Severity s of the scale is the mean over the 15 corruptions at
severity s. Printed: each corruption's own severities read back on the scale, and how far they
land from 1..5 (the scale's tolerance); regenerate augment.py after --write.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import augment  # noqa: E402

SOURCE = ROOT / "src" / "augment" / "perceptual.py"
SIDE = 224


def reference_photos() -> list[np.ndarray]:
    import cv2
    from skimage import data

    photos = []
    for photo in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry(),
                  data.hubble_deep_field()):
        height, width = photo.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        photos.append(cv2.resize(photo[top:top + side, left:left + side], (SIDE, SIDE), interpolation=cv2.INTER_AREA))
    return photos


def corrupted(photo: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    import inspect

    from imagecorruptions import corrupt, corruptions

    # Some corruptions draw from their own generator and take seed=; the others use numpy's global one.
    np.random.seed(seed)
    options = {"seed": seed} if "seed" in inspect.signature(getattr(corruptions, corruption)).parameters else {}
    out = corrupt(photo, corruption_name=corruption, severity=severity, **options)
    return np.clip(np.asarray(out, dtype=np.float64), 0, 255).astype(np.uint8)[:SIDE, :SIDE]


def distances() -> dict[str, np.ndarray]:
    """Per corruption, the distance on each reference photo at severities 1..5: (photos, 5)."""
    from imagecorruptions import get_corruption_names

    photos = reference_photos()
    table = {}
    for corruption in get_corruption_names("common"):
        table[corruption] = np.array([[augment.perceptual_distance(photo, corrupted(photo, corruption, s, k))
                                       for s in range(1, 6)] for k, photo in enumerate(photos)])
        print(f"  {corruption:<18} " + " ".join(f"{d:.4f}" for d in table[corruption].mean(axis=0)), flush=True)
    return table


def scale(table: dict[str, np.ndarray], photos: slice = slice(None)) -> tuple[float, ...]:
    """The scale's constants: per severity, the mean over corruptions of their mean over ``photos``."""
    return tuple(round(float(np.mean([rows[photos, s].mean() for rows in table.values()])), 4) for s in range(5))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the constants into src/augment/perceptual.py")
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed constants differ")
    args = parser.parse_args(argv)
    print("mean perceptual distance per corruption at severities 1..5:")
    per_photo = distances()
    table = {corruption: rows.mean(axis=0) for corruption, rows in per_photo.items()}
    means = scale(per_photo)
    if any(b <= a for a, b in zip(means, means[1:])):
        print(f"error: the severities' mean distances do not increase: {means}")
        return 1
    print(f"\nSEVERITY_DISTANCES = {means}")
    print("\neach corruption's severities read back on the scale (its own 1..5):")
    errors = []
    for corruption, row in table.items():
        back = [augment.distance_to_severity(d, means) for d in row]
        errors += [abs(b - s) for b, s in zip(back, range(1, 6))]
        print(f"  {corruption:<18} " + " ".join(f"{b:4.1f}" for b in back))
    errors = np.array(errors)
    print(f"\nread back vs their severity: mean |error| {errors.mean():.2f}, median {np.median(errors):.2f}, "
          f"90th percentile {np.percentile(errors, 90):.2f} severity units (75 corruption x severity cells); "
          f"the mean of the 15 at each severity: exactly 1..5 by construction")
    half = len(next(iter(per_photo.values()))) // 2  # of the reference photos
    first, second = scale(per_photo, slice(None, half)), scale(per_photo, slice(half, None))
    back = [augment.distance_to_severity(d, first) for d in second]
    largest = max(abs(b - s) for b, s in zip(back, range(1, 6)))
    print(f"held out: calibrated on photos 1-{half}, photos {half + 1}-{2 * half} read severities 1..5 back as "
          + ", ".join(f"{b:.2f}" for b in back) + f" (largest error {largest:.2f})")
    committed = augment.SEVERITY_DISTANCES
    if args.write:
        text = SOURCE.read_text()
        SOURCE.write_text(re.sub(r"^SEVERITY_DISTANCES = \(.*\)$", f"SEVERITY_DISTANCES = {means}", text,
                                 flags=re.MULTILINE))
        print(f"wrote {SOURCE.relative_to(ROOT)}; now run python tools/amalgamate.py")
    elif args.check and tuple(committed) != means:
        print(f"error: committed SEVERITY_DISTANCES {tuple(committed)} differ from these {means}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
