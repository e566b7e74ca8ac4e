"""The bundled examples, at small sizes."""

from __future__ import annotations

import numpy as np
from conftest import ROOT  # noqa: F401  (puts the repository on sys.path)

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
