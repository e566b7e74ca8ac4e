"""The command line, run in-process through augment.main(argv)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, uniform_images, write_pngs

import augment

ORACLE = str(ROOT / "tests" / "models" / "oracles.py")


def test_search_prints_the_table_and_writes_the_analysis(tmp_path, capsys):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    (tmp_path / "labels.json").write_text(json.dumps({"img-0.png": 0, "img-1.png": 0, "img-2.png": 0}))
    cache = tmp_path / "analysis.json"
    status = augment.main(["search", "--predict", f"{ORACLE}:bright", "--batch-size", "8",
                           "--images", str(tmp_path / "imgs" / "*.png"), "--labels", str(tmp_path / "labels.json"),
                           "--augmentations", "Brighten", "Darken", "--step", "0.1", "--cache", str(cache)])
    out = capsys.readouterr().out
    assert status == 0
    assert "Brighten" in out and "0.30" in out  # the middle image (70) fails at +0.3
    assert augment.load_analysis(cache).curves["Brighten"].first_failure_intensities == [0.4, 0.3, 0.2]


def test_adaptive_search_from_the_command_line_finds_the_same_boundaries(tmp_path, capsys):
    write_pngs(tmp_path / "imgs", uniform_images([40, 70, 100]))
    cache = tmp_path / "analysis.json"
    status = augment.main(["search", "--predict", f"{ORACLE}:bright", "--batch-size", "8",
                           "--images", str(tmp_path / "imgs" / "*.png"), "--augmentations", "Brighten",
                           "--step", "0.05", "--cache", str(cache), "--strategy", "adaptive", "--grid-sample", "1",
                           "--workers", "0"])
    assert status == 0
    analysis = augment.load_analysis(cache)
    assert analysis.settings["strategy"] == "adaptive" and len(analysis.settings["grid_sample"]) == 1
    assert analysis.curves["Brighten"].first_failure_intensities == [0.35, 0.25, 0.15]


def test_evaluate_prints_the_seed_keys(tmp_path, capsys):
    write_pngs(tmp_path / "imgs", uniform_images([40, 200]))
    (tmp_path / "labels.json").write_text(json.dumps([0, 0]))
    status = augment.main(["evaluate", "--predict", f"{ORACLE}:bright_one", "--images",
                           str(tmp_path / "imgs" / "*.png"), "--labels", str(tmp_path / "labels.json")])
    result = json.loads(capsys.readouterr().out)
    assert status == 0 and result["output_differs_count"] == 1 and result["accuracy"] == 0.5


def test_errors_go_to_stderr_with_a_non_zero_exit(tmp_path, capsys):
    status = augment.main(["search", "--predict", f"{ORACLE}:bright", "--images", str(tmp_path / "none*.png")])
    assert status == 2 and "error: --images pattern" in capsys.readouterr().err
    status = augment.main(["search", "--predict", "no_such_module:f", "--images", str(tmp_path)])
    assert status == 2 and "cannot import 'no_such_module'" in capsys.readouterr().err
    write_pngs(tmp_path / "imgs", uniform_images([40]))
    status = augment.main(["search", "--predict", f"{ORACLE}:bright", "--images", str(tmp_path / "imgs/*.png"),
                           "--augmentations", "Blurr"])
    assert status == 2 and "unknown augmentation 'Blurr'" in capsys.readouterr().err


def test_on_error_and_max_image_pixels_from_the_command_line(tmp_path, capsys):
    files = write_pngs(tmp_path / "imgs", uniform_images([20, 70]) + uniform_images([100], size=(40, 40)))
    common = ["search", "--predict", f"{ORACLE}:bright_refuses_dark", "--batch-size", "8", "--images",
              str(tmp_path / "imgs" / "*.png"), "--augmentations", "Brighten", "--step", "0.25"]
    with pytest.raises(RuntimeError, match="too dark to see") as raised:  # the model's own error, traceback and all
        augment.main([*common, "--cache", str(tmp_path / "raise.json")])
    assert files[0] in "".join(raised.value.__notes__)
    with pytest.warns(UserWarning, match="2 of 3 images skipped"):
        status = augment.main([*common, "--cache", str(tmp_path / "skip.json"), "--on-error", "skip",
                               "--max-image-pixels", str(24 * 24)])
    assert status == 0
    skipped = augment.load_analysis(tmp_path / "skip.json").skipped
    assert [item["file"] for item in skipped] == [files[0], files[2]]
    assert "too dark to see" in skipped[0]["reason"]
    assert "40x40 = 1,600 pixels, more than max_image_pixels=576" in skipped[1]["reason"]
