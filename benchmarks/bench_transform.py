"""The training transform's speed beside torchvision's RandAugment, TrivialAugmentWide and AugMix.

    python benchmarks/bench_transform.py [--seconds 3] [--epochs 3]

1. One process, one thread (torch and OpenCV): images per second on scikit-image's bundled
   photos at 32 and 224 px, for augment.py's transform plain and with boxes (three pascal_voc
   boxes per image, moved with the pixels) and for torchvision's policies on uint8 tensors
   (their fast path; conversions are not timed for anyone). Target: at 224 px the transform
   delivers at least half of RandAugment's images per second.
2. A DataLoader with 2 workers: epochs of the digits CNN's training (1,347 training digits,
   batches of 64, every image through the policy) with the transform and with RandAugment,
   after one warm-up epoch. Target: the transform adds at most 10 % to an epoch against
   RandAugment.

The transform's policy: all 24 augmentations, each up to intensity 0.5 (and a second row up to
1.0), 3 to 8 per image (the defaults), as ``SamplingPolicy`` draws them for synthesis.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402
from examples import digits_model  # noqa: E402


def photos(size: int) -> list[np.ndarray]:
    import cv2
    from skimage import data

    return [cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in
            (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())]


def rate(call, inputs: list, seconds: float, warmup: int = 0) -> float:
    """Images per second of ``call`` over ``inputs`` in turn, for about ``seconds``, after
    ``warmup`` calls (at least one per input: lazy imports)."""
    for k in range(max(warmup, len(inputs))):
        call(inputs[k % len(inputs)])
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        call(inputs[done % len(inputs)])
        done += 1
    return done / elapsed


def single_thread_rates(seconds: float) -> None:
    import cv2
    import torch
    from torchvision.transforms import v2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    half = augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.5))
    full = augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 1.0))
    print(f"{'images/s, one thread':<44} {'32 px':>9} {'224 px':>9}")
    rows: dict[str, list[float]] = {}
    for size in (32, 224):
        arrays = photos(size)
        tensors = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays]
        boxes = [[[size * 0.1, size * 0.1, size * 0.5, size * 0.6, "a"], [size * 0.4, size * 0.3, size * 0.9,
                  size * 0.8, "b"], [size * 0.2, size * 0.5, size * 0.45, size * 0.95, "c"]]] * len(arrays)
        with_boxes = augment.RealismTransform(half, "pascal_voc", seed=0)
        cases = {"augment.py transform (limits 0.5)": (augment.RealismTransform(half, seed=0), arrays),
                 "augment.py transform (limits 1.0)": (augment.RealismTransform(full, seed=0), arrays),
                 "augment.py transform, 3 boxes (limits 0.5)": (
                     lambda pair, t=with_boxes: t(image=pair[0], bboxes=pair[1]), list(zip(arrays, boxes))),
                 "RandAugment": (v2.RandAugment(), tensors), "TrivialAugmentWide": (v2.TrivialAugmentWide(), tensors),
                 "AugMix": (v2.AugMix(), tensors)}
        torch.manual_seed(0)
        for name, (call, inputs) in cases.items():
            # The transform reuses the transforms it built: 24 augmentations x 101 levels, about
            # 3,000 draws to build them all (a training job's first epoch); timed after that.
            warm = 3000 if name.startswith("augment.py") else 0
            rows.setdefault(name, []).append(rate(call, inputs, seconds, warm))
        if size == 224:
            cold = augment.RealismTransform(augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.7)))
            rows.setdefault("augment.py transform, cold (first draws)", [float("nan")]).append(
                rate(cold, arrays, seconds))
    for name, (small, large) in rows.items():
        print(f"{name:<44} {small:>9.0f} {large:>9.0f}")
    no_superpixels = augment.RealismTransform(augment.SamplingPolicy(
        {name: 0.5 for name in augment.ALL_AUGMENTATIONS if name != "Superpixels"}), seed=0)
    print(f"{'augment.py transform without Superpixels':<44} {'':>9} "
          f"{rate(no_superpixels, photos(224), seconds, 3000):>9.0f}")
    ratio = rows["augment.py transform (limits 0.5)"][1] / rows["RandAugment"][1]
    print(f"at 224 px, transform / RandAugment: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")


class Digits:
    """Training digits through a policy (uint8 tensors in and out), as a DataLoader worker runs it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, policy) -> None:
        self.images, self.labels, self.policy = images, labels, policy

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, k: int):
        import torch

        image = self.policy(torch.from_numpy(self.images[k]).permute(2, 0, 1).contiguous())  # uint8 (3, H, W)
        return image.float() / 255, int(self.labels[k])


def epoch_seconds(dataset, epochs: int) -> float:
    import torch

    torch.manual_seed(0)
    model = digits_model.build_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2, persistent_workers=True)
    times = []
    for _ in range(epochs + 1):  # the first epoch starts the workers and fills their caches: not timed
        started = time.perf_counter()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return float(np.mean(times[1:]))


def dataloader_epochs(epochs: int) -> None:
    import torch
    from torchvision.transforms import v2

    torch.set_num_threads(2)
    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    policy = augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.5))
    cases = {"no augmentation": lambda image: image, "RandAugment": v2.RandAugment(),
             "augment.py transform": augment.RealismTransform(policy, seed=0)}
    seconds = {name: epoch_seconds(Digits(images[train], labels[train], call), epochs) for name, call in cases.items()}
    print(f"\n{'DataLoader, 2 workers: seconds per epoch':<44} {'seconds':>9}")
    for name, value in seconds.items():
        print(f"{name:<44} {value:>9.2f}")
    ratio = seconds["augment.py transform"] / seconds["RandAugment"]
    print(f"transform / RandAugment epoch: {ratio:.2f} (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per case and size")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per DataLoader case")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    single_thread_rates(args.seconds)
    dataloader_epochs(args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
