"""Analysis files of format 4: per-image rows in append-only shard files beside analysis.json.

A checkpoint appends only the rows new since the last one; a loaded file answers with its
stored summaries until rows are used; damaged, missing or foreign shards are errors that name
the file; older single-document files still load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, BrightnessModel, make_augmenter, uniform_images, write_pngs
from models import oracles

import augment

VALUES = [20, 45, 70, 95, 120, 30, 60, 100]


def shards_of(path):
    return json.loads(path.read_text())["rows"]["shards"]


def slow_bright(images):  # slow enough that a search of 8 images makes several checkpoints
    time.sleep(0.02)
    return oracles.bright(images)


@pytest.fixture(autouse=True, params=["rows in memory", "rows released"])
def rows_mode(request, monkeypatch):
    """Every test here runs twice: with the rows in memory (small searches), and with a search that
    releases them at each checkpoint (large ones: rows_in_memory=None from _RELEASE_FROM pairs)."""
    if request.param == "rows released":
        monkeypatch.setattr(augment, "_RELEASE_FROM", 0)
    return request.param


def searched(tmp_path, **options):
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES))
    path = tmp_path / "analysis.json"
    options.setdefault("checkpoint_seconds", 0)
    analysis = make_augmenter(slow_bright, batch_size=4, **options).search_randomization_boundaries(
        files, [0] * len(files), 0.1, path, images_in_flight=1)
    return files, path, analysis


def test_each_checkpoint_appends_only_new_rows_and_the_files_give_back_the_analysis(tmp_path, monkeypatch):
    monkeypatch.setattr(augment, "_COMPACT_AFTER_SEARCH", 1000)  # keep every checkpoint's shard
    files, path, analysis = searched(tmp_path)
    shards = shards_of(path)
    assert len(shards) >= 3 and sorted(os.listdir(tmp_path / "analysis.json.rows")) == [s["file"] for s in shards]
    written = {"Brighten": 0, "Darken": 0}
    for entry in shards:
        with np.load(tmp_path / "analysis.json.rows" / entry["file"]) as shard:
            meta = json.loads(shard["meta"].tobytes())
            for i, augmentation in enumerate(meta["augmentations"]):
                written[augmentation["name"]] += len(shard[f"a{i}.images"])
    assert written == {"Brighten": len(files), "Darken": len(files)}  # every (image, augmentation) row once
    loaded = augment.load_analysis(path)
    assert loaded.to_json() == analysis.to_json()
    assert loaded.curves["Brighten"].first_failure_intensities == [
        round(max(0.0, np.ceil((127 - v) / 25.5) / 10), 6) for v in VALUES]  # closed form: +255 t passes 127


def test_a_loaded_file_answers_summaries_without_reading_rows(tmp_path):
    _, path, analysis = searched(tmp_path)
    loaded = augment.load_analysis(path)
    curve = loaded.curves["Darken"]
    assert curve.intensity_at_share(0.5) == analysis.curves["Darken"].intensity_at_share(0.5)
    assert curve.safe_intensity == analysis.curves["Darken"].safe_intensity and curve.searched_count == len(VALUES)
    assert not curve.diff_errors.loaded  # from the file's summary block
    assert curve.diff_errors[3] == analysis.curves["Darken"].diff_errors[3]  # rows on first use
    assert curve.diff_errors.loaded and curve.summarize() == analysis.curves["Darken"].summarize()


def test_a_finished_search_leaves_one_shard_when_checkpoints_made_many(tmp_path, monkeypatch):
    monkeypatch.setattr(augment, "_COMPACT_AFTER_SEARCH", 2)
    _, path, analysis = searched(tmp_path)
    assert len(shards_of(path)) == 1 and len(os.listdir(tmp_path / "analysis.json.rows")) == 1
    assert augment.load_analysis(path).to_json() == analysis.to_json()


def test_rows_keep_every_verdict_at_the_failure_threshold(tmp_path):
    near = [0.49999999999, 0.5, 0.50000000001, 0.4999999, 0.3, 1 / 3, 0.0, 1.0]
    narrow = augment._to_float32(near, 0.5)
    assert ((narrow >= np.float64(0.5)) == (np.array(near) >= 0.5)).all()
    assert np.abs(narrow - np.array(near)).max() < 1e-7

    def diff_error(output, reference):  # 0.3 < 0.30000001 everywhere: never a failure, but float32(0.3) is above
        return 0.3

    augmenter = make_augmenter(oracles.bright, diff_error=diff_error, augmentations=["Brighten"],
                               failure_threshold=0.30000001)
    analysis = augmenter.search_randomization_boundaries(uniform_images([40]), None, 0.25, tmp_path / "a.json")
    loaded = augment.load_analysis(tmp_path / "a.json")
    assert float(np.float32(0.3)) >= 0.30000001
    assert analysis.curves["Brighten"].first_failure_intensities == [None]
    assert loaded.curves["Brighten"].first_failure_intensities == [None]
    row = loaded.curves["Brighten"].diff_errors[0]
    assert row[0] == 0.0 and all(0.3 - 1e-7 < v < 0.30000001 for v in row[1:])  # kept below the threshold


def test_a_damaged_or_missing_shard_is_an_error_naming_it_and_a_search_sets_both_aside(tmp_path):
    files, path, _ = searched(tmp_path)
    shard = tmp_path / "analysis.json.rows" / shards_of(path)[-1]["file"]
    content = shard.read_bytes()
    shard.write_bytes(content[: len(content) // 2])
    with pytest.raises(augment.AugmentError, match=f"rows file {shard}.* bytes"):
        augment.load_analysis(path)
    shard.write_bytes(content[:-8] + b"\0" * 8)  # right size, damaged inside
    with pytest.raises(augment.AugmentError, match=f"rows file {shard}"):
        augment.load_analysis(path).load_rows()
    model = BrightnessModel()
    with pytest.warns(UserWarning, match="kept as"):
        analysis = make_augmenter(model, batch_size=4).search_randomization_boundaries(
            files, [0] * len(files), 0.1, path)
    assert model.calls > 0 and analysis.complete
    backups = sorted(p.name for p in tmp_path.glob("analysis.json.bak-*"))  # the file, and its rows
    assert len(backups) == 2 and (tmp_path / backups[1] / shard.name).read_bytes() == content[:-8] + b"\0" * 8

    copy = tmp_path / "elsewhere" / "copy.json"
    copy.parent.mkdir()
    shutil.copy(path, copy)  # the index without its rows folder
    with pytest.raises(augment.AugmentError, match=r"copy\.json\.rows/rows-\d+\.npz, which is missing"):
        augment.load_analysis(copy)


def test_a_shard_of_another_analysis_is_refused(tmp_path):
    _, path, _ = searched(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    files = write_pngs(other / "imgs", uniform_images([10, 250]))
    make_augmenter(oracles.bright).search_randomization_boundaries(files, None, 0.1, other / "analysis.json")
    mine = tmp_path / "analysis.json.rows" / shards_of(path)[0]["file"]
    theirs = other / "analysis.json.rows" / shards_of(other / "analysis.json")[0]["file"]
    shutil.copy(mine, theirs)
    data = json.loads((other / "analysis.json").read_text())
    data["rows"]["shards"][0]["bytes"] = mine.stat().st_size
    (other / "analysis.json").write_text(json.dumps(data))
    with pytest.raises(augment.AugmentError, match="does not belong to this analysis"):
        augment.load_analysis(other / "analysis.json")


def test_single_document_files_of_formats_1_to_3_load_and_are_resumed_into_format_4(tmp_path):
    files, path, analysis = searched(tmp_path, augmentations=["Brighten"])
    document = analysis.to_json()
    assert document["version"] == 3 and len(document["augmentations"]["Brighten"]["diff_errors"]) == len(files)
    shutil.rmtree(tmp_path / "analysis.json.rows")
    path.write_text(json.dumps(document))
    assert augment.load_analysis(path).to_json() == document
    model = BrightnessModel()
    resumed = make_augmenter(model, batch_size=4).search_randomization_boundaries(  # Darken is new
        files, [0] * len(files), 0.1, path)
    assert model.calls > 0 and resumed.curves["Brighten"].to_json() == analysis.curves["Brighten"].to_json()
    assert json.loads(path.read_text())["version"] == 4
    assert augment.load_analysis(path).to_json() == resumed.to_json()


def test_a_changed_definition_ignores_the_old_rows_in_earlier_shards(tmp_path, monkeypatch):
    files, path, _ = searched(tmp_path, augmentations=["Brighten"], checkpoint_seconds=3600)
    shutil.copy(path, tmp_path / "before.json")
    entry = augment.CATALOGUE["Brighten"]
    monkeypatch.setitem(augment.CATALOGUE, "Brighten", augment.Augmentation(
        **{**{f: getattr(entry, f) for f in entry.__dataclass_fields__}, "variant": "test"}))
    model = BrightnessModel()
    analysis = make_augmenter(model, batch_size=4, augmentations=["Brighten"], checkpoint_seconds=3600
                              ).search_randomization_boundaries(files, [0] * len(files), 0.1, path)
    assert model.calls > 0
    old_shards = [entry["file"] for entry in shards_of(tmp_path / "before.json")]
    assert [entry["file"] for entry in shards_of(path)][:len(old_shards)] == old_shards  # still listed: their
    loaded = augment.load_analysis(path)  # Brighten rows have another definition, so they are ignored
    assert loaded.curves["Brighten"].definition == augment.CATALOGUE["Brighten"].definition
    assert loaded.to_json() == analysis.to_json()


def test_a_loaded_analysis_pickles_whole(tmp_path):
    import pickle

    _, path, analysis = searched(tmp_path)
    copy = pickle.loads(pickle.dumps(augment.load_analysis(path)))
    assert copy.to_json() == analysis.to_json()


# -- found by a hostile review ----------------------------------------------------------------


def test_a_loaded_analysis_whose_file_another_search_rewrote_says_so_instead_of_reading_its_rows(tmp_path):
    files, path, _ = searched(tmp_path)
    lazy = augment.load_analysis(path)  # rows not read yet
    others = write_pngs(tmp_path / "others", uniform_images([200, 210, 220]))
    with pytest.warns(UserWarning, match="kept as"):
        make_augmenter(oracles.bright).search_randomization_boundaries(others, None, 0.1, path)
    with pytest.raises(augment.AugmentError, match="another search rewrote the analysis since it was loaded"):
        lazy.curves["Brighten"].diff_errors[0]


def test_saving_over_a_file_another_search_rewrote_is_refused_and_a_fresh_load_saves_every_row(tmp_path):
    files, path, analysis = searched(tmp_path)
    analysis.load_rows()  # released rows are read from the shards: read them before another save replaces them
    loaded = augment.load_analysis(path)
    loaded.load_rows()
    make_augmenter(oracles.bright, augmentations=["Brighten", "Darken", "Hue"]).search_randomization_boundaries(
        files, [0] * len(files), 0.1, path)  # appends Hue: the file now lists another set of shards
    loaded.curves["Darken"].last_success_output[0] = "edited"
    with pytest.raises(augment.AugmentError, match="changed on disk since this analysis read or wrote it"):
        loaded.save(path)  # it would have dropped Hue (it once did)
    fresh = augment.load_analysis(path)
    fresh.curves["Darken"].last_success_output[0] = "edited"
    fresh.save(path)
    again = augment.load_analysis(path)
    assert again.curves["Darken"].last_success_output[0] == "edited" and "Hue" in again.curves
    assert again.curves["Brighten"].to_json() == analysis.curves["Brighten"].to_json()


def test_curves_added_to_a_saved_analysis_and_every_kind_of_edit_are_saved(tmp_path):
    files, path, _ = searched(tmp_path, augmentations=["Brighten"])
    other = make_augmenter(oracles.bright, augmentations=["Darken"]).search_randomization_boundaries(
        files, [0] * len(files), 0.1, None)
    analysis = augment.load_analysis(path)
    analysis.curves.update(other.curves)
    curve = analysis.curves["Brighten"]
    curve.last_success_output[1], curve.label_errors[2] = "edited", [0.0] * 11
    analysis.images[3].label = 7
    analysis.save(path)
    again = augment.load_analysis(path)
    assert again.to_json() == analysis.to_json()
    assert again.curves["Darken"].searched_count == len(files) and again.images[3].label == 7
    assert again.curves["Brighten"].last_success_output[1] == "edited"


def test_rows_of_an_earlier_run_of_the_same_definition_do_not_come_back(tmp_path, monkeypatch):
    files, path, _ = searched(tmp_path, augmentations=["Brighten"], checkpoint_seconds=3600)
    entry = augment.CATALOGUE["Brighten"]
    monkeypatch.setitem(augment.CATALOGUE, "Brighten", augment.Augmentation(
        **{**{f: getattr(entry, f) for f in entry.__dataclass_fields__}, "variant": "other"}))
    make_augmenter(oracles.bright, augmentations=["Brighten"]).search_randomization_boundaries(
        files, [0] * len(files), 0.1, path)
    monkeypatch.setitem(augment.CATALOGUE, "Brighten", entry)  # back: a search that stops after a few images
    with pytest.raises(RuntimeError, match="model crashed"):
        make_augmenter(BrightnessModel(fail_after=30), augmentations=["Brighten"], batch_size=4).\
            search_randomization_boundaries(files, [0] * len(files), 0.1, path)
    lazy = augment.load_analysis(path)
    stored = lazy.curves["Brighten"].searched_count
    assert 0 < stored < len(files)
    lazy.load_rows()
    assert lazy.curves["Brighten"].searched_count == stored  # not the first run's rows


def test_a_cache_and_the_same_name_with_json_keep_their_own_rows(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 90]))
    for name in ("run", "run.json"):
        make_augmenter(oracles.bright).search_randomization_boundaries(files, None, 0.1, tmp_path / name)
    assert augment.load_analysis(tmp_path / "run").to_json() == augment.load_analysis(tmp_path / "run.json").to_json()


def test_a_shard_damaged_inside_its_compressed_data_is_named_and_set_aside(tmp_path):
    import zipfile

    files, path, _ = searched(tmp_path, augmentations=["Brighten"], checkpoint_seconds=3600)
    shard = tmp_path / "analysis.json.rows" / shards_of(path)[0]["file"]
    content = bytearray(shard.read_bytes())
    with zipfile.ZipFile(shard) as archive:
        member = archive.getinfo("meta.npy")
    content[member.header_offset + 30 + len("meta.npy") + member.compress_size // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    with pytest.raises(augment.AugmentError, match=f"rows file {shard} is truncated or corrupt"):
        augment.load_analysis(path)
    model = BrightnessModel()
    with pytest.warns(UserWarning, match="kept as"):
        make_augmenter(model, augmentations=["Brighten"]).search_randomization_boundaries(files, [0] * len(files),
                                                                                          0.1, path)
    assert model.calls > 0 and augment.load_analysis(path).complete


def test_a_read_error_on_a_shard_stops_the_search_and_keeps_the_file(tmp_path, monkeypatch):
    import errno

    files, path, _ = searched(tmp_path, augmentations=["Brighten"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "analysis.json.rows").iterdir()}
    real_load = np.load

    def failing_load(file, *args, **kwargs):
        if str(file).endswith(".npz"):
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", failing_load)
    model = BrightnessModel()
    with pytest.raises(OSError, match="Input/output error"):
        make_augmenter(model, augmentations=["Brighten"]).search_randomization_boundaries(files, [0] * len(files),
                                                                                          0.1, path)
    assert model.calls == 0 and not list(tmp_path.glob("*.bak-*"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "analysis.json.rows").iterdir()} == before


def test_an_analysis_file_reached_through_a_link_loads_resumes_and_is_replaced_not_written_through(tmp_path):
    files, path, analysis = searched(tmp_path)
    target = {p.name: p.read_bytes() for p in [path, *(tmp_path / "analysis.json.rows").iterdir()]}
    (tmp_path / "latest.json").symlink_to(path)
    assert augment.load_analysis(tmp_path / "latest.json").to_json() == analysis.to_json()
    model = BrightnessModel()
    resumed = make_augmenter(model, batch_size=4, augmentations=["Brighten", "Darken", "Hue"]
                             ).search_randomization_boundaries(files, [0] * len(files), 0.1, tmp_path / "latest.json")
    assert model.calls == len(files) * 11  # Hue only: the linked file's rows were read
    assert not (tmp_path / "latest.json").is_symlink()  # replaced by the new analysis, with its own rows
    assert augment.load_analysis(tmp_path / "latest.json").to_json() == resumed.to_json()
    assert {p.name: p.read_bytes() for p in [path, *(tmp_path / "analysis.json.rows").iterdir()]} == target


def test_save_holds_the_file_lock(tmp_path):
    _, path, analysis = searched(tmp_path)
    with augment._lock_for_file(str(path)), pytest.raises(augment.AugmentError, match="in use by another"):
        analysis.save(path)


def test_a_replaced_column_a_changed_definition_and_edits_to_a_lazy_curve_count(tmp_path):
    _, path, analysis = searched(tmp_path)
    loaded = augment.load_analysis(path)
    loaded.curves["Darken"].last_success_output = ["replaced"] * len(VALUES)  # a whole column, as a list
    loaded.curves["Brighten"].definition = "hand-made"  # every row kept under the new definition
    loaded.save(path)
    again = augment.load_analysis(path)
    assert list(again.curves["Darken"].last_success_output) == ["replaced"] * len(VALUES)
    assert again.curves["Brighten"].definition == "hand-made"
    again.load_rows()
    assert again.curves["Brighten"].searched_count == len(VALUES)
    assert again.curves["Brighten"].diff_errors == analysis.curves["Brighten"].diff_errors

    fresh = augment.load_analysis(path)
    curve = fresh.curves["Darken"]
    before = curve.label_accuracy
    for k in range(len(VALUES)):
        curve.label_errors[k] = [1.0] * 11  # every image wrong at every intensity
    assert curve.label_accuracy == [0.0] * 11 != before  # not the file's summary any more


def test_a_file_where_the_rows_folder_goes_is_an_error_before_any_prediction(tmp_path):
    (tmp_path / "analysis.json.rows").write_text("mine")
    model = BrightnessModel()
    with pytest.raises(augment.AugmentError, match=r"analysis\.json\.rows is not a folder"):
        make_augmenter(model).search_randomization_boundaries(uniform_images([40]), None, 0.1,
                                                              tmp_path / "analysis.json")
    assert model.calls == 0 and (tmp_path / "analysis.json.rows").read_text() == "mine"


def test_columns_answer_like_the_lists_they_were(tmp_path):
    _, _, analysis = searched(tmp_path)
    curve = analysis.curves["Brighten"]
    rows, outputs = curve.diff_errors, curve.last_success_output
    assert rows.count(None) == 0 and outputs.count(None) == list(outputs).count(None)
    assert rows[-1] == list(rows)[-1] and rows[1:3] == list(rows)[1:3] and rows.copy() == list(rows)
    rows[0:2] = [None, [0.0] * 11]
    assert rows[0] is None and rows[1] == [0.0] * 11 and rows.fresh >= {0, 1}
    with pytest.raises(ValueError, match="cannot assign 1 values to a slice of 2"):
        rows[2:4] = [[0.0] * 11]
    assert hash(curve.summarize().first_failure_intensities) == hash(tuple(curve.first_failure_intensities))


def test_mean_diff_errors_are_the_means_of_the_values_measured():
    curve = augment.AugmentationCurve(name="Brighten", intensities=[0.0, 1.0], failure_threshold=0.5,
                                      definition="d", diff_errors=[[0.0, 0.833], [0.0, 0.3689]])
    assert curve.mean_diff_error == [0.0, round((0.833 + 0.3689) / 2, 4)]


def labelled_search(tmp_path, folder, **options):
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES)) if not (tmp_path / "imgs").exists() else \
        sorted(str(p) for p in (tmp_path / "imgs").glob("*.png"))
    path = tmp_path / folder / "analysis.json"
    labels = [int(v > 90) for v in VALUES]
    analysis = make_augmenter(oracles.bright, augmentations=["Brighten", "Darken", "Hue"], checkpoint_seconds=0,
                              batch_size=4).search_randomization_boundaries(
        files, labels, 0.1, path, images_in_flight=1, **options)
    return files, path, analysis


@pytest.mark.parametrize("strategy", ["grid", "adaptive", "guided"])
def test_a_search_that_releases_its_rows_holds_only_what_summaries_need_and_answers_the_same(tmp_path, strategy,
                                                                                             monkeypatch):
    kept = labelled_search(tmp_path, "kept", strategy=strategy, grid_sample=3, rows_in_memory=True)[2]
    whole = []  # a column made whole in memory and kept (a save reads one augmentation at a time, then frees it)
    real_arrays = augment._Column.arrays
    monkeypatch.setattr(augment._Column, "arrays", lambda self: whole.append(self) or real_arrays(self))
    _, path, released = labelled_search(tmp_path, "released", strategy=strategy, grid_sample=3,
                                        rows_in_memory=False)
    assert not whole  # from the start: a fresh analysis' empty columns are released too
    monkeypatch.setattr(augment._Column, "arrays", real_arrays)
    for name, curve in released.curves.items():
        columns = (curve.diff_errors, curve.label_errors, curve.last_success_output, curve.first_failure_output)
        assert all(column.released and not column.loaded for column in columns), name
        assert len(curve.diff_errors._kept.rows) == kept.curves[name].summarize().full_grid_images  # not every row
    # the summaries come from what stayed in memory (no column is read for them)
    assert released.summary_rows() == kept.summary_rows()
    assert not any(curve.diff_errors.loaded or curve.last_success_output.loaded for curve in released.curves.values())
    assert released.curves["Darken"].exemplar() == kept.curves["Darken"].exemplar()
    # every row is still there: read from the shards when used
    assert released.to_json()["augmentations"] == kept.to_json()["augmentations"]
    assert augment.load_analysis(path).to_json()["augmentations"] == kept.to_json()["augmentations"]


def test_a_released_analysis_takes_edits_saves_them_and_resumes(tmp_path):
    reference = labelled_search(tmp_path, "kept", rows_in_memory=True)[2]
    files, path, analysis = labelled_search(tmp_path, "a", rows_in_memory=False)
    curve = analysis.curves["Hue"]
    curve.diff_errors[2], curve.label_errors[3], curve.diff_errors[5] = [0.0] * 11, None, None
    curve.last_success_output[2], curve.first_failure_output[4] = "edited", None
    assert curve.diff_errors.released and curve.diff_errors[2] == [0.0] * 11  # pending, not read from disk
    assert curve.last_success_output[2] == "edited" and not curve.last_success_output.loaded
    assert curve.summarize().first_failure_intensities[2] is None
    analysis.save(path)
    again = augment.load_analysis(path)
    assert again.to_json() == analysis.to_json()
    assert again.curves["Hue"].last_success_output[2] == "edited" and again.curves["Hue"].label_errors[3] is None
    # a resumed search releases what it loads: one augmentation read at a time
    calls = BrightnessModel()
    resumed = make_augmenter(calls, augmentations=["Brighten", "Darken", "Hue"]).search_randomization_boundaries(
        files, [int(v > 90) for v in VALUES], 0.1, path, rows_in_memory=False)
    assert calls.calls == 11 and resumed.curves["Brighten"].diff_errors.released  # image 5 of Hue only
    assert resumed.curves["Hue"].diff_errors[5] == reference.curves["Hue"].diff_errors[5]
    assert resumed.to_json()["augmentations"]["Darken"] == again.to_json()["augmentations"]["Darken"]


def test_a_released_analysis_rewritten_whole_after_an_edit_reads_what_it_lacks_from_the_new_shards(tmp_path):
    files, path, analysis = labelled_search(tmp_path, "a", rows_in_memory=False)
    curve = analysis.curves["Hue"]
    expected = curve.first_failure_output.snapshot()
    curve.diff_errors[3] = [0.0] + [0.6] * 10  # image 3 now fails first: its outputs were neither kept nor pending
    analysis.save(path, compact=True)  # the old shards are gone when the columns are pointed at the new one
    analysis.save(path)
    codes, texts = expected
    assert curve.first_failure_output[3] == (None if codes[3] < 0 else texts[codes[3]])
    assert augment.load_analysis(path).to_json() == analysis.to_json()


def test_a_released_analysis_compacts_one_augmentation_at_a_time_to_the_same_rows(tmp_path, monkeypatch):
    reference = labelled_search(tmp_path, "kept", rows_in_memory=True)[2]
    monkeypatch.setattr(augment, "_COMPACT_AFTER_SEARCH", 1)
    read = []
    real_take = augment._ShardColumns.take

    def take(self, field_name):
        read.append(self.name)
        return real_take(self, field_name)

    monkeypatch.setattr(augment._ShardColumns, "take", take)
    _, path, released = labelled_search(tmp_path, "released", rows_in_memory=False)
    assert len(shards_of(path)) == 1 and read  # the end of the search rewrote the rows as one shard
    monkeypatch.setattr(augment._ShardColumns, "take", real_take)
    assert released.to_json() == augment.load_analysis(path).to_json()
    assert released.to_json()["augmentations"] == reference.to_json()["augmentations"]


def test_a_released_analysis_whose_file_another_search_rewrote_says_so_when_it_needs_a_row(tmp_path):
    files, path, analysis = labelled_search(tmp_path, "a", rows_in_memory=False, strategy="adaptive", grid_sample=1)
    partial = next(k for k in range(len(files)) if k not in analysis.settings["grid_sample"])  # a row not kept
    others = write_pngs(tmp_path / "others", uniform_images([200, 210, 220]))
    with pytest.warns(UserWarning, match="kept as"):
        make_augmenter(oracles.bright).search_randomization_boundaries(others, None, 0.1, path)
    assert analysis.curves["Brighten"].intensity_at_share(0.5) is not None  # summaries need no row
    with pytest.raises(augment.AugmentError, match="another search rewrote the analysis since it was loaded"):
        analysis.curves["Darken"].diff_errors[partial]


def test_rows_in_memory_is_checked(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images(VALUES[:2]))
    with pytest.raises(augment.AugmentError, match="needs an analytics_cache"):
        make_augmenter(oracles.bright).search_randomization_boundaries(files, None, 0.1, None, rows_in_memory=False)
    for wrong in ("no", 0):
        with pytest.raises(augment.AugmentError, match="rows_in_memory must be True, False or None"):
            make_augmenter(oracles.bright).search_randomization_boundaries(files, None, 0.1, tmp_path / "a.json",
                                                                           rows_in_memory=wrong)


def test_a_stale_save_is_refused_and_names_what_another_search_added(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    first = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten"], progress=False)
    first.search_randomization_boundaries(files, [0, 1, 1], 0.1, tmp_path / "a.json")
    notebook = augment.load_analysis(tmp_path / "a.json")  # loaded in a notebook ...
    search = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
              "import augment; from conftest import BrightnessModel\n"
              "augment.ImageAugmenter(BrightnessModel(), augmentations=['Brighten', 'Darken'], progress=False)"
              f".search_randomization_boundaries({[str(f) for f in files]!r}, [0, 1, 1], 0.1, "
              f"{str(tmp_path / 'a.json')!r})")
    background = subprocess.run([sys.executable, "-c", search], capture_output=True, text=True, timeout=120)
    assert background.returncode == 0, background.stderr  # ... while another process's search added Darken
    with pytest.raises(augment.AugmentError, match=r"changed on disk since this analysis read or wrote.*added Darken"):
        notebook.save(tmp_path / "a.json")
    again = augment.load_analysis(tmp_path / "a.json")
    assert sorted(again.curves) == ["Brighten", "Darken"] and again.curves["Darken"].summarize().searched_images == 3
    notebook.save(tmp_path / "elsewhere.json")  # another file is fine
    again.save(tmp_path / "a.json")  # and a fresh load saves


def test_a_stale_save_is_refused_through_a_linked_folder_and_after_saving_elsewhere(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "linked")

    def search(names):
        make_augmenter(oracles.bright, augmentations=names).search_randomization_boundaries(
            files, None, 0.1, tmp_path / "real" / "a.json")

    search(["Brighten"])
    through_link = augment.load_analysis(tmp_path / "linked" / "a.json")
    saved_elsewhere = augment.load_analysis(tmp_path / "real" / "a.json")
    saved_elsewhere.save(tmp_path / "copy.json")
    search(["Brighten", "Darken"])
    stale_saves = ((through_link, tmp_path / "linked" / "a.json"), (saved_elsewhere, tmp_path / "real" / "a.json"))
    for stale, path in stale_saves:
        with pytest.raises(augment.AugmentError, match="added Darken"):
            stale.save(path)
    assert "Darken" in augment.load_analysis(tmp_path / "real" / "a.json").curves


def test_saves_that_are_not_stale_go_through(tmp_path):
    files = write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    make_augmenter(oracles.bright, augmentations=["Brighten"]).search_randomization_boundaries(
        files, None, 0.1, tmp_path / "a.json")
    # a shard entry with a key this version does not know (a later 0.3.x may add one): loads, resumes, saves
    index = json.loads((tmp_path / "a.json").read_text())
    index["rows"]["shards"][0]["note"] = "kept by a later version"
    (tmp_path / "a.json").write_text(json.dumps(index))
    augment.load_analysis(tmp_path / "a.json").save(tmp_path / "a.json")
    # through a link to the file: the link becomes a file of its own, the target stays and saves too
    os.symlink(tmp_path / "a.json", tmp_path / "link.json")
    linked = augment.load_analysis(tmp_path / "link.json")
    linked.save(tmp_path / "link.json")
    linked.save(tmp_path / "a.json")
    assert augment.load_analysis(tmp_path / "a.json").curves["Brighten"].summarize().searched_images == 3
