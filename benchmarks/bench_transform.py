"""The training transform's speed beside torchvision's RandAugment, TrivialAugmentWide and AugMix.

    python benchmarks/bench_transform.py [--seconds 3] [--epochs 3] [--runs 3]

Every timed image is one the transforms have never seen (a training set is not four photos
cycled: a per-image cache would hit on those and on nothing in a real epoch).

1. One process, one thread (torch and OpenCV): images per second on a stream of distinct
   images at 32 and 224 px (random crops, at random places and scales, of scikit-image's
   bundled photos, some flipped; made before each timed chunk, not timed), for augment.py's
   transform plain and with boxes (three pascal_voc boxes per image, moved with the pixels)
   and for torchvision's policies on uint8 tensors (their fast path; conversions are not
   timed for anyone). Target: at 224 px the transform delivers at least RandAugment's
   images per second.
2. A DataLoader with 2 workers: epochs of the digits CNN's training (1,347 training digits,
   batches of 64, every image through the policy) with the transform and with RandAugment,
   after one warm-up epoch that starts the workers; each epoch's digits differ by one pixel
   from every earlier epoch's, so no cache sees an image twice. Target: the transform adds at
   most 10 % to an epoch against RandAugment.

The transform's policy: all 24 augmentations, each up to intensity 0.5 (and a second row up to
1.0), 3 to 8 per image (the defaults), as ``SamplingPolicy`` draws them for synthesis.
With ``--runs N`` both parts run N times and the figure against each target is the worst run.
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

TRANSFORM_TARGET, EPOCH_TARGET = 1.0, 1.10


def source_photos() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry(),
            data.hubble_deep_field(), data.retina()]


class DistinctImages:
    """An endless stream of images no transform has seen: crops of random place and side (from
    ``size`` px to the photo's short side) of random photos, area-resized to ``size``, half of
    them flipped. Distinct by construction (a crop's offset and scale are continuous draws)."""

    def __init__(self, size: int, seed: int, photos: list[np.ndarray]) -> None:
        self.size, self.rng, self.photos = size, np.random.default_rng(seed), photos

    def take(self, count: int) -> list[np.ndarray]:
        import cv2

        images = []
        for _ in range(count):
            photo = self.photos[int(self.rng.integers(len(self.photos)))]
            height, width = photo.shape[:2]
            side = int(self.rng.integers(self.size, min(height, width) + 1))
            y, x = int(self.rng.integers(height - side + 1)), int(self.rng.integers(width - side + 1))
            crop = cv2.resize(photo[y:y + side, x:x + side], (self.size, self.size), interpolation=cv2.INTER_AREA)
            images.append(np.ascontiguousarray(crop[:, ::-1]) if self.rng.random() < 0.5 else crop)
        return images


def rate(call, stream, prepare, seconds: float, warmup: int = 0, chunk: int = 64) -> float:
    """Images per second of ``call`` over new images of ``stream`` (each ``prepare``d, untimed,
    in chunks), for about ``seconds``, after ``warmup`` calls on other new images."""
    for image in stream.take(max(warmup, 8)):
        call(prepare(image))
    done, elapsed = 0, 0.0
    while elapsed < seconds:
        inputs = [prepare(image) for image in stream.take(chunk)]
        started = time.perf_counter()
        for item in inputs:
            call(item)
        elapsed += time.perf_counter() - started
        done += len(inputs)
    return done / elapsed


def single_thread_rates(seconds: float, photos: list[np.ndarray], run: int) -> float:
    """Prints the table; returns the transform / RandAugment ratio at 224 px."""
    import cv2
    import torch
    from torchvision.transforms import v2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    half = augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.5))
    full = augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 1.0))
    print(f"{'images/s, one thread, distinct images':<44} {'32 px':>9} {'224 px':>9}")
    rows: dict[str, list[float]] = {}
    for size in (32, 224):
        stream = DistinctImages(size, 1000 * run + size, photos)
        boxes = [[size * 0.1, size * 0.1, size * 0.5, size * 0.6, "a"], [size * 0.4, size * 0.3, size * 0.9,
                 size * 0.8, "b"], [size * 0.2, size * 0.5, size * 0.45, size * 0.95, "c"]]
        with_boxes = augment.RealismTransform(half, "pascal_voc", seed=0)

        def tensor(array: np.ndarray):
            return torch.from_numpy(array).permute(2, 0, 1).contiguous()

        cases = {"augment.py transform (limits 0.5)": (augment.RealismTransform(half, seed=0), None),
                 "augment.py transform (limits 1.0)": (augment.RealismTransform(full, seed=0), None),
                 "augment.py transform, 3 boxes (limits 0.5)": (
                     lambda pair, t=with_boxes: t(image=pair[0], bboxes=pair[1]), lambda a, b=boxes: (a, b)),
                 "RandAugment": (v2.RandAugment(), tensor), "TrivialAugmentWide": (v2.TrivialAugmentWide(), tensor),
                 "AugMix": (v2.AugMix(), tensor)}
        torch.manual_seed(0)
        for name, (call, prepare) in cases.items():
            # The transform reuses the transforms it built: 24 augmentations x 101 levels, about
            # 3,000 draws to build them all (a training job's first epoch); timed after that.
            warm = 3000 if name.startswith("augment.py") else 0
            rows.setdefault(name, []).append(rate(call, stream, prepare or (lambda a: a), seconds, warm))
        if size == 224:
            cold = augment.RealismTransform(augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.7)))
            rows.setdefault("augment.py transform, cold (first draws)", [float("nan")]).append(
                rate(cold, stream, lambda a: a, seconds))
    for name, (small, large) in rows.items():
        print(f"{name:<44} {small:>9.0f} {large:>9.0f}")
    no_superpixels = augment.RealismTransform(augment.SamplingPolicy(
        {name: 0.5 for name in augment.ALL_AUGMENTATIONS if name != "Superpixels"}), seed=0)
    stream = DistinctImages(224, 1000 * run + 7, photos)
    print(f"{'augment.py transform without Superpixels':<44} {'':>9} "
          f"{rate(no_superpixels, stream, lambda a: a, seconds, 3000):>9.0f}")
    # RandAugment applies 2 operations per image, the policy above 3 to 8 (5.5 on average): the same
    # transform at 2 per image compares the cost of an operation
    two = augment.RealismTransform(augment.SamplingPolicy(dict.fromkeys(augment.ALL_AUGMENTATIONS, 0.5), fewest=2,
                                                          most=2), seed=0)
    stream = DistinctImages(224, 1000 * run + 8, photos)
    print(f"{'augment.py transform, 2 per image (limits 0.5)':<44} {'':>9} "
          f"{rate(two, stream, lambda a: a, seconds, 3000):>9.0f}")
    ratio = rows["augment.py transform (limits 0.5)"][1] / rows["RandAugment"][1]
    print(f"at 224 px, transform / RandAugment: {ratio:.2f} (target >= {TRANSFORM_TARGET:.2f}: "
          f"{'met' if ratio >= TRANSFORM_TARGET else 'NOT met'})")
    return ratio


class Digits:
    """Training digits through a policy (uint8 tensors in and out), as a DataLoader worker runs it.

    Index ``epoch * N + k`` is digit k with pixel (0, 0) set to ``epoch``: every epoch's images
    are new to any cache, at the cost of one pixel for every policy alike."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, policy) -> None:
        self.images, self.labels, self.policy = images, labels, policy

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        import torch

        epoch, k = divmod(index, len(self.images))
        pixels = self.images[k].copy()
        pixels[0, 0] = epoch % 256
        image = self.policy(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())  # uint8 (3, H, W)
        return image.float() / 255, int(self.labels[k])


class EpochSampler:
    """A shuffled epoch over N items, numbered epoch * N + k (see Digits)."""

    def __init__(self, count: int) -> None:
        self.count, self.epoch, self.rng = count, 0, np.random.default_rng(0)

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        offset, self.epoch = self.epoch * self.count, self.epoch + 1
        return iter((offset + self.rng.permutation(self.count)).tolist())


def epoch_seconds(dataset, epochs: int) -> float:
    import torch

    torch.manual_seed(0)
    model = digits_model.build_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, sampler=EpochSampler(len(dataset)), num_workers=2,
                                         persistent_workers=True)
    times = []
    for _ in range(epochs + 1):  # the first epoch starts the workers: not timed
        started = time.perf_counter()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return float(np.mean(times[1:]))


def dataloader_epochs(epochs: int) -> float:
    """Prints the table; returns the transform / RandAugment epoch ratio."""
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
    print(f"transform / RandAugment epoch: {ratio:.2f} (target <= {EPOCH_TARGET:.2f}: "
          f"{'met' if ratio <= EPOCH_TARGET else 'NOT met'})")
    return ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per case and size")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per DataLoader case")
    parser.add_argument("--runs", type=int, default=1, help="times to run both parts (the worst run is reported)")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    photos = source_photos()
    ratios, epochs = [], []
    for run in range(args.runs):
        if args.runs > 1:
            print(f"\n== run {run + 1} of {args.runs}")
        ratios.append(single_thread_rates(args.seconds, photos, run))
        epochs.append(dataloader_epochs(args.epochs))
    if args.runs > 1:
        worst_ratio, worst_epoch = min(ratios), max(epochs)
        print(f"\nworst of {args.runs} runs: transform / RandAugment {worst_ratio:.2f} (target >= "
              f"{TRANSFORM_TARGET:.2f}: {'met' if worst_ratio >= TRANSFORM_TARGET else 'NOT met'}), epoch "
              f"{worst_epoch:.2f} (target <= {EPOCH_TARGET:.2f}: "
              f"{'met' if worst_epoch <= EPOCH_TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
