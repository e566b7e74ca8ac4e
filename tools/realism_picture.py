"""Draw docs/realism.png and docs/realism-bounded.png: one digit and one photo at realism 1, 0.5, 0
and -0.5 (four draws each), with limits from the model alone and bounded by the perceptual ceiling.

    python tools/realism_picture.py

The limits come from a search of the bundled digits CNN on 200 training digits (seed 0, the
default strategy), so the pictures show what that model's boundaries allow; the photo
(scikit-image's astronaut, resized) is drawn with the same policies. The bounded one
(ImageAugmenter(perceptual_ceiling=True)) stops each augmentation where it looks stronger than
3 - 2 x realism ImageNet-C severity units on the searched digits.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import augment  # noqa: E402
from examples import digits_model  # noqa: E402

REALISMS = [1, 0.5, 0, -0.5]
DRAWS = 4


def main() -> int:
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=256, seed=0, progress=False)
    bounded = augment.ImageAugmenter(digits_model.predict, batch_size=256, seed=0, progress=False,
                                     perceptual_ceiling=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "analysis.json"
        augmenter.search_randomization_boundaries(list(images[train[:200]]), list(labels[train[:200]]),
                                                  analytics_cache=path)
        bounded.load_analysis(path)
    photo = cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    sources = [("digit", images[train[0]]), ("photo", photo)]
    for which, chosen, name in (("limits from the model alone", augmenter, "realism.png"),
                                ("bounded by the perceptual ceiling", bounded, "realism-bounded.png")):
        figure, axes = plt.subplots(len(sources) * len(REALISMS), DRAWS + 1, figsize=(1.3 * (DRAWS + 1), 1.35 * 8))
        for s, (kind, image) in enumerate(sources):
            for r, realism in enumerate(REALISMS):
                row = axes[s * len(REALISMS) + r]
                transform = chosen.transform(realism, seed=r)
                row[0].imshow(image)
                row[0].set_ylabel(f"{kind}\nrealism {realism:g}", fontsize=8)
                for k in range(DRAWS):
                    row[k + 1].imshow(transform(image))
                for axis in row:
                    axis.set_xticks([])
                    axis.set_yticks([])
        axes[0][0].set_title("original", fontsize=8)
        for k in range(DRAWS):
            axes[0][k + 1].set_title(f"draw {k + 1}", fontsize=8)
        figure.suptitle(which, fontsize=9)
        figure.tight_layout()
        out = ROOT / "docs" / name
        figure.savefig(out, dpi=90)
        plt.close(figure)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
