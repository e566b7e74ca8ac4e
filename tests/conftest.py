"""Shared fixtures: real photos, tiny image files and oracle models whose answers are known in closed form."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def natural_images(size=(64, 80)) -> list[np.ndarray]:
    """scikit-image's bundled photos (no download), resized to ``size`` (H, W)."""
    import cv2
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
              data.immunohistochemistry(), data.hubble_deep_field()]
    return [cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_AREA) for p in photos]


class BrightnessModel:
    """Says 1 when an image's mean is above 127, else 0; counts the images it sees.

    On a uniform image of value v, Brighten at intensity t adds 255 t, so the output
    flips exactly at t* = (127 - v) / 255 (closed form).
    """

    def __init__(self, fail_after: int | None = None):
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, images):
        if self.fail_after is not None and self.calls + len(images) > self.fail_after:
            raise RuntimeError("model crashed")
        self.calls += len(images)
        return [int(np.asarray(image).mean() > 127) for image in images]


def make_augmenter(model=None, **options):
    """An augmenter for tests: batched predict (16), Brighten and Darken, no progress bar."""
    import augment

    options.setdefault("progress", False)
    options.setdefault("augmentations", ["Brighten", "Darken"])
    options.setdefault("batch_size", 16)
    return augment.ImageAugmenter(model, **options)


@pytest.fixture
def brightness_model():
    return BrightnessModel()


def uniform_images(values, size=(24, 24)):
    return [np.full((*size, 3), v, np.uint8) for v in values]


def write_pngs(folder: Path, arrays, prefix="img") -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, array in enumerate(arrays):
        path = folder / f"{prefix}-{index}.png"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def uniform_files(tmp_path):
    return write_pngs(tmp_path / "images", uniform_images([40, 70, 100]))


def wait_for(child, marker: str, times: int) -> int:
    """Read a child process's stdout until ``marker`` has been printed ``times`` times; returns the count."""
    seen = 0
    for line in child.stdout:
        seen += line.strip() == marker
        if seen >= times:
            break
    return seen


def chromium_path() -> str:
    """Debian's chromium for page tests: a failure in CI (the README's test command installs it), else a skip."""
    import os
    import shutil

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; the README's test command installs it")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return chromium


def open_page(playwright, chromium: str, html, errors: list):
    """A headless page (no sandbox, no GPU, no background network) on ``html``, errors collected."""
    browser = playwright.chromium.launch(executable_path=chromium, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return browser, page
