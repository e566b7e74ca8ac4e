"""The seed's published code (gittyeric/ml-infinite-image-augment) as a migrating user calls it:
its spellings, its synthesize_more options and summary, set_augmentation_intensity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, BrightnessModel, natural_images, uniform_images, write_pngs

import augment


def test_the_seed_codes_calls_work_and_the_readme_form_still_unpacks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = write_pngs(tmp_path / "img", natural_images((40, 48))[:2])
    augmenter = augment.ImageAugmenter(augmentations=["Brighten", "GaussianBlur"], progress=False)  # model-free
    augmenter.search_randomization_boundries(files, step_size_percent=0.25)
    summary = augmenter.synthesize_more(files, count=5)
    assert summary["count"] == 5 and len(summary["generated"]) == 5
    made, labels = summary  # the README's form, from the same value
    assert made == [g["synth_filename"] for g in summary["generated"]] and all(os.path.exists(f) for f in made)
    assert {g["origin_filename"] for g in summary["generated"]} == set(files)
    again = augmenter.synthesize_more(files, count=8, count_by="in_dir", log_file=str(tmp_path / "log.json"))
    assert again["count"] == 8 and len(again[0]) == 8  # the whole folder, topped up to 8
    assert augmenter.get_synthesized_summary(output_dir="generated") == json.loads((tmp_path / "log.json").read_text())
    assert augmenter.get_synthesized_summary(log_file=str(tmp_path / "log.json"))["count"] == 8
    assert augmenter.render_boundries(str(tmp_path / "analytics")).endswith("index.html")
    assert "count" in again and again.get("count") == 8 and set(again.keys()) == {"count", "generated"}
    with pytest.raises(augment.AugmentError, match="would replace a file of the synthetic folder"):
        augmenter.synthesize_more(files, count=1, log_file="generated/manifest.jsonl")
    with pytest.raises(augment.AugmentError, match="has no manifest.jsonl"):
        augmenter.get_synthesized_summary(output_dir="generatd")
    with pytest.raises(augment.AugmentError, match="image_namer is not supported"):
        augmenter.synthesize_more(files, count=1, image_namer=lambda *args: "x.png")
    with pytest.raises(augment.AugmentError, match="count_by must be"):
        augmenter.synthesize_more(files, count=1, count_by="forever")


def test_set_augmentation_intensity_scales_caps_and_floors_what_synthesis_draws(tmp_path):
    files = write_pngs(tmp_path / "src", uniform_images([40, 70, 100]))
    augmenter = augment.ImageAugmenter(BrightnessModel(), augmentations=["Brighten", "Hue"], batch_size=16,
                                       progress=False)
    augmenter.search_randomization_boundaries(files, None, 0.1, None)
    assert augmenter.intensity_limits(0) == {"Brighten": 0.3, "Hue": 1.0}  # measured failure; never fails
    augmenter.set_augmentation_intensity("Brighten", multiplier=2)
    augmenter.set_augmentation_intensity("Hue", max=0.5, only_shrink_max=True)
    assert augmenter.intensity_limits(0) == {"Brighten": 0.6, "Hue": 0.5}
    augmenter.set_augmentation_intensity("Brighten", max=0.9, only_shrink_max=True)  # would grow it: kept
    assert augmenter.intensity_limits(0)["Brighten"] == 0.3  # (a new call replaces the multiplier's override)
    augmenter.set_augmentation_intensity(min=0.2, max=0.4)  # every augmentation of this augmenter
    policy = augmenter.sampling_policy(0, 1, 2)
    assert policy.limits == {"Brighten": 0.4, "Hue": 0.4} and policy.floors == {"Brighten": 0.2, "Hue": 0.2}
    rng = np.random.default_rng(0)
    drawn = [t for _ in range(300) for _, t in policy.sample(rng)[0]]
    assert min(drawn) == 0.2 and max(drawn) == 0.4
    policy.save(tmp_path / "policy.json")
    assert augment.SamplingPolicy.load(tmp_path / "policy.json") == policy
    for bad, message in [({"multiplier": 0}, "above 0"), ({"min": 0.5, "max": 0.2}, "above max"),
                         ({"augmentations": "Sharpen"}, "not among"), ({"max": 2}, "max must be")]:
        with pytest.raises(augment.AugmentError, match=message):
            augmenter.set_augmentation_intensity(**bad)


def test_the_seed_repositorys_own_quick_example_runs_unchanged(tmp_path):
    """Runs example_quick.py from a checkout of the seed's repository, named by AUGMENT_SEED_REPO
    (e.g. the path `fetch` gave); skipped without one (nothing of it is copied into this project)."""
    checkout = os.environ.get("AUGMENT_SEED_REPO")
    if not checkout or not (Path(checkout) / "example_quick.py").exists():
        pytest.skip("AUGMENT_SEED_REPO does not name a checkout of gittyeric/ml-infinite-image-augment")
    shutil.copytree(Path(checkout) / "examples", tmp_path / "examples")
    shutil.copy(Path(checkout) / "example_quick.py", tmp_path)
    shutil.copy(ROOT / "augment.py", tmp_path)
    result = subprocess.run([sys.executable, "example_quick.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Generated 50 images" in result.stdout
