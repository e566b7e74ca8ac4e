"""The boundary search: closed-form thresholds, the cache, resume, the predict contract, bad input."""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
from conftest import BrightnessModel, make_augmenter, natural_images, uniform_images, write_pngs

import augment

make = make_augmenter


def test_search_finds_a_closed_form_breaking_point_within_one_step(tmp_path):
    values = [40, 70, 100, 120]
    model = BrightnessModel()
    analysis = make(model).search_randomization_boundaries(
        uniform_images(values), step_size_percent=0.05, analytics_cache=tmp_path / "a.json")
    found = analysis.curves["Brighten"].first_failure_intensities
    for value, intensity in zip(values, found):
        exact = (127 - value) / 255  # the mean must exceed 127
        assert exact <= intensity < exact + 0.05 + 1e-9, (value, exact, intensity)
    # Darkening an already-dark image never flips "bright": no failure anywhere.
    assert analysis.curves["Darken"].first_failure_intensities == [None] * len(values)
    # The 50 % intensity is the median image's first failure.
    assert analysis.curves["Brighten"].intensity_at_share(0.5) == sorted(found)[1]


def test_analysis_file_holds_curves_failures_and_exemplars(tmp_path, uniform_files):
    path = tmp_path / "analysis.json"
    make(BrightnessModel()).search_randomization_boundaries(uniform_files, [0, 0, 0], 0.1, path)
    data = json.loads(path.read_text())
    brighten = data["augmentations"]["Brighten"]
    assert data["version"] == 4 and data["images"] == 3
    assert data["settings"]["intensities"] == [round(k / 10, 6) for k in range(11)]
    assert len(brighten["summary"]["mean_diff_error"]) == 11 == len(brighten["summary"]["changed_share"])
    # 40, 70, 100 need +87, +57, +27: first failures at 0.4, 0.3, 0.2
    assert brighten["summary"]["failed_share"][2:5] == pytest.approx([1 / 3, 2 / 3, 1])
    with np.load(tmp_path / "analysis.json.rows" / data["rows"]["shards"][0]["file"]) as shard:
        assert (shard["a0.diff"] >= 0.5).argmax(axis=1).tolist() == [4, 3, 2]
    assert brighten["summary"]["label_accuracy"][0] == 1.0
    exemplar = brighten["summary"]["exemplar"]
    assert exemplar["image"] == 1 and exemplar["first_failure_intensity"] == 0.3
    assert exemplar["last_success_intensity"] == 0.2 and exemplar["first_failure_output"] == "1"
    assert augment.load_analysis(path).curves["Brighten"].first_failure_intensities == [0.4, 0.3, 0.2]


def test_second_search_with_same_inputs_makes_no_predict_call(tmp_path, uniform_files):
    path = tmp_path / "analysis.json"
    first = make(BrightnessModel()).search_randomization_boundaries(uniform_files, None, 0.1, path)
    again = BrightnessModel()
    second = make(again).search_randomization_boundaries(uniform_files, None, 0.1, path)
    assert again.calls == 0
    assert second.to_json() == first.to_json()


@pytest.mark.parametrize("change", ["images", "step", "labels", "model_id"])
def test_changed_inputs_invalidate_the_cache_and_keep_a_backup(tmp_path, uniform_files, change):
    path = tmp_path / "analysis.json"
    make(BrightnessModel(), model_id="weights v1").search_randomization_boundaries(uniform_files, [0, 0, 0], 0.1,
                                                                                   path)
    files, step, labels, model_id = uniform_files, 0.1, [0, 0, 0], "weights v1"
    if change == "images":
        files, labels = uniform_files[:2], [0, 0]
    elif change == "step":
        step = 0.25
    elif change == "labels":
        labels = [1, 1, 1]
    else:
        model_id = "weights v2"  # a retrained model
    model = BrightnessModel()
    with pytest.warns(UserWarning, match="kept as"):
        analysis = make(model, model_id=model_id).search_randomization_boundaries(files, labels, step, path)
    assert analysis.settings["model_id"] == model_id
    assert model.calls > 0
    assert len(analysis.images) == len(files) and analysis.settings["step_size"] == step
    backups = [p for p in os.listdir(tmp_path) if p.startswith("analysis.json.bak-")]
    assert len(backups) == 2 and min(backups) + ".rows" in backups  # the file and its rows, moved together
    assert augment.load_analysis(tmp_path / min(backups)).settings["model_id"] == "weights v1"  # the old one, whole


def test_a_cache_made_without_model_id_still_matches_a_search_without_one(tmp_path, uniform_files):
    path = tmp_path / "analysis.json"
    make(BrightnessModel()).search_randomization_boundaries(uniform_files, None, 0.1, path)
    data = json.loads(path.read_text())
    del data["settings"]["model_id"]  # as written before model_id existed
    path.write_text(json.dumps(data))
    model = BrightnessModel()
    make(model).search_randomization_boundaries(uniform_files, None, 0.1, path)
    assert model.calls == 0


def test_adding_an_augmentation_reuses_the_searched_ones(tmp_path, uniform_files):
    path = tmp_path / "analysis.json"
    make(BrightnessModel(), augmentations=["Brighten"]).search_randomization_boundaries(uniform_files, None, 0.1, path)
    model = BrightnessModel()
    analysis = make(model, augmentations=["Brighten", "Darken"]).search_randomization_boundaries(
        uniform_files, None, 0.1, path)
    assert model.calls == len(uniform_files) * 10 + len(uniform_files)  # Darken's grid + the originals
    assert set(analysis.curves) == {"Brighten", "Darken"}


def test_interrupted_search_resumes_and_matches_an_uninterrupted_one(tmp_path):
    images = write_pngs(tmp_path / "imgs", uniform_images([30, 60, 90, 110, 125, 20]))
    reference = make(BrightnessModel()).search_randomization_boundaries(images, None, 0.1, None)
    path = tmp_path / "analysis.json"
    crashing = BrightnessModel(fail_after=40)
    with pytest.raises(RuntimeError, match="model crashed"):
        make(crashing, checkpoint_seconds=0).search_randomization_boundaries(
            images, None, 0.1, path, images_in_flight=1)
    partial = augment.load_analysis(path)
    missing = [sum(partial.curves[name].diff_errors[k] is None for name in ("Brighten", "Darken"))
               for k in range(len(images))]
    assert 0 < sum(missing) < 2 * len(images)
    resumed_model = BrightnessModel()
    resumed = make(resumed_model).search_randomization_boundaries(images, None, 0.1, path)
    assert resumed_model.calls == sum(1 + 10 * m for m in missing if m)  # only the unfinished pairs
    assert resumed.to_json()["augmentations"] == reference.to_json()["augmentations"]


def test_filename_predict_gets_private_temporary_files_removed_even_on_error(tmp_path, monkeypatch):
    from PIL import Image

    images = write_pngs(tmp_path / "imgs", uniform_images([60, 100]))
    seen: list[str] = []
    monkeypatch.chdir(tmp_path)

    def predict_file(path):
        assert isinstance(path, str) and os.path.isabs(path)
        seen.append(path)
        return int(np.asarray(Image.open(path)).mean() > 127)

    augmenter = augment.ImageAugmenter(predict_file, augmentations=["Brighten"], predict_input="filename",
                                       progress=False)
    analysis = augmenter.search_randomization_boundaries(images, None, 0.25, None)
    assert analysis.curves["Brighten"].first_failure_intensities == [0.5, 0.25]
    assert set(images) <= {os.path.relpath(p, tmp_path) for p in seen} | set(seen)
    temporary = {os.path.dirname(p) for p in seen if p not in images}
    assert temporary and all(not d.startswith(str(tmp_path)) and not os.path.exists(d) for d in temporary)

    def crashing(path):
        seen.append(path)
        if len(seen) > 6:
            raise RuntimeError("boom")
        return 0

    seen.clear()
    with pytest.raises(RuntimeError, match="boom"):
        augment.ImageAugmenter(crashing, augmentations=["Brighten"], predict_input="filename",
                               progress=False).search_randomization_boundaries(images, None, 0.25, None)
    assert all(not os.path.exists(os.path.dirname(p)) for p in seen if p not in images)
    assert sorted(os.listdir(tmp_path)) == ["imgs"]  # nothing written to the working directory


def test_auto_mode_detects_a_filename_predict(tmp_path):
    from PIL import Image

    images = write_pngs(tmp_path / "imgs", uniform_images([60]))
    augmenter = augment.ImageAugmenter(lambda path: int(np.asarray(Image.open(path)).mean() > 127),
                                       augmentations=["Brighten"], progress=False)
    analysis = augmenter.search_randomization_boundaries(images, None, 0.25, None)
    assert analysis.curves["Brighten"].first_failure_intensities == [0.5]


def test_model_free_default_finds_where_images_stop_resembling_themselves():
    photos = natural_images((48, 48))
    augmenter = augment.ImageAugmenter(None, augmentations=["GaussianBlur", "PixelDropout"], progress=False)
    analysis = augmenter.search_randomization_boundaries(photos, None, 0.1, None)
    for name in ["GaussianBlur", "PixelDropout"]:
        curve = analysis.curves[name]
        assert curve.mean_diff_error[0] == 0.0 and curve.mean_diff_error[-1] > 0.5, (name, curve.mean_diff_error)
        assert curve.intensity_at_share(0.5) is not None
    assert [record.output for record in analysis.images] == [str((k, 1.0)) for k in range(len(photos))]


def test_bad_input_is_reported_before_any_prediction(tmp_path, uniform_files):
    model = BrightnessModel()
    augmenter = make(model)
    with pytest.raises(ValueError, match="not found: .*missing.png"):
        augmenter.search_randomization_boundaries(uniform_files + [str(tmp_path / "missing.png")], None, 0.1, None)
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        augmenter.search_randomization_boundaries(uniform_files, [0, 1], 0.1, None)
    with pytest.raises(ValueError, match="empty"):
        augmenter.search_randomization_boundaries([], None, 0.1, None)
    with pytest.raises(ValueError, match="step_size_percent"):
        augmenter.search_randomization_boundaries(uniform_files, None, 0.3, None)
    assert model.calls == 0
    with pytest.raises(ValueError, match="Did you mean 'SafeRotate'.*Valid names"):
        augment.ImageAugmenter(model, augmentations=["SafeRotat"])


def test_diff_error_outside_zero_one_is_an_error_naming_the_value():
    for bad in [1.5, -0.1, math.nan, "x"]:
        augmenter = make(BrightnessModel(), diff_error=lambda a, b, bad=bad: bad)
        with pytest.raises(ValueError, match=f"got {bad!r}.*image array-0, augmentation Brighten"):
            augmenter.search_randomization_boundaries(uniform_images([60]), None, 0.5, None)


def test_wrong_length_from_a_batched_predict_is_an_error():
    augmenter = make(lambda images: [0] * (len(images) - 1))
    with pytest.raises(ValueError, match="returned 15 outputs for 16 images"):
        augmenter.search_randomization_boundaries(uniform_images([60]), None, 0.05, None)


def test_percent_step_is_read_as_percent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analysis = make(BrightnessModel()).search_randomization_boundaries(uniform_images([60]), None, 25, None)
    assert analysis.intensities == [0.0, 0.25, 0.5, 0.75, 1.0]


# -- comparing outputs: every element, no string truncation ----------------------------------


def middle_mask_model(images):
    """A 40x40 mask: 1 where the red channel is above 127."""
    return [(np.asarray(image)[..., 0] > 127).astype(np.uint8) for image in images]


def test_a_change_in_the_middle_of_a_large_mask_output_is_a_change():
    image = np.zeros((40, 40, 3), np.uint8)
    image[19:21, 19:21] = 60  # the middle flips at Brighten 0.3 (60 + 76.5 > 127), the rest at 0.5
    analysis = make(middle_mask_model, augmentations=["Brighten"]).search_randomization_boundaries(
        [image], None, 0.05, None)
    # str() of a 40x40 array elides its middle: compared that way, the first failure was 0.5.
    assert analysis.curves["Brighten"].first_failure_intensities == [0.3]


def test_outputs_compare_element_by_element_dict_keys_in_any_order_and_floats_within_noise():
    equal = augment.outputs_equal
    assert equal({"a": 1, "b": [0.1 + 0.2]}, {"b": [0.3], "a": 1})
    assert not equal({"a": 1}, {"a": 1, "b": 2})
    big = np.zeros((50, 50), np.float32)
    changed = big.copy()
    changed[25, 25] = 1e-3
    assert not equal(big, changed) and equal(big, big + np.float32(1e-12))
    assert equal(np.arange(5), [0, 1, 2, 3, 4]) and not equal(np.arange(5), np.arange(6))
    assert equal(7, "7") and not equal(7, 8) and equal((1, 2), [1, 2])
    torch = pytest.importorskip("torch")
    assert equal(torch.zeros(3, 3), np.zeros((3, 3))) and not equal(torch.zeros(3), torch.ones(3))
    assert augment.default_diff_error([np.int64(3)], [3]) == 0.0


def test_a_changed_element_of_an_array_label_invalidates_the_cache(tmp_path):
    images = [np.full((40, 40, 3), v, np.uint8) for v in (40, 90)]
    labels = [np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)]
    path = tmp_path / "analysis.json"
    make(middle_mask_model, augmentations=["Brighten"]).search_randomization_boundaries(images, labels, 0.25, path)
    labels[1][20, 20] = 1  # one pixel in the middle: invisible to a truncated str()
    model = BrightnessModel()
    counting = make(lambda batch: (model(batch), middle_mask_model(batch))[1], augmentations=["Brighten"])
    with pytest.warns(UserWarning, match="not reusing"):
        analysis = counting.search_randomization_boundaries(images, labels, 0.25, path)
    assert model.calls == 2 * 5  # searched afresh
    assert analysis.curves["Brighten"].label_accuracy[0] == 0.5  # image 1 no longer matches its label


RANDOM_DRAWS = ["RandomSizedCrop", "MultiplicitiveNoise", "PixelDropout", "MotionBlur", "ElasticTransform"]


def block_means(images):
    """A model that sees coarse structure: 4x4 block means of the red channel, quantized."""
    return [tuple((np.asarray(i)[..., 0].reshape(4, 16, 4, 20).mean(axis=(1, 3)) // 24).astype(int).ravel())
            for i in images]


def test_results_do_not_depend_on_where_the_images_live_or_how_their_path_is_spelled(tmp_path, monkeypatch):
    import shutil

    photos = natural_images((64, 80))
    files = write_pngs(tmp_path / "data" / "a", photos)
    shutil.copytree(tmp_path / "data" / "a", tmp_path / "moved" / "elsewhere")
    monkeypatch.chdir(tmp_path / "data")
    spellings = {
        "relative": [os.path.join("a", os.path.basename(f)) for f in files],
        "absolute": files,
        "moved": sorted(str(p) for p in (tmp_path / "moved" / "elsewhere").glob("*.png")),
        "arrays": photos,
    }
    rows = {}
    for spelling, images in spellings.items():
        analysis = make(block_means, augmentations=RANDOM_DRAWS).search_randomization_boundaries(
            images, None, 0.1, None)
        rows[spelling] = {name: curve.diff_errors for name, curve in analysis.curves.items()}
        assert any(any(any(v > 0 for v in row) for row in curve) for curve in rows[spelling].values())
    assert rows["relative"] == rows["absolute"] == rows["moved"] == rows["arrays"]


def test_a_long_images_finished_augmentations_are_checkpointed_before_the_image_ends(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([60], size=(64, 64)))
    names = ["Brighten", "Darken", "Hue", "Contrast"]
    crashing = BrightnessModel(fail_after=1 + 2 * 10 + 4)  # the original, two whole sweeps, part of a third
    augmenter = augment.ImageAugmenter(crashing, augmentations=names, batch_size=1, checkpoint_seconds=0,
                                       progress=False)
    with pytest.raises(RuntimeError, match="model crashed"):
        augmenter.search_randomization_boundaries(files, None, 0.1, tmp_path / "analysis.json")
    saved = augment.load_analysis(tmp_path / "analysis.json")
    assert [saved.curves[name].searched_count for name in names] == [1, 1, 0, 0]
    model = BrightnessModel()
    augment.ImageAugmenter(model, augmentations=names, batch_size=1, progress=False
                           ).search_randomization_boundaries(files, None, 0.1, tmp_path / "analysis.json")
    assert model.calls == 1 + 2 * 10  # the original again, then only Hue and Contrast
