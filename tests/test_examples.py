"""The bundled examples, at small sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT  # (also puts the repository on sys.path)

import augment
from examples import digits, digits_model


def test_digits_model_is_a_real_trained_cnn():
    images, labels = digits_model.load_digits_rgb()
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    _, test = digits_model.train_test_indices(len(images))
    predictions = digits_model.predict(list(images[test]))
    assert np.mean(np.array(predictions) == labels[test]) > 0.9


def test_digits_main_job_searches_and_prints_the_50_percent_table(tmp_path, capsys):
    assert digits.main(["--images", "4", "--out", str(tmp_path), "--step", "0.25", "--synthetic", "4"]) == 0
    out = capsys.readouterr().out
    assert "50%" in out and all(name in out for name in augment.ALL_AUGMENTATIONS)
    analysis = augment.load_analysis(tmp_path / "analysis.json")
    assert analysis.complete and len(analysis.images) == 4
    # the three next steps it prints run as written (the compare one given this analysis as the new one)
    steps = out.split("next steps:")[1].strip().splitlines()
    assert [line.split(":")[0].strip() for line in steps] == ["1. read the report", "2. train with the transform",
                                                              "3. after retraining, compare"]
    assert Path(steps[0].split("open ", 1)[1]).is_file()
    import shlex
    import subprocess
    import sys

    for line, new in ((steps[1], None), (steps[2], str(tmp_path / "analysis.json"))):
        command = shlex.split(line.split(":", 1)[1].split("   (")[0])
        command = [sys.executable if part == "python" else part for part in command]
        command = [new if part == "NEW/analysis.json" else part for part in command]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr)
    assert augment.SamplingPolicy.load(tmp_path / "policy.json").realism == 0
    assert (tmp_path / "compare" / "index.html").is_file()


def test_digits_outputs_change_more_often_as_realism_falls(tmp_path):
    images, labels = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    files, truth = digits.write_pngs(images, labels, train[:40], tmp_path / "train")
    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=512, progress=False)
    augmenter.search_randomization_boundaries(files, truth, 0.1, tmp_path / "analysis.json")
    rows = digits.realism_table(augmenter, files, truth, tmp_path / "synthetic", 80)
    shares = [row["changed_share"] for row in rows]
    assert [row["realism"] for row in rows] == [1, 0.5, 0, -0.5]
    assert shares[0] == 0.0  # realism 1 draws intensity 0: the source image itself
    assert shares == sorted(shares) and shares[-1] > 0.3, shares


@pytest.mark.parametrize("kind", ["boxes", "masks", "keypoints"])
def test_shapes_example_searches_synthesizes_moved_labels_and_evaluates(tmp_path, capsys, kind):
    from examples import shapes

    assert shapes.main(["--kind", kind, "--images", "6", "--synthetic", "6", "--step", "0.25",
                        "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{kind}: detector accuracy" in out and "on the real images 1.000" in out
    folder = tmp_path / kind / "synthetic"
    entries = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == 6
    moved = [e for e in entries if any(a["name"] in ("SafeRotate", "RandomSizedCrop", "ElasticTransform")
                                       for a in e["augmentations"])]
    if kind != "masks":  # geometric augmentations moved the label with the pixels
        assert moved and all(e["label"] != e["source_label"] for e in moved)


def test_shapes_diff_errors_are_iou_and_distance():
    from examples import shapes

    assert shapes.box_diff_error([[0, 0, 10, 10]], [[0, 0, 10, 10]]) == 0.0
    assert shapes.box_diff_error([[0, 0, 10, 10]], [[5, 0, 15, 10]]) == pytest.approx(1 - 50 / 150)
    assert shapes.box_diff_error([], [[0, 0, 1, 1]]) == 1.0 and shapes.box_diff_error([], []) == 0.0
    images, truths = shapes.make_shapes(3)
    for image, truth in zip(images, truths):
        assert shapes.box_diff_error(shapes.predict_boxes([image])[0], [truth["box"]]) < 0.1
        assert shapes.mask_diff_error(shapes.predict_masks([image])[0], truth["mask"]) < 0.1
        assert shapes.keypoint_diff_error(shapes.predict_keypoints([image])[0], [truth["center"]]) < 0.2


def test_model_free_photos_example_writes_a_report_and_synthetic_photos(tmp_path, capsys):
    from examples import photos

    assert photos.main(["--out", str(tmp_path), "--step", "0.5", "--synthetic", "3"]) == 0
    assert (tmp_path / "analytics" / "index.html").is_file()
    assert len(list((tmp_path / "synthetic").glob("synthetic-*.png"))) == 3
    assert augment.load_analysis(tmp_path / "analysis.json").complete


def test_resnet_example_with_random_weights_as_predict_and_factory(tmp_path, capsys):
    from examples import resnet

    predict = resnet.load_predict(weights=None, size=64)
    photos = [np.full((40, 50, 3), 90, np.uint8), np.full((30, 30, 3), 200, np.uint8)]
    outputs = predict(photos)
    assert len(outputs) == 2 and all(0 <= k < 1000 for k in outputs)
    assert resnet.load_predict(weights=None, size=64)(photos) == outputs  # seeded random weights
    assert resnet.main(["--out", str(tmp_path), "--step", "0.5", "--size", "64"]) == 0
    assert "predictions" in capsys.readouterr().out
    assert augment.load_analysis(tmp_path / "analysis.json").settings["strategy"] == "adaptive"


def test_robustness_study_quick_run_writes_its_tables_and_plots(tmp_path):
    from examples import digits_robustness

    assert digits_robustness.main(["--quick", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "results.md").read_text().splitlines()
    table = lines[2:11]
    methods = [line.split("|")[1].strip() for line in table[2:]]
    assert methods == ["baseline", "augment.py realism 0.5", "augment.py realism 0", "augment.py realism -0.5",
                       "RandAugment", "TrivialAugmentWide", "AugMix"]
    assert "ImageNet-C unrelated mCE" in table[0] and "ImageNet-C related mCE" in table[0]
    assert "95 % CI" in lines[0] and any(line.startswith("targets on ImageNet-C unrelated") for line in lines)
    results = json.loads((tmp_path / "results.json").read_text())
    baseline = results["rows"][0]
    assert baseline["catalogue mCE"]["mean"] == pytest.approx(1.0)  # the baseline is the reference
    assert baseline["ImageNet-C unrelated mCE"]["mean"] == pytest.approx(1.0)
    assert results["groups"]["ImageNet-C related"] == ["motion_blur"]
    assert results["wins"]["augment.py realism 0"]["AugMix"]["catalogue"] in (0, 1, 2)
    for name in ("robustness.png", "robustness_imagenet_c.png", "learning_curves.png"):
        assert augment.load_image(str(tmp_path / name)).shape[0] > 100
    # the transform's policy of each arm, saved as a training job would ship it; no files synthesized
    policy = augment.SamplingPolicy.load(tmp_path / "policy-seed1-r0.json")
    assert policy.realism == 0.0 and not list(tmp_path.glob("synthetic-*"))
    # it ends comparing seed 0's baseline with its best arm on the same held-out digits
    compared = results["compare"]
    assert compared["models"][0] == "baseline" and compared["models"][1].startswith("augment.py realism")
    assert compared["paired"] and {s["augmentation"] for s in compared["shifts"]} == {
        "Brighten", "GaussianBlur", "SafeRotate"}
    assert "against baseline" in (tmp_path / "compare" / "index.html").read_text()


def test_robustness_study_statistics_and_seeded_imagenet_c():
    from examples import digits_robustness as study

    stat = study.spread([1.0, 2.0, 3.0])  # sd 1 (ddof 1); t(0.975, 2 dof) = 4.303
    assert stat["sd"] == pytest.approx(1.0) and stat["ci"] == pytest.approx([2 - 4.303 / 3**0.5, 2 + 4.303 / 3**0.5],
                                                                            abs=1e-3)
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    names = ["impulse_noise", "glass_blur", "gaussian_noise"]  # their own generator, a seed=, numpy's global
    first = study.imagenet_c_test_sets(images, names)
    np.random.seed(123)
    again = study.imagenet_c_test_sets(images, names)
    assert all(np.array_equal(first[key], again[key]) for key in first)


@pytest.mark.slow
def test_robustness_study_reproduces_every_number_when_run_again(tmp_path):
    from examples import digits_robustness

    assert digits_robustness.main(["--quick", "--out", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert digits_robustness.main(["--quick", "--out", str(tmp_path)]) == 0  # reuses searches and folders
    assert json.loads((tmp_path / "results.json").read_text())["runs"] == first


def test_robustness_study_measures_corruption_errors_as_hendrycks_and_dietterich():
    from examples import digits_robustness as study

    severities = study.SEVERITIES
    reference = {"clean": 0.1, "corrupted": {f"{n}@{s}": e for n, errors in
                                             {"Blur": [0.2] * 5, "Noise": [0.1, 0.2, 0.3, 0.4, 0.5]}.items()
                                             for s, e in zip(severities, errors)}}
    model = {"clean": 0.05, "corrupted": {f"Blur@{s}": 0.1 for s in severities} |
             {f"Noise@{s}": 0.15 for s in severities}}
    mce, relative = study.corruption_errors(model, reference, ["Blur", "Noise"])
    # CE: Blur 0.5 / 1.0, Noise 0.75 / 1.5; relative CE: Blur 0.25 / 0.5, Noise 0.5 / 1.0
    assert mce == pytest.approx((0.5 + 0.5) / 2)
    assert relative == pytest.approx((0.5 + 0.5) / 2)
    # a corruption the reference does not degrade has no relative CE (left out, not 0 or infinite)
    reference["corrupted"] |= {f"Flat@{s}": 0.1 for s in severities}
    model["corrupted"] |= {f"Flat@{s}": 0.2 for s in severities}
    mce, relative = study.corruption_errors(model, reference, ["Blur", "Noise", "Flat"])
    assert mce == pytest.approx((0.5 + 0.5 + 2.0) / 3) and relative == pytest.approx(0.5)
    # one that barely degrades it (1 point, below the 2-point floor) is left out too, and named
    reference["corrupted"] |= {f"Faint@{s}": 0.11 for s in severities}
    model["corrupted"] |= {f"Faint@{s}": 0.5 for s in severities}
    assert study.corruption_errors(model, reference, ["Blur", "Noise", "Faint"])[1] == pytest.approx(0.5)
    assert study.below_floor(reference, ["Blur", "Faint", "Flat"], "corrupted", severities) == ["Faint", "Flat"]


def test_robustness_study_leaves_out_augmentations_that_change_no_test_image():
    from examples import digits_robustness as study

    gray = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8).reshape(1, 8, 8, 1), 3, axis=3)
    corrupted = study.corrupted_test_sets(gray, ["Brighten", "Hue", "Desaturate"])
    assert study.corruptions(gray, corrupted, ["Brighten", "Hue", "Desaturate"]) == (["Brighten"],
                                                                                      ["Hue", "Desaturate"])
