"""Rotated boxes against a pixel oracle: which box convention follows a rotated object's pixels?

A rotated box has no single true box: the tight box of the rotated object's pixels lies between the
box of the rotated inscribed ellipse (albumentations' rotate_method="ellipse", exact for a disc) and
the box enclosing the rotated box's corners ("largest_box", exact for a rectangle). This draws
rectangles of several aspect ratios and discs/ellipses, rotates each with the catalogue's SafeRotate at
several intensities, takes the tight box of the rotated object's pixels (the oracle), and prints the
IoU with the box each convention moves, and with the range augment.py's search compares against
(the best of five boxes from the ellipse's to the enclosing one). Inputs are drawn here, never cached.

    python benchmarks/bench_rotated_boxes.py            (about 20 s)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import augment  # noqa: E402
from examples.shapes import box_iou as iou  # noqa: E402

SIZE = 160
INTENSITIES = (0.2, 0.4, 0.6, 0.8, 1.0)


def scene(shape: str, aspect: float, rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """A white object on black, centred near the middle, and its axis-aligned box."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    half_w = rng.uniform(14, 26)
    half_h = half_w / aspect
    cx, cy = SIZE / 2 + rng.uniform(-8, 8), SIZE / 2 + rng.uniform(-8, 8)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    if shape == "rectangle":
        inside = (np.abs(xs - cx) <= half_w) & (np.abs(ys - cy) <= half_h)
    else:
        inside = ((xs - cx) / half_w) ** 2 + ((ys - cy) / half_h) ** 2 <= 1
    image[inside] = 255
    ys_in, xs_in = np.nonzero(inside)
    return image, [float(xs_in.min()), float(ys_in.min()), float(xs_in.max() + 1), float(ys_in.max() + 1)]


def inside_share(image: np.ndarray, box) -> float:
    """The share of the rotated object's pixels the box contains (1: nothing of the object cut off)."""
    ys, xs = np.nonzero(image[..., 0] > 127)
    kept = (xs + 0.5 >= box[0]) & (xs + 0.5 <= box[2]) & (ys + 0.5 >= box[1]) & (ys + 0.5 <= box[3])
    return float(kept.mean())


def tight_box(image: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(image[..., 0] > 127)
    return None if len(xs) == 0 else [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def main() -> int:
    rng = np.random.default_rng(2026)
    print(f"{'object':<16} {'largest_box':>12} {'ellipse':>9} {'midway':>8} {'range (search)':>15}   mean IoU with "
          f"the pixels' box; share of the object inside: largest_box, ellipse")
    worst = {"largest_box": 1.0, "ellipse": 1.0, "midway": 1.0}
    cut = {"largest_box": 1.0, "ellipse": 1.0}
    for shape, aspects in (("rectangle", (1.0, 2.0, 4.0)), ("ellipse", (1.0, 2.0, 4.0))):
        for aspect in aspects:
            scores = {"largest_box": [], "ellipse": [], "midway": [], "range": []}
            inside = {"largest_box": [], "ellipse": []}
            for _ in range(12):
                image, box = scene(shape, aspect, rng)
                for intensity in INTENSITIES:
                    seed = int(rng.integers(2**31 - 1))
                    moved = {}
                    for method in ("largest_box", "ellipse"):
                        rotated, (boxes,) = augment.augment_with_labels(image, [("SafeRotate", intensity)], [[box]],
                                                                       "pascal_voc", seed=seed, rotate_method=method)
                        moved[method] = boxes[0][:4] if boxes else None
                    truth = tight_box(rotated)
                    if truth is None or None in moved.values():
                        continue
                    for method in ("largest_box", "ellipse"):
                        scores[method].append(iou(moved[method], truth))
                        inside[method].append(inside_share(rotated, moved[method]))
                    blends = [[(1 - t) * e + t * big for e, big in zip(moved["ellipse"], moved["largest_box"])]
                              for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
                    scores["range"].append(max(iou(b, truth) for b in blends))
                    scores["midway"].append(iou(blends[2], truth))
            means = {method: float(np.mean(values)) for method, values in scores.items()}
            for method in worst:
                worst[method] = min(worst[method], means[method])
            for method in cut:
                cut[method] = min(cut[method], float(np.mean(inside[method])))
            label = f"{shape} {aspect:g}:1" if aspect != 1 else ("square" if shape == "rectangle" else "disc")
            print(f"{label:<16} {means['largest_box']:>12.3f} {means['ellipse']:>9.3f} {means['midway']:>8.3f} "
                  f"{means['range']:>15.3f}   {np.mean(inside['largest_box']):.3f}, {np.mean(inside['ellipse']):.3f}")
    print(f"worst mean IoU over the objects: largest_box {worst['largest_box']:.3f}, ellipse {worst['ellipse']:.3f}, "
          f"midway {worst['midway']:.3f}; worst share of an object inside its box: largest_box "
          f"{cut['largest_box']:.3f}, ellipse {cut['ellipse']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
