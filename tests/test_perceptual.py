"""The perceptual scale: one strength per (augmentation, intensity) in ImageNet-C severity units, in
the analysis file, the report, compare and the command line, and realism bounded by it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, chromium_path, natural_images, open_page

import augment
from examples import digits_model


def test_the_distance_is_zero_for_the_same_picture_and_grows_with_the_change():
    photo = natural_images((48, 64))[0]
    assert augment.perceptual_distance(photo, photo.copy()) == 0.0
    steps = [augment.perceptual_distance(photo, augment.augment_image(photo, "Brighten", t)) for t in (0.1, 0.3, 0.6)]
    assert 0 < steps[0] < steps[1] < steps[2]
    # colour counts: a hue rotation keeps the structure much better than it keeps the colours
    hue = augment.augment_image(photo, "Hue", 0.6)
    assert augment.perceptual_distance(photo, hue) > 0.1
    with pytest.raises(augment.AugmentError, match="one shape"):
        augment.perceptual_distance(photo, photo[:10])


def test_the_scale_reads_its_calibration_points_back_and_goes_on_beyond_them():
    points = augment.SEVERITY_DISTANCES
    assert all(a < b for a, b in zip(points, points[1:]))
    assert [augment.distance_to_severity(d) for d in points] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert augment.distance_to_severity(0.0) == 0.0
    assert augment.distance_to_severity(points[0] / 2) == 0.5
    assert augment.distance_to_severity(points[4] + (points[4] - points[3])) == 6.0  # the last slope, beyond 5


@pytest.mark.parametrize("name", augment.ALL_AUGMENTATIONS)
def test_every_augmentation_is_zero_at_zero_and_grows_with_its_intensity(name):
    photos = natural_images((48, 64))[:2]
    grid = [k / 10 for k in range(11)]
    strength = augment.perceptual_strength(photos, name, grid, [1, 2])
    assert strength[0] == 0.0 and strength[-1] > 0.2, strength  # on photos every augmentation changes something
    # the raw means (the strength keeps a running maximum of them) rise too: a dip means a
    # non-monotone definition
    raw = [np.mean([augment.perceptual_distance(p, augment.augment_image(p, name, t, s)) for p, s in
                    zip(photos, [1, 2])]) for t in grid]
    dips = [a - b for a, b in zip(raw, raw[1:]) if b < a]
    assert not dips or max(dips) < 0.25 * max(raw), (name, np.round(raw, 3).tolist())


SEARCHED: dict = {}


def test_a_severity_belongs_to_the_picture_not_to_its_resolution():
    # every picture is compared (and the strength rendered) on a copy 96 px on its short side: the same
    # photo at 3000 px or at 100 px looks as strong under an augmentation whose sizes are fractions of the
    # side (a picture under 96 px is scaled up: it has less fine detail to lose, and reads milder)
    import cv2

    photo = natural_images((384, 512))[1]
    smaller = [cv2.resize(photo, (512 // k, 384 // k), interpolation=cv2.INTER_AREA) for k in (2, 4)]
    for name in ("GaussianBlur", "Brighten", "Hue", "Downscale", "SafeRotate"):
        strengths = [augment.perceptual_strength([image], name, [0.0, 0.3, 0.6], [1]) for image in [photo] + smaller]
        assert all(np.allclose(strengths[0], other, atol=0.05) for other in strengths[1:]), (name, strengths)
    # before the copies were resampled to one size, 224 and 96 px pictures of one scene read 4.3 and 0.8
    # under one blur: now a 4 x smaller file of the same picture reads what the large one reads


@pytest.fixture(scope="module")
def digits_search(tmp_path_factory):
    """24 training digits as PNG files, every augmentation, searched from the command line (the full
    grid: 576 pairs) with the bundled CNN; the command's output in SEARCHED["stdout"]."""
    from PIL import Image

    images, _ = digits_model.load_digits_rgb()
    train, _ = digits_model.train_test_indices(len(images))
    folder = tmp_path_factory.mktemp("digits")
    for k in train[:24]:
        Image.fromarray(images[k]).save(folder / f"digit-{k:04d}.png")
    path = folder / "analysis.json"
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "search", "--predict",
                             str(ROOT / "examples" / "digits_model.py") + ":predict", "--batch-size", "256",
                             "--images", str(folder / "*.png"), "--cache", str(path)],
                            capture_output=True, text=True, cwd=folder)
    assert result.returncode == 0, result.stderr
    SEARCHED["stdout"] = result.stdout
    return path


def test_a_search_stores_each_strength_and_an_old_file_without_them_still_loads(digits_search, tmp_path):
    analysis = augment.load_analysis(digits_search)
    assert analysis.settings["severity_calibration"]
    for curve in analysis.curves.values():
        assert len(curve.perceptual_strength) == len(curve.intensities) and curve.perceptual_strength[0] == 0.0
    # gray digits: a hue rotation changes nothing a person sees, a rotation a lot
    assert analysis.curves["Hue"].perceptual_strength[-1] == 0.0
    assert analysis.curves["SafeRotate"].perceptual_strength[-1] > 3.0
    curve = analysis.curves["SafeRotate"]
    assert curve.severity_at(0.0) == 0.0 and curve.severity_at(None) is None
    expected = np.interp(0.5, curve.intensities, curve.perceptual_strength)
    assert curve.severity_at(0.5) == pytest.approx(expected, abs=1e-3)
    # an analysis file of the previous release has no strengths: it loads, the report has no chart
    old = json.loads(digits_search.read_text())
    for entry in old["augmentations"].values():
        entry.pop("perceptual_strength")
    old["settings"].pop("severity_calibration")
    copy = tmp_path / "old" / "analysis.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(old))
    for shard in (digits_search.parent / "analysis.json.rows").iterdir():
        (tmp_path / "old" / "analysis.json.rows").mkdir(exist_ok=True)
        (tmp_path / "old" / "analysis.json.rows" / shard.name).write_bytes(shard.read_bytes())
    loaded = augment.load_analysis(copy)
    assert all(c.perceptual_strength is None for c in loaded.curves.values())
    assert "sev" not in augment.format_summary(loaded).splitlines()[0]
    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False)
    augmenter.load_analysis(copy)
    html = open(augmenter.render_boundaries(tmp_path / "report")).read()
    assert 'id="severity-chart"' not in html
    ceiling = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False, perceptual_ceiling=True)
    ceiling.load_analysis(copy)
    with pytest.raises(augment.AugmentError, match="perceptual strengths"):
        ceiling.transform(0.5)


def test_realism_with_the_perceptual_ceiling_never_draws_beyond_it_on_the_digits(digits_search, tmp_path):
    bounded = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False, perceptual_ceiling=True)
    analysis = bounded.load_analysis(digits_search)
    free = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False)
    free.load_analysis(digits_search)

    def drawn_severities(augmenter, realism):
        transform = augmenter.transform(realism, seed=1)
        image = np.zeros((32, 32, 3), np.uint8)
        severities = []
        for _ in range(1500):
            transform(image)
            severities += [analysis.curves[name].severity_at(t) for name, t in transform.params["steps"]
                           if not augment.CATALOGUE[name].geometric]  # those keep the model's limits (below)
        return severities

    for realism, ceiling in ((0.5, 2.0), (0.0, 3.0)):
        assert augment.realism_severity_ceiling(realism) == ceiling
        assert max(drawn_severities(bounded, realism)) <= ceiling + 1e-3, realism
    # the control: without the ceiling, realism 0.5 draws far stronger changes where the CNN never fails
    assert max(drawn_severities(free, 0.5)) > 4.0
    # the model-based limit still applies where it is lower, geometric augmentations keep it (a distance
    # that compares pixels in place calls a small rotation severe); realism 1 still draws nothing
    limits, free_limits = bounded.intensity_limits(0.5), free.intensity_limits(0.5)
    assert all(limits[name] <= free_limits[name] for name in limits)
    assert all(limits[name] == free_limits[name] for name in limits if augment.CATALOGUE[name].geometric)
    assert any(limits[name] < free_limits[name] for name in limits)
    assert all(limit == 0.0 for limit in bounded.intensity_limits(1.0).values())
    # the policy file records the ceiling; a policy file without one (every earlier file) loads unchanged
    policy = bounded.sampling_policy(0.5)
    assert policy.severity_ceiling == 2.0
    path = policy.save(tmp_path / "policy.json")
    assert json.loads(open(path).read())["severity_ceiling"] == 2.0
    assert augment.SamplingPolicy.load(path) == policy
    document = json.loads(open(path).read())
    del document["severity_ceiling"]
    assert augment.SamplingPolicy.from_json(document).severity_ceiling is None
    assert free.sampling_policy(0.5).severity_ceiling is None
    # the command line writes the same policy
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "policy", "--cache", str(digits_search),
                             "--realism", "0.5", "--perceptual-ceiling", "--out", str(tmp_path / "cli.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "perceptual ceiling: severity 2" in result.stdout
    assert augment.SamplingPolicy.load(tmp_path / "cli.json").limits == policy.limits
    with pytest.raises(augment.AugmentError, match="perceptual_ceiling must be True or False"):
        augment.ImageAugmenter(perceptual_ceiling="no")
    # one augmentation's own realism has its own ceiling: the policy records the largest in use (a geometric
    # augmentation's realism counts for none: it keeps the model's limit); below -1 counts as -1
    bounded.set_augmentation_realism("SafeRotate", -1.0)
    assert bounded.sampling_policy(0.5).severity_ceiling == 2.0
    bounded.set_augmentation_realism("Brighten", -1.5)
    policy = bounded.sampling_policy(0.5)
    assert policy.severity_ceiling == 5.0 and analysis.curves["Brighten"].perceptual_strength[-1] > 5.0
    assert analysis.curves["Brighten"].severity_at(policy.limits["Brighten"]) <= 5.0 + 1e-3
    assert all(analysis.curves[name].severity_at(limit) <= 2.0 + 1e-3 for name, limit in policy.limits.items()
               if name != "Brighten" and not augment.CATALOGUE[name].geometric)


def test_the_public_perceptual_functions_name_a_bad_argument():
    photo = natural_images((32, 32))[0]
    assert augment.perceptual_strength(np.stack([photo, photo]), "Brighten", [0.0, 0.5], [1, 2])[1] > 0  # (N, H, W, 3)
    cases = [
        (lambda: augment.perceptual_strength([photo], "Brighten", [], [1]), "one or more intensities"),
        (lambda: augment.perceptual_strength([photo], "Brighten", [0.5], 1), "a sequence of images, of seeds"),
        (lambda: augment.distance_to_severity(0.3, ["a", "b"]), "distances must be numbers"),
        (lambda: augment.perceptual_distance(photo.astype(float), photo), "original must be an \\(H, W, 3\\) uint8"),
        (lambda: augment.perceptual_distance(photo, list(photo)), "augmented must be"),
        (lambda: augment.perceptual_strength([photo, photo], "Brighten", [0, 0.5], [1]), "one seed per image"),
        (lambda: augment.perceptual_strength([photo], "Brighten", [0, 1.5], [1]), "must be in \\[0, 1\\]"),
        (lambda: augment.perceptual_strength([photo], "Brigthen", [0, 0.5], [1]), "Brighten"),
        (lambda: augment.distance_to_severity(float("nan")), "distance must be a number"),
        (lambda: augment.distance_to_severity(0.3, []), "two or more increasing"),
        (lambda: augment.distance_to_severity(0.3, [0.3, 0.2]), "two or more increasing"),
        (lambda: augment.realism_severity_ceiling(2), "realism must be in \\[-1.0, 1.0\\]"),
    ]
    for call, message in cases:
        with pytest.raises(augment.AugmentError, match=message):
            call()


def test_a_damaged_strength_in_an_analysis_file_is_named(digits_search, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(digits_search.parent, folder)
    document = json.loads((folder / "analysis.json").read_text())
    document["augmentations"]["Hue"]["perceptual_strength"] = [0.0, 2.0, 1.0]
    (folder / "analysis.json").write_text(json.dumps(document))
    with pytest.raises(augment.AugmentError, match="Hue's perceptual_strength must be 21 non-negative"):
        augment.load_analysis(folder / "analysis.json")
    document["augmentations"]["Hue"]["perceptual_strength"] = [5.0] * 21  # every search measures 0 at 0
    (folder / "analysis.json").write_text(json.dumps(document))
    with pytest.raises(augment.AugmentError, match="severities from 0"):
        augment.load_analysis(folder / "analysis.json")
    document["augmentations"]["Hue"]["perceptual_strength"] = [0.0] * 21
    document["settings"]["severity_images"] = "four"
    (folder / "analysis.json").write_text(json.dumps(document))
    with pytest.raises(augment.AugmentError, match="severity_images"):
        augment.load_analysis(folder / "analysis.json")


def test_the_command_line_summary_and_compare_speak_severity(digits_search, tmp_path):
    lines = SEARCHED["stdout"].strip().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("augmentation"))
    header, rows = lines[start], lines[start + 1:start + 25]
    assert "50% sev" in header and "ImageNet-C severity units" in header
    saferotate = next(row for row in rows if row.startswith("SafeRotate"))
    analysis = augment.load_analysis(digits_search)
    curve = analysis.curves["SafeRotate"]
    assert saferotate.split()[-1] == f"{curve.severity_at(curve.intensity_at_share(0.5)):.1f}+"  # + geometric
    result = subprocess.run([sys.executable, str(ROOT / "augment.py"), "compare", str(digits_search),
                             str(digits_search), "--names", "before", "after"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "severity shift" in result.stdout.splitlines()[0]
    # against a model that never changes its answer: every shift is up to intensity 1 (never = 1 + step)
    never = augment.ImageAugmenter(lambda images: [0] * len(images), batch_size=256, progress=False)
    files = sorted(str(p) for p in digits_search.parent.glob("*.png"))
    robust = never.search_randomization_boundaries(files, None, 0.05, tmp_path / "never.json")
    comparison = augment.compare({"before": digits_search, "after": robust})
    blur = analysis.curves["Brighten"]
    shift = next(s for s in comparison.shifts if s.augmentation == "Brighten")
    assert shift.model_mean == 1.05 and shift.shift > 0.3
    assert shift.baseline_severity == pytest.approx(blur.severity_at(shift.baseline_mean), abs=1e-3)
    assert shift.model_severity == pytest.approx(blur.perceptual_strength[-1], abs=1e-3)
    assert shift.severity_shift == pytest.approx(shift.model_severity - shift.baseline_severity, abs=1e-3)
    assert shift.severity_shift > 0
    assert shift.severity_interval is None  # its bounds pass intensity 1: no interval rather than a clamped one
    rotation = next(s for s in comparison.shifts if s.augmentation == "SafeRotate")
    assert rotation.verdict == "improved" and rotation.severity_shift is None  # geometric: a pixel distance misjudges
    # a model that sees every digit darkened by 60 levels holds out longer under Brighten, within the range:
    # the severity interval is the intensity interval's bounds read on the strength curve
    def darker(images):
        return digits_model.predict([np.clip(image.astype(int) - 60, 0, 255).astype(np.uint8) for image in images])

    shifted = augment.ImageAugmenter(darker, augmentations=["Brighten"], batch_size=256, progress=False)
    later = shifted.search_randomization_boundaries(files, None, 0.05, tmp_path / "darker.json")
    moved = next(s for s in augment.compare({"before": digits_search, "darker": later}).shifts
                 if s.augmentation == "Brighten")
    low, high = moved.interval
    assert 0 < moved.shift and moved.baseline_mean + high <= 1.0, moved
    expected = [round(blur.severity_at(moved.baseline_mean + bound) - moved.baseline_severity, 4) for bound in
                (low, high)]
    assert list(moved.severity_interval) == pytest.approx(expected, abs=2e-4)
    assert moved.severity_interval[0] <= moved.severity_shift <= moved.severity_interval[1]
    # two searches of one model on the same images: a shift of 0 and an interval around it
    same = augment.compare({"before": digits_search, "again": digits_search})
    unchanged = next(s for s in same.shifts if s.augmentation == "Brighten")
    assert unchanged.severity_shift == 0.0 and unchanged.severity_interval == (0.0, 0.0)


@pytest.mark.browser
def test_the_report_ranks_every_augmentation_on_one_scale_in_a_real_browser(digits_search, tmp_path):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    augmenter = augment.ImageAugmenter(digits_model.predict, batch_size=256, progress=False)
    analysis = augmenter.load_analysis(digits_search)
    html = augmenter.render_boundaries(tmp_path / "report")
    errors = []
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, Path(html), errors)
        page.goto(Path(html).resolve().as_uri())
        page.wait_for_load_state("load")
        chart = page.locator("#severity-chart")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        labels = page.eval_on_selector_all("#severity-chart text", "els => els.map(e => e.textContent)")
        broken = page.locator("#severity-chart rect.breaks").count()
        survived = page.locator("#severity-chart rect.survives").count()
        cells = page.eval_on_selector_all("small.severity", "els => els.length")
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "report-severity.png"))
        browser.close()
    assert not errors, errors
    assert box["width"] > 300 and box["height"] > 24 * 15
    summaries = analysis.summaries()
    assert broken == sum(s.intensity_at_50 is not None for s in summaries.values())
    assert broken + survived == len(analysis.curves)
    # every augmentation is named, most fragile first: the first bar is the lowest breaking severity
    names = [text.removesuffix(" \u2020") for text in labels if text.removesuffix(" \u2020") in analysis.curves]
    assert all((text.endswith("\u2020")) == augment.CATALOGUE[text.removesuffix(" \u2020")].geometric
               for text in labels if text.removesuffix(" \u2020") in analysis.curves)
    assert sorted(names) == sorted(analysis.curves)
    first = names[0]
    lowest = min((analysis.curves[n].severity_at(s.intensity_at_50), n) for n, s in summaries.items()
                 if s.intensity_at_50 is not None)[1]
    assert first == lowest
    assert cells == 4 * len(analysis.curves)  # safe, 10 %, 50 %, 90 % in severity units under each figure


@pytest.mark.slow
def test_the_committed_calibration_is_what_the_calibration_script_computes():
    # about 4 minutes: 15 corruptions x 5 severities x 6 reference photos (glass blur is slow)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "calibrate_severity.py"), "--check"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"SEVERITY_DISTANCES = {augment.SEVERITY_DISTANCES}" in result.stdout
