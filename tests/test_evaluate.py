"""Evaluation: the seed's keys, accuracy, the per-augmentation breakdown, images predict failed on."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BrightnessModel, make_augmenter, uniform_images, write_pngs
from test_reliability import flaky

import augment


def test_evaluate_returns_the_seed_keys_and_accuracy(uniform_files):
    result = make_augmenter(BrightnessModel()).evaluate(uniform_files, [0, 1, 0])
    assert result["output_differs_count"] == 1 and result["differing_output_errs"] == [1.0]
    assert result["avg_diff_error"] == pytest.approx(1 / 3) and result["accuracy"] == pytest.approx(2 / 3)
    assert result["differing_outputs"][0]["file"] == uniform_files[1]
    assert result["diff_errors"] == [0.0, 1.0, 0.0] and result["skipped"] == []


def test_evaluate_breaks_failures_down_by_the_augmentations_each_synthetic_image_had(tmp_path):
    files = write_pngs(tmp_path / "src", uniform_images([40, 70, 100]))
    augmenter = make_augmenter(BrightnessModel(), augmentations=["Brighten", "Hue"])
    augmenter.search_randomization_boundaries(files, None, 0.1, tmp_path / "analysis.json")
    tables = {}
    for only, never in (("Hue", "Brighten"), ("Brighten", "Hue")):
        augmenter.set_augmentation_weight(only, 1)
        augmenter.set_augmentation_weight(never, 0)
        made, _ = augmenter.synthesize_more(files, None, realism=-1, count=6, output_dir=tmp_path / only,
                                            min_random_augmentations=1, max_random_augmentations=1)
        result = augmenter.evaluate(made, [0] * len(made))
        tables[only] = result["by_augmentation"]
        assert list(tables[only]) == [only] and tables[only][only]["images"] == 6
        assert tables[only][only]["failures"] == result["output_differs_count"]
    assert tables["Hue"]["Hue"]["failures"] == 0  # hue never changes a gray image's brightness
    assert tables["Brighten"]["Brighten"]["failures"] >= 3  # realism -1: well past where "bright" flips


def test_evaluate_leaves_out_and_lists_what_predict_failed_on():
    augmenter = augment.ImageAugmenter(flaky, augmentations=["Brighten"], batch_size=4, on_error="skip",
                                       progress=False)
    result = augmenter.evaluate(uniform_images([60, 200, 150, 5]), [0, 1, 0, 0])
    assert result["count"] == 2 and result["accuracy"] == 0.5  # 60 -> 0 is right, 150 -> 1 is wrong
    assert [item["file"] for item in result["skipped"]] == ["array-1", "array-3"]
    assert "returned None" in result["skipped"][0]["reason"] and "dark image" in result["skipped"][1]["reason"]


def test_evaluate_refuses_missing_labels_and_unreadable_images(tmp_path):
    augmenter = make_augmenter(BrightnessModel())
    with pytest.raises(ValueError, match="img_labels is required"):
        augmenter.evaluate(uniform_images([60]), None)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png"):
        augmenter.evaluate([str(tmp_path / "bad.png")], [0])
    assert np.isclose(augmenter.evaluate(uniform_images([200]), ["1"])["accuracy"], 1.0)  # 1 == "1"
