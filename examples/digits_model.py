"""The bundled model: a small CNN trained on scikit-learn's handwritten digits.

Everything here runs offline: the 1,797 8x8 digits ship with scikit-learn, are
upscaled to 32x32 RGB uint8 images, and the CNN is trained deterministically on
the CPU in a few seconds (the trained weights are committed as digits_cnn.pt).

    python examples/digits_model.py            # retrain and overwrite digits_cnn.pt

Use it from augment.py as ``--predict examples/digits_model.py:predict``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("digits_cnn.pt")
IMAGE_SIZE = 32
TRAIN_SPLIT_SEED = 0


def load_digits_rgb() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as (N, 32, 32, 3) uint8 RGB (white ink on black) and (N,) int labels."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for image in digits.images:
        gray = (image / 16.0 * 255.0).astype(np.float32)
        big = cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
        big = np.clip(big, 0, 255).astype(np.uint8)
        images.append(np.repeat(big[:, :, None], 3, axis=2))
    return np.stack(images), digits.target.astype(int)


def train_test_indices(count: int, test_share: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A fixed split: the same train and held-out test images on every machine."""
    order = np.random.default_rng(TRAIN_SPLIT_SEED).permutation(count)
    cut = int(round(count * (1 - test_share)))
    return np.sort(order[:cut]), np.sort(order[cut:])


def build_cnn():
    """Three conv layers (the last, ``features[6]``, is the Grad-CAM target) and a linear head."""
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            )
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.features(x))

    return DigitsCNN()


def to_tensor(images):
    """A list or array of (H, W, 3) uint8 images to a float (N, 3, H, W) tensor in [0, 1]."""
    import torch

    batch = np.stack([np.asarray(image) for image in images]).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def train_cnn(images: np.ndarray, labels: np.ndarray, epochs: int = 30, seed: int = 0,
              augment_fn=None, on_epoch=None):
    """Train a fresh CNN deterministically; ``augment_fn(batch, rng, index)`` may alter each batch.

    ``index`` holds the batch's positions in ``images`` (to pick variants of the same source).

    ``on_epoch(epoch, model)`` is called after each epoch (the model in eval mode), e.g. for
    learning curves.
    """
    import torch

    torch.manual_seed(seed)
    model = build_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    model.train()
    for epoch in range(epochs):
        if on_epoch is not None and epoch:
            model.eval()
            on_epoch(epoch, model)
            model.train()
        order = rng.permutation(len(images))
        for start in range(0, len(order), 64):
            index = order[start:start + 64]
            batch = images[index] if augment_fn is None else augment_fn(images[index], rng, index)
            loss = torch.nn.functional.cross_entropy(model(to_tensor(batch)), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    if on_epoch is not None:
        on_epoch(epochs, model)
    return model


@functools.lru_cache(maxsize=1)
def load_model():
    """The committed trained CNN (trained here first if the weights file is missing)."""
    import torch

    if not WEIGHTS.exists():
        retrain()
    model = build_cnn()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    return model


def predict_probabilities(images, model=None) -> np.ndarray:
    """(N, 10) class probabilities for a list of (H, W, 3) uint8 images."""
    import torch

    model = model or load_model()
    with torch.no_grad():
        return torch.softmax(model(to_tensor(images)), dim=1).numpy()


def predict(images: list) -> list[int]:
    """Batched predict for augment.py: a list of RGB uint8 arrays in, a list of digits out."""
    return [int(k) for k in predict_probabilities(images).argmax(axis=1)]


def retrain() -> float:
    """Train on the fixed training split, save the weights and return held-out accuracy."""
    import torch

    images, labels = load_digits_rgb()
    train, test = train_test_indices(len(images))
    model = train_cnn(images[train], labels[train])
    torch.save(model.state_dict(), WEIGHTS)
    accuracy = float((predict_probabilities(images[test], model).argmax(axis=1) == labels[test]).mean())
    return accuracy


if __name__ == "__main__":
    print(f"held-out accuracy: {retrain():.4f}; weights written to {WEIGHTS}")
