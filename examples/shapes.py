"""Boxes, masks and keypoints: a classical shape detector on generated images, offline.

    python examples/shapes.py --kind boxes       # or masks, keypoints

The images are bright shapes (rectangles, discs) on a textured dark background, generated
with their ground truth. The "model" is a classical detector that needs no training: Otsu
threshold, largest connected component (scikit-image). It returns the shape's box
(pascal_voc), its mask, or its centroid as a keypoint. The example

1. searches where the detector breaks, with a task-specific ``diff_error``: 1 - IoU for boxes
   and masks, the centroid's distance in units of 10 % of the image side for keypoints; under
   SafeRotate, RandomSizedCrop and ElasticTransform the detector's output on the original is
   moved with the pixels first, so only a detector that loses its object counts as changed;
2. synthesizes a data set whose labels follow the pixels (``label_format`` "pascal_voc",
   "mask" or "keypoints": SafeRotate, RandomSizedCrop and ElasticTransform move the label);
3. evaluates the detector on the synthetic set against those moved labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402

SIZE = 64


def make_shapes(count: int, seed: int = 0, shapes: str = "both") -> tuple[list[np.ndarray], list[dict]]:
    """Images and their truth: {"box": [x0, y0, x1, y1], "mask": (H, W) uint8, "center": [x, y]}.

    ``shapes``: "rectangles", "discs" or "both". Rectangles alone are placed within 22 px of
    the centre, so that no rotation takes a corner out of the frame.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images, truths = [], []
    for _ in range(count):
        background = rng.integers(10, 60, (SIZE, SIZE, 1)) + rng.integers(0, 20, (SIZE, SIZE, 3))
        colour = rng.integers(170, 256, 3)
        if shapes == "rectangles":
            w, h = rng.integers(12, 24, 2)
            x0, y0 = rng.integers(10, 54 - w), rng.integers(10, 54 - h)
        else:
            x0, y0 = rng.integers(6, SIZE // 2, 2)
            w, h = rng.integers(14, SIZE // 2, 2)
        if shapes == "rectangles" or (shapes == "both" and rng.random() < 0.5):
            mask = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        else:
            mask = (xx - (x0 + w / 2)) ** 2 / (w / 2) ** 2 + (yy - (y0 + h / 2)) ** 2 / (h / 2) ** 2 <= 1
        image = np.where(mask[..., None], colour, background).clip(0, 255).astype(np.uint8)
        ys, xs = np.nonzero(mask)
        images.append(image)
        truths.append({"box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                       "mask": mask.astype(np.uint8), "center": [float(xs.mean()), float(ys.mean())]})
    return images, truths


def detect(image: np.ndarray) -> dict:
    """The largest bright component: box, mask and centroid ({} when nothing is found)."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    gray = np.asarray(image, dtype=np.float32).mean(axis=2)
    if gray.max() - gray.min() < 1:
        return {}
    regions = regionprops(label(gray > threshold_otsu(gray)))
    if not regions:
        return {}
    region = max(regions, key=lambda r: r.area)
    y0, x0, y1, x1 = region.bbox
    mask = np.zeros(gray.shape, np.uint8)
    mask[tuple(region.coords.T)] = 1
    return {"box": [x0, y0, x1, y1], "mask": mask, "center": [float(region.centroid[1]), float(region.centroid[0])]}


def predict_boxes(images: list[np.ndarray]) -> list[list[list[int]]]:
    return [[found["box"]] if (found := detect(image)) else [] for image in images]


def predict_masks(images: list[np.ndarray]) -> list[np.ndarray]:
    return [found["mask"] if (found := detect(image)) else np.zeros(image.shape[:2], np.uint8) for image in images]


def predict_keypoints(images: list[np.ndarray]) -> list[list[list[float]]]:
    return [[found["center"]] if (found := detect(image)) else [] for image in images]


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def box_diff_error(output, reference) -> float:
    """1 - IoU of the first box of each (no box on one side only: 1; on neither: 0)."""
    if not output or not reference:
        return float(bool(output) != bool(reference))
    return 1.0 - box_iou(output[0][:4], reference[0][:4])


def mask_diff_error(output, reference) -> float:
    output, reference = np.asarray(output) > 0, np.asarray(reference) > 0
    union = np.logical_or(output, reference).sum()
    return 0.0 if union == 0 else 1.0 - np.logical_and(output, reference).sum() / union


def keypoint_diff_error(output, reference) -> float:
    """Distance between the first points, in units of 10 % of the image side, capped at 1."""
    if not output or not reference:
        return float(bool(output) != bool(reference))
    return min(1.0, float(np.hypot(output[0][0] - reference[0][0], output[0][1] - reference[0][1])) / (0.1 * SIZE))


KINDS = {
    "boxes": (predict_boxes, box_diff_error, "pascal_voc", lambda truth: [truth["box"]]),
    "masks": (predict_masks, mask_diff_error, "mask", lambda truth: truth["mask"]),
    "keypoints": (predict_keypoints, keypoint_diff_error, "keypoints", lambda truth: [truth["center"]]),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=sorted(KINDS), default="boxes")
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--synthetic", type=int, default=60)
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--out", default="runs/shapes")
    parser.add_argument("--shapes", choices=["both", "rectangles", "discs"], default="both")
    parser.add_argument("--rotate-method", choices=["largest_box", "ellipse"], default="largest_box",
                        help="how a rotated box is enclosed: exact for rectangles, ellipse for discs")
    args = parser.parse_args(argv)
    predict, diff_error, label_format, truth_of = KINDS[args.kind]
    out = Path(args.out) / args.kind
    images, truths = make_shapes(args.images, shapes=args.shapes)
    labels = [truth_of(truth) for truth in truths]
    # label_format says what outputs and labels are: SafeRotate, RandomSizedCrop and ElasticTransform
    # move the detector's output on the original image with the pixels before comparing, so a box
    # that follows its object counts as unchanged.
    augmenter = augment.ImageAugmenter(predict, diff_error, label_format=label_format, batch_size=64, seed=0,
                                       failure_threshold=0.5, rotate_method=args.rotate_method)
    analysis = augmenter.search_randomization_boundaries(images, labels, args.step, out / "analysis.json")
    print(augment.format_summary(analysis))
    files, synthetic_labels = augmenter.synthesize_more(images, labels, realism=0, count=args.synthetic,
                                                        output_dir=out / "synthetic", count_is_total=True)
    clean = augmenter.evaluate(images, labels)
    result = augmenter.evaluate(files, synthetic_labels)
    print(f"\n{args.kind}: detector accuracy (diff error < 0.5) on the real images {clean['accuracy']:.3f}, on "
          f"{len(files)} synthetic images at realism 0 {result['accuracy']:.3f}; mean diff error "
          f"{clean['avg_diff_error']:.3f} -> {result['avg_diff_error']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
