"""No model at all: the default model-free predictor on a folder of photos.

    python examples/photos.py [photo files ...]    # default: scikit-image's sample photos

With ``my_predict=None`` augment.py builds a :class:`augment.TemplateMatcher` from the
training photos: an augmented photo "keeps its output" while it is still recognised as the
same photo among all of them. The search tells how far each augmentation can go before a
photo stops resembling itself; the report shows it, and synthesis makes photos up to that edge.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import augment  # noqa: E402

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "camera",
           "moon")


def sample_photos(folder: Path, side: int = 128) -> list[str]:
    """scikit-image's bundled photos (no download), resized, as PNG files."""
    import cv2
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in SAMPLES:
        path = folder / f"{name}.png"
        if not path.exists():
            photo = getattr(data, name)()
            photo = photo if photo.ndim == 3 else photo[..., None].repeat(3, axis=2)
            Image.fromarray(cv2.resize(photo[..., :3], (side, side), interpolation=cv2.INTER_AREA)).save(path)
        files.append(str(path))
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*")
    parser.add_argument("--out", default="runs/photos")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--synthetic", type=int, default=16)
    args = parser.parse_args(argv)
    out = Path(args.out)
    files = args.photos or sample_photos(out / "photos")
    augmenter = augment.ImageAugmenter(seed=0)  # no model: the template matcher
    analysis = augmenter.search_randomization_boundaries(files, None, args.step, out / "analysis.json")
    print(augment.format_summary(analysis))
    html = augmenter.render_boundaries(out / "analytics")
    made, _ = augmenter.synthesize_more(files, realism=0.5, count=args.synthetic, output_dir=out / "synthetic",
                                        count_is_total=True)
    print(f"\nreport: {html}\n{len(made)} synthetic photos in {out / 'synthetic'} (preview: __preview.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
