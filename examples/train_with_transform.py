"""Train with it: the digits CNN retrained with augment.py's online transform on half of each batch.

    python examples/train_with_transform.py [--realism 0] [--epochs 30] [--out runs/train]

1. Where does the bundled digits CNN break? An adaptive search on training digits.
2. The sampling policy at ``--realism``, saved as a small JSON file: all a training job needs.
3. A DataLoader with two workers applies the transform (``p=0.5``: about half of each batch
   augmented, a fresh draw every time an image is loaded) and a fresh CNN trains on it.
Prints clean test accuracy and accuracy on test digits synthesized at realism 0, for the retrained
CNN and for the bundled one (trained without).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402
from examples import digits_model  # noqa: E402


class Digits(torch.utils.data.Dataset):
    """(H, W, 3) uint8 digits through ``transform``, as float tensors for the CNN."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, k: int):
        image = self.images[k] if self.transform is None else self.transform(self.images[k])
        return torch.from_numpy(image).permute(2, 0, 1).float() / 255, int(self.labels[k])


def train(dataset: Digits, epochs: int, seed: int = 0, workers: int = 2):
    torch.manual_seed(seed)  # weights, shuffling and every worker's transform stream
    model = digits_model.build_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    for _ in range(epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realism", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--search-images", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/train")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = digits_model.load_digits_rgb()
    train_idx, test_idx = digits_model.train_test_indices(len(images))

    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=512, seed=0, progress=False)
    searched = train_idx[:args.search_images]
    augmenter.search_randomization_boundaries(list(images[searched]), [int(v) for v in labels[searched]], 0.05,
                                              out / "analysis.json", strategy="adaptive")
    augmenter.sampling_policy(realism=args.realism).save(out / "policy.json")

    transform = augment.RealismTransform(out / "policy.json", seed=0, p=0.5)  # no analysis, no model needed
    model = train(Digits(images[train_idx], labels[train_idx], transform), args.epochs, workers=args.workers)

    hard = augment.RealismTransform(augmenter.sampling_policy(realism=0), seed=1)  # one fixed shifted test set
    shifted = [hard(images[k]) for k in test_idx]
    print(f"policy: {out / 'policy.json'} ({len(transform.policy.eligible)} augmentations, realism {args.realism})")
    bundled = digits_model.load_model()
    for name, net in (("retrained with the transform", model), ("the bundled CNN (without)", bundled)):
        clean = np.mean(digits_model.predict_probabilities(list(images[test_idx]), net).argmax(1) == labels[test_idx])
        moved = np.mean(digits_model.predict_probabilities(shifted, net).argmax(1) == labels[test_idx])
        print(f"{name}: clean test accuracy {clean:.3f}; on test digits synthesized at realism 0: {moved:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
