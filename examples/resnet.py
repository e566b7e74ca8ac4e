"""A torchvision ImageNet ResNet as augment.py's predict: for users who have its weights.

    python examples/resnet.py photos/*.jpg --weights DEFAULT    # downloads ImageNet weights once
    python examples/resnet.py --weights none                    # offline: random weights, skimage photos

``load_predict`` builds the model and returns a batched predict (list of RGB uint8 arrays ->
top-1 ImageNet class index). It is also the pattern for distributed searches: pass
``functools.partial(load_predict, ...)`` as ``predict_factory`` and each Dask worker (or
process) builds the model once, on first use, instead of receiving it with every shard.
Random weights (``weights=None``) are seeded, so every process builds the same network.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_model(weights: str | None = None, arch: str = "resnet18", seed: int = 0):
    """The torchvision classifier in eval mode: ``weights`` "DEFAULT" (ImageNet, downloaded) or None (random)."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=weights).eval()


def to_batch(images: Sequence[np.ndarray], size: int):
    """RGB uint8 (H, W, 3) arrays -> a normalised (N, 3, size, size) float tensor."""
    import torch
    import torch.nn.functional as F

    batch = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2).float() / 255
    if batch.shape[-2:] != (size, size):
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch - mean) / std


def load_predict(weights: str | None = None, size: int = 112, arch: str = "resnet18",
                 threads: int | None = None) -> Callable[[list[np.ndarray]], list[int]]:
    """Build the model once and return ``predict(images) -> top-1 class per image``.

    ``threads`` caps torch's CPU threads in this process (useful when several workers
    share one machine). Images of different sizes are resized one by one.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    model = build_model(weights, arch)

    def predict(images: list[np.ndarray]) -> list[int]:
        shapes = {np.asarray(image).shape for image in images}
        groups = [images] if len(shapes) == 1 else [[image] for image in images]
        outputs: list[int] = []
        with torch.inference_mode():
            for group in groups:
                outputs.extend(int(k) for k in model(to_batch(group, size)).argmax(1))
        return outputs

    return predict


def main(argv: Sequence[str] | None = None) -> int:
    import augment

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="image files (default: scikit-image's sample photos)")
    parser.add_argument("--weights", default="none", help='"DEFAULT" for ImageNet weights, "none" for random')
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--out", default="runs/resnet")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--strategy", default="adaptive", choices=["grid", "adaptive"])
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    out = Path(args.out)
    files = args.images
    if not files:
        from PIL import Image
        from skimage import data

        out.joinpath("photos").mkdir(parents=True, exist_ok=True)
        files = []
        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            path = out / "photos" / f"{name}.png"
            Image.fromarray(getattr(data, name)()).save(path)
            files.append(str(path))
    augmenter = augment.ImageAugmenter(predict_factory=functools.partial(load_predict, weights, args.size),
                                       batch_size=32, seed=0)
    analysis = augmenter.search_randomization_boundaries(files, None, args.step, out / "analysis.json",
                                                         strategy=args.strategy, grid_sample=2)
    print(augment.format_summary(analysis))
    print(f"{augmenter.predict_calls} predictions; analysis in {out / 'analysis.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
