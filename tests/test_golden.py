"""Byte-for-byte regression: a fixed small search and synthesis give exactly the committed files.

Recorded before the restructure of augment.py into thin public face and sections (issue 13),
after the trust and positional-output fixes that were meant to change results; the synthesis
files were written again when the sampler moved to 101 intensity levels per limit (issue 14:
the training transform reuses built transforms), the analyses were not until issue 16 added
derived fields to their summaries (bootstrap intervals, none for these four images; the per-class
breakdown) and each image's pixel digest (every other byte unchanged, checked before writing them
again), and again when issue 28 added each augmentation's perceptual strength and the analysis'
severity calibration, and with version 0.4.0 (every other field equal, checked before writing). A change that is
meant to change these files regenerates them with ``python tests/test_golden.py --write`` and
says why in its commit; any other change must leave them as they are.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import augment  # noqa: E402
from examples import shapes  # noqa: E402

GOLDEN = HERE / "golden"
# Byte identity holds for the library versions that wrote the files (PNG encoding, OpenCV's
# resampling). constraints.txt pins them for the README's install and test commands, so the test
# runs on every clean clone; with other versions it fails and names them (it never skips).
LIBRARIES = ["numpy", "opencv-python-headless", "albumentations", "pillow", "scikit-image"]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found
NAMES = ["Brighten", "Darken", "Hue", "SafeRotate", "RandomSizedCrop", "PixelDropout"]
MTIME = 1_700_000_000  # file identities (path, size, mtime) enter the fingerprint


def bright(images):
    return [int(np.asarray(image).mean() > 110) for image in images]


def write_inputs(folder: Path) -> list[str]:
    from PIL import Image

    (folder / "imgs").mkdir(parents=True)
    images, _ = shapes.make_shapes(4, seed=21)
    files = []
    for k, image in enumerate(images):
        path = f"imgs/shape-{k}.png"
        Image.fromarray(image).save(folder / path)
        os.utime(folder / path, (MTIME, MTIME))
        files.append(path)
    return files


def run_cases(folder: Path) -> None:
    """The recorded runs, in ``folder`` (relative paths, so the files do not depend on where)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        files = write_inputs(folder)
        _, truths = shapes.make_shapes(4, seed=21)
        grid = augment.ImageAugmenter(bright, augmentations=NAMES, batch_size=16, seed=5, progress=False)
        grid.search_randomization_boundaries(files, [0, 1, 0, 1], 0.25, "grid/analysis.json")
        grid.synthesize_more(files, [0, 1, 0, 1], realism=0, count=6, output_dir="grid/synthetic",
                             preview_html=None, min_random_augmentations=1, max_random_augmentations=3)
        boxes = augment.ImageAugmenter(shapes.predict_boxes, shapes.box_diff_error, augmentations=NAMES,
                                       label_format="pascal_voc", batch_size=16, seed=5, progress=False)
        boxes.search_randomization_boundaries(files, [[t["box"]] for t in truths], 0.1, "boxes/analysis.json",
                                              strategy="adaptive", grid_sample=1)
        boxes.synthesize_more(files, [[t["box"] + ["shape"]] for t in truths], realism=0, count=4,
                              output_dir="boxes/synthetic", preview_html=None)
    finally:
        os.chdir(previous)


def produced(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.startswith(".") and path.parts[len(folder.parts)] != "imgs"
            and path.name != "versions.json"}


def test_a_fixed_search_and_synthesis_give_the_committed_files_byte_for_byte(tmp_path):
    import json

    recorded = json.loads((GOLDEN / "versions.json").read_text())
    assert recorded == versions(), (
        f"golden files were written with {recorded}; installed: {versions()}. Install with "
        f"'pip install -r requirements-dev.txt -c constraints.txt' (the README's test command)")
    run_cases(tmp_path)
    made, expected = produced(tmp_path), produced(GOLDEN)
    assert sorted(made) == sorted(expected)
    assert len(expected) >= 14  # two analyses, two manifests, ten images
    changed = [name for name in expected if made[name] != expected[name]]
    assert not changed, f"differ from tests/golden: {changed}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    shutil.rmtree(GOLDEN, ignore_errors=True)
    GOLDEN.mkdir()
    run_cases(GOLDEN)
    shutil.rmtree(GOLDEN / "imgs")
    for hidden in GOLDEN.rglob(".*"):
        hidden.unlink()
    (GOLDEN / "versions.json").write_text(__import__("json").dumps(versions(), indent=1) + "\n")
    print(f"golden files written to {GOLDEN}: {sorted(produced(GOLDEN))}")
elif __name__ == "__main__":
    pytest.main([__file__])
