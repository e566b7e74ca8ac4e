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


def test_robustness_study_quick_run_tunes_on_validation_and_tests_the_chosen_arms(tmp_path):
    from examples import digits_robustness

    assert digits_robustness.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["versions"]["opencv-python-headless"] and results["versions"]["augment.py"] == augment.__version__
    choices = results["choices"]
    assert set(choices) == {"augment.py", "RandAugment", "TrivialAugment", "AugMix"}
    # each family's choice is its lowest validation CE: chosen before any test figure, on validation digits
    for family, members in digits_robustness.CANDIDATES.items():
        assert choices[family] == min(members, key=lambda m: (results["validation"][m]["ce"],
                                                              -results["validation"][m]["accuracy"], m))
    assert results["arms"] == ["baseline", choices["augment.py"], digits_robustness.FLAT, digits_robustness.SHUFFLED,
                               choices["RandAugment"], choices["TrivialAugment"], choices["AugMix"]]
    units = results["units"]
    assert [(u["split"], u["seed"]) for u in units] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert {(u["split"], u["seed"]) for u in results["tuning_units"]} == {(0, 100), (1, 100)}
    assert all("validation" in run for u in results["tuning_units"] for run in u["runs"].values())
    # the controls keep the realism arm's operations and stacking: flat limits, or its limits permuted
    for unit in units:
        ours, flat, shuffled = (unit["policies"][m] for m in (choices["augment.py"], digits_robustness.FLAT,
                                                              digits_robustness.SHUFFLED))
        limits = [[a["max_intensity"] for a in p["augmentations"]] for p in (ours, flat, shuffled)]
        assert sorted(limits[2]) == sorted(limits[0]) and len(set(limits[1])) <= 2
        assert (ours["min_augmentations"], ours["max_augmentations"]) == (flat["min_augmentations"],
                                                                          flat["max_augmentations"])
    tests = [t for t in results["tests"] if t["yardstick"] == "ImageNet-C 15"]
    assert [t["against"] for t in tests] == results["arms"][2:] and all(t["n"] == 4 for t in tests)
    assert all(t["p_holm"] >= t["p_t"] for t in tests)
    assert results["target"]["arm"] == choices["augment.py"] and isinstance(results["target"]["met"], bool)
    assert results["relatives"]["motion_blur"] == "MotionBlur" and results["relatives"]["spatter"] is None
    markdown = (tmp_path / "results.md").read_text()
    assert "## Chosen on validation" in markdown and "p (Holm)" in markdown and "## Yardsticks" in markdown
    baseline = results["rows"][0]
    assert baseline["method"] == "baseline" and baseline["catalogue mCE"]["mean"] == pytest.approx(1.0)
    for name in ("robustness.png", "robustness_imagenet_c.png", "learning_curves.png"):
        assert augment.load_image(str(tmp_path / name)).shape[0] > 100
    assert len(list((tmp_path / "jobs").glob("*.json"))) == 6  # each job saved: an interrupted study resumes
    # it ends comparing split 0, seed 0's baseline with the chosen arm on the same test digits
    compared = results["compare"]
    assert compared["models"] == ["baseline", choices["augment.py"]]
    assert compared["paired"] and {s["augmentation"] for s in compared["shifts"]} == {
        "Brighten", "GaussianBlur", "SafeRotate"}
    assert "against baseline" in (tmp_path / "compare" / "index.html").read_text()


def test_robustness_study_statistics_and_seeded_imagenet_c():
    from examples import digits_robustness as study

    stat = study.spread([1.0, 2.0, 3.0])  # sd 1 (ddof 1); t(0.975, 2 dof) = 4.303
    assert stat["sd"] == pytest.approx(1.0) and stat["ci"] == pytest.approx([2 - 4.303 / 3**0.5, 2 + 4.303 / 3**0.5],
                                                                            abs=1e-3)
    # Holm: sorted p times (m - rank), running maximum, capped at 1, back in the input order
    assert study.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    ours, theirs = np.array([0.5, 0.6, 0.55, 0.7, 0.52]), np.array([0.6, 0.7, 0.6, 0.72, 0.6])
    test = study.paired_test(ours, theirs)
    assert test["wins"] == 5 and test["difference"]["mean"] == pytest.approx(-0.07)
    from scipy import stats

    difference = ours - theirs  # by hand: t = mean / (sd / sqrt(n)), two-sided, n - 1 degrees of freedom
    t = difference.mean() / (difference.std(ddof=1) / 5**0.5)
    assert test["p_t"] == pytest.approx(2 * stats.t.sf(abs(t), 4)) and 0.005 < test["p_t"] < 0.05
    assert test["dz"] == pytest.approx(-0.07 / np.std(ours - theirs, ddof=1))
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    names = ["impulse_noise", "glass_blur", "gaussian_noise"]  # their own generator, a seed=, numpy's global
    first = study.imagenet_c_test_sets(images, names)
    np.random.seed(123)
    again = study.imagenet_c_test_sets(images, names)
    assert all(np.array_equal(first[key], again[key]) for key in first)


def test_robustness_study_controls_match_the_realism_arm():
    from examples import digits_robustness as study

    policy = augment.SamplingPolicy({"Brighten": 0.2, "GaussianBlur": 0.9, "SafeRotate": 0.0, "Hue": 0.5},
                                    {"Brighten": 1.0, "GaussianBlur": 3.0, "SafeRotate": 1.0, "Hue": 1.0},
                                    fewest=1, most=3)
    flat = study.flat_policy(policy)
    # the same operations (a limit of 0 stays 0), weights and stacking; one flat limit, the same mean strength
    assert flat.limits["SafeRotate"] == 0.0 and len({v for v in flat.limits.values() if v > 0}) == 1
    assert (flat.weights, flat.fewest, flat.most) == (policy.weights, policy.fewest, policy.most)
    assert study.mean_drawn_intensity(flat) == pytest.approx(study.mean_drawn_intensity(policy), rel=0.02)
    assert 0.2 < flat.limits["Brighten"] < 0.9
    shuffled = study.shuffled_policy(policy, np.random.default_rng(3))
    assert shuffled.limits["SafeRotate"] == 0.0 and shuffled.limits != policy.limits
    assert sorted(shuffled.limits.values()) == sorted(policy.limits.values())
    train, validation, test = study.split_indices(1797, 1)
    assert len(test) == 449 and len(validation) == 202 and len(train) == 1146
    assert not (set(train) & set(validation)) and not (set(train) & set(test)) and not (set(validation) & set(test))
    assert not np.array_equal(test, study.split_indices(1797, 0)[2])


@pytest.mark.slow
def test_robustness_study_reproduces_every_number_when_run_again(tmp_path):
    from examples import digits_robustness

    assert digits_robustness.main(["--quick", "--out", str(tmp_path / "one")]) == 0
    first = json.loads((tmp_path / "one" / "results.json").read_text())
    # from scratch in another folder, in two worker processes: every figure the same
    assert digits_robustness.main(["--quick", "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    second = json.loads((tmp_path / "two" / "results.json").read_text())
    for key in ("units", "tuning_units", "tests", "choices", "validation"):
        assert strip_seconds(second[key]) == strip_seconds(first[key]), key
    # an interrupted study resumes: a job deleted is run again, the others are read back
    (tmp_path / "two" / "jobs" / "main-split1-seed1.json").unlink()
    assert digits_robustness.main(["--quick", "--out", str(tmp_path / "two")]) == 0
    assert strip_seconds(json.loads((tmp_path / "two" / "results.json").read_text())["units"]) == strip_seconds(
        first["units"])


def strip_seconds(value):
    """The figures of a study without its timings (which differ run to run)."""
    if isinstance(value, dict):
        return {k: strip_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [strip_seconds(v) for v in value]
    return value


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
