"""Synthesis: the realism rule, labels that follow the pixels, the manifest, resume, filters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import BrightnessModel, uniform_images, write_pngs
from PIL import Image

import augment

GEOMETRIC = ["SafeRotate", "RandomSizedCrop", "ElasticTransform"]


def searched_augmenter(tmp_path, augmentations, label_format=None, model=None):
    files = write_pngs(tmp_path / "src", uniform_images([40, 70, 100]))
    augmenter = augment.ImageAugmenter(model or BrightnessModel(), augmentations=augmentations,
                                       label_format=label_format, batch_size=16, progress=False, seed=3)
    augmenter.search_randomization_boundaries(files, None, 0.1, tmp_path / "analysis.json")
    return augmenter, files


def test_realism_rule_and_monotonicity(tmp_path):
    assert augment.realism_max_intensity(1, 0.2, 0.4) == 0.0
    assert augment.realism_max_intensity(0.5, 0.2, 0.4) == 0.2
    assert augment.realism_max_intensity(0.25, 0.2, 0.4) == 0.3
    assert augment.realism_max_intensity(0, 0.2, 0.4) == 0.4
    assert augment.realism_max_intensity(-0.5, 0.2, 0.4) == 0.7
    assert augment.realism_max_intensity(-3, 0.2, 0.4) == 1.0
    augmenter, _ = searched_augmenter(tmp_path, ["Brighten", "Darken", "Hue"])
    previous = None
    for realism in [1, 0.75, 0.5, 0.25, 0, -0.5, -1]:
        limits = augmenter.intensity_limits(realism)
        if previous:
            assert all(limits[n] >= previous[n] for n in limits), (realism, limits, previous)
        previous = limits
    # Brighten breaks the model: onset 0.2 (10 % of 3 images -> the first), failure 0.3 (the median).
    assert augmenter.intensity_limits(0.5)["Brighten"] == 0.2 and augmenter.intensity_limits(0)["Brighten"] == 0.3
    augmenter.set_augmentation_realism("Hue", -1)
    assert augmenter.intensity_limits(1)["Hue"] == 1.0 and augmenter.intensity_limits(1)["Brighten"] == 0.0


def test_contradictory_pairs_never_meet_and_weights_steer_picks(tmp_path):
    augmenter, _ = searched_augmenter(tmp_path, augment.ALL_AUGMENTATIONS[:14])  # the colour ones
    augmenter.set_augmentation_weight("Hue", 0)
    augmenter.set_augmentation_weight("Brighten", 20)
    policy = augmenter.sampling_policy(0)
    limits = policy.limits
    brighten = 0
    for index in range(400):
        steps, _ = policy.sample(np.random.default_rng([3, index, 0]))
        families = [augment.CATALOGUE[name].family for name, _ in steps]
        assert len(families) == len(set(families)), steps
        assert "Hue" not in [name for name, _ in steps]
        assert all(0 <= t <= limits[name] for name, t in steps)
        brighten += any(name == "Brighten" for name, _ in steps)
    assert brighten > 300  # weight 20 against 1 for the others


def object_scene():
    """A black 64x80 image with one white rectangle at rows 20..39, columns 24..51."""
    image = np.zeros((64, 80, 3), np.uint8)
    image[20:40, 24:52] = 255
    return image


def to_format(box, fmt, width=80, height=64):
    x0, y0, x1, y1 = box
    return {"pascal_voc": [x0, y0, x1, y1], "coco": [x0, y0, x1 - x0, y1 - y0],
            "albumentations": [x0 / width, y0 / height, x1 / width, y1 / height],
            "yolo": [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]}[fmt]


def from_format(box, fmt, width=80, height=64):
    if fmt == "pascal_voc":
        return box[:4]
    if fmt == "coco":
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    if fmt == "albumentations":
        return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]
    cx, cy, w, h = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


@pytest.mark.parametrize("fmt", ["pascal_voc", "coco", "yolo", "albumentations"])
def test_boxes_still_enclose_their_object_after_every_geometric_augmentation(tmp_path, fmt):
    scene = object_scene()
    box = to_format([24, 20, 52, 40], fmt) + ["cat"]
    for name in GEOMETRIC:
        for seed, intensity in [(1, 0.3), (2, 0.6), (3, 1.0)]:
            image, (label,) = augment.augment_with_labels(scene, [(name, intensity)], [[box]], fmt, seed=seed)
            assert label[0][-1] == "cat"
            x0, y0, x1, y1 = from_format(label[0], fmt)
            ys, xs = np.nonzero(image[..., 0] > 127)
            assert len(xs) > 0
            # every object pixel is inside the box (1 px for interpolation at the edges)
            assert xs.min() >= x0 - 1.5 and xs.max() + 1 <= x1 + 1.5, (name, intensity, (x0, x1), xs.min(), xs.max())
            assert ys.min() >= y0 - 1.5 and ys.max() + 1 <= y1 + 1.5, (name, intensity, (y0, y1), ys.min(), ys.max())


def test_keypoints_and_masks_follow_the_pixels():
    scene = np.zeros((64, 64, 3), np.uint8)
    scene[30:33, 40:43] = 255  # a 3x3 dot centred on (41.5, 31.5)
    mask = (object_scene()[:64, :64, 0] > 0).astype(np.uint8)
    for name in GEOMETRIC:
        for seed, intensity in [(1, 0.4), (2, 0.9)]:
            image, (points,) = augment.augment_with_labels(scene, [(name, intensity)], [[[41.5, 31.5, "dot"]]],
                                                           "keypoints", seed=seed)
            ys, xs = np.nonzero(image[..., 0] > 60)
            x, y, tag = points[0]
            assert tag == "dot"
            if 0 <= x < 64 and 0 <= y < 64:
                assert abs(xs.mean() + 0.5 - x) < 2 and abs(ys.mean() + 0.5 - y) < 2, (name, intensity, points)
            else:  # the crop moved the point out of the frame: so did the dot
                assert len(xs) == 0, (name, intensity, points)
            photo = object_scene()[:64, :64]
            image, (moved,) = augment.augment_with_labels(photo, [(name, intensity)], [mask], "mask", seed=seed)
            white = image[..., 0] > 127
            overlap = (white & (moved > 0)).sum() / max(1, (white | (moved > 0)).sum())
            assert moved.shape == mask.shape and overlap > 0.85, (name, intensity, overlap)


def test_manifest_preview_and_same_seed_identical_output(tmp_path):
    augmenter, files = searched_augmenter(tmp_path, ["Brighten", "SafeRotate", "Hue", "GaussianBlur"])
    made, labels = augmenter.synthesize_more(files, ["<b>x</b>", "y", "z"], realism=0, count=7,
                                             output_dir=tmp_path / "a", min_random_augmentations=1,
                                             max_random_augmentations=3)
    entries = [json.loads(line) for line in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    assert [e["file"] for e in entries] == [os.path.basename(f) for f in made] and len(made) == 7
    assert labels == [e["label"] for e in entries] == ["<b>x</b>", "y", "z"] * 2 + ["<b>x</b>"]
    assert {e["source_file"] for e in entries} == set(files) and all(1 <= len(e["augmentations"]) <= 3
                                                                    for e in entries)
    preview = (tmp_path / "a" / "__preview.html").read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in preview and "<b>x</b>" not in preview
    again, _ = searched_augmenter(tmp_path / "second", ["Brighten", "SafeRotate", "Hue", "GaussianBlur"])
    again.analysis = augmenter.analysis
    again.synthesize_more(files, ["<b>x</b>", "y", "z"], realism=0, count=7, output_dir=tmp_path / "b",
                          min_random_augmentations=1, max_random_augmentations=3)
    for name in sorted(os.listdir(tmp_path / "a")):
        if name != "__preview.html":
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_resume_after_an_interruption_makes_exactly_the_missing_images(tmp_path):
    augmenter, files = searched_augmenter(tmp_path, ["Brighten", "SafeRotate", "RandomSizedCrop"])
    options = dict(realism=0, min_random_augmentations=1, max_random_augmentations=2)
    augmenter.synthesize_more(files, None, count=10, output_dir=tmp_path / "full", **options)
    augmenter.synthesize_more(files, None, count=6, output_dir=tmp_path / "cut", **options)
    cut = tmp_path / "cut"
    # What a kill during image 6's manifest line leaves: the line cut short, its image still
    # under a temporary name (images are renamed in only after their line is written).
    lines = (cut / "manifest.jsonl").read_text().splitlines(keepends=True)
    (cut / "manifest.jsonl").write_text("".join(lines[:5]) + lines[5][:30])
    sixth = json.loads(lines[5])["file"]
    (cut / sixth).rename(cut / f".augment-tmp-{sixth}~abc.tmp")
    made, _ = augmenter.synthesize_more(files, None, count=10, count_is_total=True, output_dir=cut, **options)
    assert len(made) == 5
    entries = [json.loads(line) for line in (cut / "manifest.jsonl").read_text().splitlines()]
    on_disk = sorted(n for n in os.listdir(cut) if n.endswith(".png"))
    assert sorted(e["file"] for e in entries) == on_disk and len(set(on_disk)) == 10
    for name in on_disk + ["manifest.jsonl"]:
        assert (cut / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    assert augmenter.synthesize_more(files, None, count=10, count_is_total=True, output_dir=cut, **options)[0] == []


def test_filter_keeps_only_images_in_the_diff_error_range(tmp_path):
    model = BrightnessModel()
    augmenter, files = searched_augmenter(tmp_path, ["Brighten", "Darken"], model=model)
    made, _ = augmenter.synthesize_more(files, None, realism=-1, count=12, min_predicted_diff_error=0.5,
                                        output_dir=tmp_path / "hard", max_attempts=5)
    assert len(made) == 12
    sources = {json.loads(line)["file"]: json.loads(line)["source_file"]
               for line in (tmp_path / "hard" / "manifest.jsonl").read_text().splitlines()}
    for path in made:
        image = np.asarray(Image.open(path))
        source = np.asarray(Image.open(sources[Path(path).name]))
        assert model([image]) != model([source])  # the model's output changed: a failure case, as asked


def test_synthesis_refuses_to_run_before_a_search(tmp_path, uniform_files):
    augmenter = augment.ImageAugmenter(BrightnessModel())
    with pytest.raises(ValueError, match="run search_randomization_boundaries first"):
        augmenter.synthesize_more(uniform_files, output_dir=tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_an_impossible_filter_stops_with_a_warning_instead_of_looping(tmp_path):
    augmenter, files = searched_augmenter(tmp_path, ["Hue"])  # hue never changes gray images' brightness
    model_calls = augmenter.my_predict.calls
    with pytest.warns(UserWarning, match="no candidate"):
        made, _ = augmenter.synthesize_more(files, None, realism=-1, count=50, min_predicted_diff_error=0.5,
                                            output_dir=tmp_path / "none", max_attempts=3)
    assert made == [] and augmenter.my_predict.calls - model_calls < 50 * 3 + 10


def test_hostile_source_names_give_safe_file_names_inside_output_dir(tmp_path):
    augmenter, _ = searched_augmenter(tmp_path, ["Brighten"])
    hostile = tmp_path / "src" / '..<img src=x onerror=alert(1)> "q".png'
    Image.fromarray(uniform_images([60])[0]).save(hostile, format="PNG")
    made, _ = augmenter.synthesize_more([str(hostile)], ["<i>label</i>"], count=2, output_dir=tmp_path / "out",
                                        min_random_augmentations=1, max_random_augmentations=1)
    for path in made:
        assert Path(path).parent == tmp_path / "out" and Path(path).is_file()
        assert all(ch.isalnum() or ch in "-_." for ch in Path(path).name) and not Path(path).name.startswith(".")
    preview = (tmp_path / "out" / "__preview.html").read_text()
    assert "<img src=x" not in preview and "&lt;i&gt;label&lt;/i&gt;" in preview


# -- labels come back as numbers, never as their strings ---------------------------------


def test_numpy_and_torch_labels_round_trip_as_numbers_and_lists(tmp_path):
    augmenter, files = searched_augmenter(tmp_path, ["Brighten"])
    made, labels = augmenter.synthesize_more(files[:2], np.array([3, 7]), count=2, output_dir=tmp_path / "c",
                                             min_random_augmentations=1, max_random_augmentations=1)
    assert labels == [3, 7] and all(type(label) is int for label in labels)
    entries = [json.loads(line) for line in (tmp_path / "c" / "manifest.jsonl").read_text().splitlines()]
    assert [e["label"] for e in entries] == [e["source_label"] for e in entries] == [3, 7]
    boxes = augment.ImageAugmenter(lambda images: [[[2, 2, 10, 10, "thing"]] for _ in images], batch_size=8,
                                   augmentations=["Brighten", "SafeRotate"], label_format="pascal_voc",
                                   progress=False, seed=3)
    boxes.search_randomization_boundaries(files, None, 0.25, tmp_path / "boxes.json")
    box = [[np.float32(4), np.int64(4), 20, np.float64(20.0), np.int64(5)]]
    _, moved = boxes.synthesize_more(files[:1], [box], count=1, output_dir=tmp_path / "b")
    assert moved[0][0][-1] == 5 and type(moved[0][0][-1]) is int and len(moved[0][0]) == 5
    torch = pytest.importorskip("torch")
    search = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    analysis = search.search_randomization_boundaries(files[:1], [torch.tensor([1, 2])], 0.5, tmp_path / "t.json")
    assert augment.load_analysis(tmp_path / "t.json").images[0].label == [1, 2]
    assert analysis.images[0].label == [1, 2]


def test_synthesis_never_deletes_files_it_did_not_write(tmp_path):
    augmenter, files = searched_augmenter(tmp_path, ["Brighten"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "synthetic-labels.csv").write_text("file,label\n")
    (out / "notes.txt").write_text("mine")
    copied = tmp_path / "copied"  # a folder of synthetic images copied without its manifest
    augmenter.synthesize_more(files, None, count=3, output_dir=copied, preview_html=None)
    (copied / "manifest.jsonl").unlink()
    before = {p.name: p.read_bytes() for p in copied.iterdir() if not p.name.startswith(".")}
    with pytest.warns(UserWarning, match="3 file.* named like synthetic images .* left alone"):
        made, _ = augmenter.synthesize_more(files, None, count=2, output_dir=copied, preview_html=None)
    assert {p.name: p.read_bytes() for p in copied.iterdir() if p.name in before} == before
    assert [os.path.basename(f)[:16] for f in made] == ["synthetic-000003", "synthetic-000004"]
    augmenter.synthesize_more(files, None, count=2, output_dir=out)
    assert (out / "synthetic-labels.csv").read_text() == "file,label\n" and (out / "notes.txt").read_text() == "mine"
